"""Start-up benchmark: how long a new process takes to be useful.

Measured, each over ``--runs`` fresh processes (median, min, max), in one run:

* ``python -c pass``  -- the interpreter alone: the floor, and a gauge of how loaded the machine is;
* ``newsdesk --help`` -- target at most 0.5 s;
* ``newsdesk ask``    -- "When did Assad visit Moscow?" over the bundled sample articles (indexed
  once before timing, in a temporary folder), target at most 1.5 s (median);
* ``serve first answer`` -- from starting ``newsdesk serve`` to the first ``POST /v1/ask`` answer,
  and the server's peak RSS (``VmHWM``) once it has answered.

Every ``ask`` run is also checked for torch: the run fails if torch was imported.

``--against REV`` also times ``newsdesk ask`` from a checkout of an earlier commit (a temporary
git worktree), alternating with this tree's runs over the same index, so a change in start-up is
measured in one run on this shared, noisy machine.

Bytecode: an installed Python program runs from compiled bytecode (``pip install`` compiles it,
and Python keeps it on first import).  This machine's environment sets
``PYTHONDONTWRITEBYTECODE=1``, so a checkout without ``__pycache__`` compiles every newsdesk
module from source in every process (about 0.1-0.2 s).  The rows without a note run with
bytecode kept in a temporary ``PYTHONPYCACHEPREFIX`` (written by the warm-up runs, for the
libraries too); the rows marked "from source" run in the environment as inherited, with
``PYTHONDONTWRITEBYTECODE=1`` and no bytecode of newsdesk's own modules (both checkouts hold
none: run it from a clean tree).

``--timeline`` instead prints where one cold ``ask`` spends its time: seconds since the
interpreter started (``time.perf_counter`` marks, and the process's end as its parent saw it)
at which each stage starts (``>``) and ends (``<``), on the thread that ran it.

Run from the repository root::

    python benchmarks/startup.py            # 5 runs each
    python benchmarks/startup.py --runs 9
    python benchmarks/startup.py --against 5a68301
    python benchmarks/startup.py --timeline
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.load import free_port

REPO = Path(__file__).resolve().parent.parent
QUESTION = "When did Assad visit Moscow?"
TARGETS = {"newsdesk --help": 0.5, "newsdesk ask": 1.5, "newsdesk ask, from source": 1.5}
TORCH_PROBE = (
    "import sys, runpy; sys.argv = ['newsdesk', 'ask', {q!r}]\n"
    "try:\n    runpy.run_module('assistant.cli', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\n"
)


CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) of each row's runs


def timed(command: list[str], env: dict[str, str], cwd: Path = REPO, row: str = "") -> float:
    """Wall seconds of one process run (its CPU seconds kept under ``row``); a failing command
    ends the benchmark."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    stderr = child.stderr.read() if child.stderr else b""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr.decode()[-2000:]}")
    CPU.setdefault(row, []).append(usage.ru_utime + usage.ru_stime)
    return seconds


TIMELINE = """
import builtins, functools, runpy, sys, threading, time
MARKS = []
STAGES = {
    "assistant.answer": ["Assistant.__init__"],
    "assistant.retrieve": ["KeywordRetriever.search"],
    "assistant.extractive": ["ExtractiveWriter.compose"],
    "index.embeddings": ["Embedder.load_libraries", "OnnxEncoder.__init__", "Embedder.embed_query"],
    "index.store": ["Store._open_vectors_quietly", "Store.search_vectors"],
}
STAGES["assistant.answer"].append("Assistant.support")


def mark(label):
    MARKS.append((time.perf_counter(), threading.current_thread().name, label))


def wrap(owner, name):
    method = getattr(owner, name)

    @functools.wraps(method)
    def marked(*args, **kwargs):
        mark("> " + owner.__name__ + "." + name)
        try:
            return method(*args, **kwargs)
        finally:
            mark("< " + owner.__name__ + "." + name)

    setattr(owner, name, marked)


real_import = builtins.__import__


def watching(name, *args, **kwargs):
    module = real_import(name, *args, **kwargs)
    for watched in [m for m in STAGES if m in sys.modules]:
        found = [q.split(".") for q in STAGES[watched]]
        if all(hasattr(getattr(sys.modules[watched], c, None), f) for c, f in found):
            mark("imported " + watched)
            for cls, fn in found:
                wrap(getattr(sys.modules[watched], cls), fn)
            del STAGES[watched]
    return module


builtins.__import__ = watching
sys.argv = ["newsdesk", "ask", QUESTION]
mark("python started")
try:
    runpy.run_module("assistant.cli", run_name="__main__")
except SystemExit:
    pass
mark("answer printed")
for at, thread, label in MARKS:
    print(f"MARK {at:.3f} {thread} {label}", file=sys.stderr)
"""


def timeline(env: dict[str, str]) -> None:
    """Print the stages of one cold ``ask`` (``--timeline``)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", TIMELINE.replace("QUESTION", repr(QUESTION))],
                          env=env, capture_output=True, text=True, cwd=REPO, check=True)
    ended = time.perf_counter()
    for line in done.stderr.splitlines():
        if line.startswith("MARK "):  # perf_counter is the system's monotonic clock: shared
            _, at, thread, label = line.split(maxsplit=3)
            print(f"{float(at) - started:6.3f} s  {thread:<22} {label}")
    print(f"{ended - started:6.3f} s  process ended (as its parent saw it)")


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size of a running process (Linux), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


SERVE_RSS: list[float] = []


def serve_first_answer(env: dict[str, str]) -> float:
    """Seconds from starting `newsdesk serve` to its first answer (its peak RSS then is kept)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--no-ui"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = started + 120
        while time.perf_counter() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"newsdesk serve exited with code {server.returncode}")
            try:
                response = httpx.post(f"{url}/v1/ask", json={"question": QUESTION}, timeout=60)
                if response.status_code == 200:
                    seconds = time.perf_counter() - started
                    SERVE_RSS.append(peak_rss_mib(server.pid))
                    return seconds
            except httpx.TransportError:
                time.sleep(0.05)
        raise SystemExit("newsdesk serve gave no answer within 120 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def summary(name: str, seconds: list[float]) -> str:
    target = TARGETS.get(name)
    median = statistics.median(seconds)
    verdict = "" if target is None else (" met" if median <= target else " NOT met")
    limit = "" if target is None else f"{target:.1f}"
    cpu = f"{statistics.median(CPU[name]):.2f}" if name in CPU else ""
    return (f"| {name} | {median:.2f} | {min(seconds):.2f} | {max(seconds):.2f} | {cpu} "
            f"| {limit}{verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="also time `ask` at this git commit")
    parser.add_argument("--timeline", action="store_true",
                        help="print where one cold `ask` spends its time, and nothing else")
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        earlier = Path(tmp) / "earlier"
        if args.against:
            subprocess.run(["git", "worktree", "add", "--detach", str(earlier), args.against],
                           cwd=REPO, check=True, capture_output=True)
        source = {
            k: v for k, v in os.environ.items()
            if not k.startswith("NEWSDESK_")
            and k not in {"OPENAI_API_KEY", "OPENAI_BASE_URL", "PYTHONPATH", "PYTHONPYCACHEPREFIX"}
        }
        source |= {"NEWSDESK_DATA_DIR": str(Path(tmp) / "data"), "NEWSDESK_LLM": "extractive",
                   "PYTHONDONTWRITEBYTECODE": "1"}
        env = {k: v for k, v in source.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "bytecode")
        subprocess.run(
            [sys.executable, "-m", "assistant.cli", "ingest", str(REPO / "index" / "samples")],
            env=env, check=True, capture_output=True,
        )
        newsdesk = [sys.executable, "-m", "assistant.cli"]
        ask = newsdesk + ["ask", QUESTION]
        if args.timeline:
            timed(ask, env)  # warm the caches and the bytecode
            return timeline(env)
        trees = [("", REPO)] + ([(f" at {args.against}", earlier)] if args.against else [])
        for _, tree in trees:  # warm the OS file cache, the model cache and the bytecode
            timed(newsdesk + ["--help"], env, tree)
            timed(ask, env, tree)
            timed(ask, source, tree)
        rows = {
            name: [timed(command, env, row=name) for _ in range(args.runs)]
            for name, command in [("python -c pass", [sys.executable, "-c", "pass"]),
                                  ("newsdesk --help", newsdesk + ["--help"])]
        }
        conditions = [("", env), (", from source", source)]
        for label, _ in conditions:
            for name, _ in trees:
                rows[f"newsdesk ask{name}{label}"] = []
        for _ in range(args.runs):  # alternating, so every row sees the same load
            for label, environment in conditions:
                for name, tree in trees:
                    row = f"newsdesk ask{name}{label}"
                    rows[row].append(timed(ask, environment, tree, row))
        rows["serve first answer"] = [serve_first_answer(env) for _ in range(args.runs)]
        timed([sys.executable, "-c", TORCH_PROBE.format(q=QUESTION)], env)
        if args.against:
            subprocess.run(["git", "worktree", "remove", "--force", str(earlier)], cwd=REPO,
                           check=True, capture_output=True)
    print(f"started {started}; load average {load_before:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end, on {os.cpu_count()} cores")
    print(f"{args.runs} cold runs each")
    print("| command | median s | min s | max s | median CPU s | target |")
    print("|---|---|---|---|---|---|")
    for name, seconds in rows.items():
        print(summary(name, seconds))
    print(f"peak RSS of `newsdesk serve` after its first answer: median "
          f"{statistics.median(SERVE_RSS):.0f} MiB (max {max(SERVE_RSS):.0f})")
    print("torch imported by `newsdesk ask`: no")


if __name__ == "__main__":
    main()
