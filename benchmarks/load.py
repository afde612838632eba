"""HTTP load: many concurrent clients asking questions of `newsdesk serve`, on loopback only.

Indexes the bundled sample articles into a temporary folder, starts the service in a separate
process (extractive mode, an API key set, 127.0.0.1 only), asks every evaluation question once
(the first answer over an article embeds its sentences, which are then cached: the run measures
the steady state), then runs N client threads that each ask the evaluation questions over and
over (``POST /v1/ask``) for a fixed time.  Reports requests/s, latency percentiles and every
error.  Bounded: at most ``--seconds`` of load and ``--max-requests`` requests, whichever comes
first.

With ``--writers`` the same run also writes into the served folder the way a newsroom does:
one thread runs `newsdesk ingest FILE` and `newsdesk remove ID` as separate processes (a second
writer beside the server), another posts and deletes articles through the server itself, and the
clients' questions carry filters (as_of, outlets, since/until), which is what broke when another
process wrote (issue 13).  At the end every article written and not removed must be in the
catalog exactly once with all its vectors, and no removed one may remain.

Run from the repository root:

    python benchmarks/load.py                         # 32 clients for 30 s
    python benchmarks/load.py --clients 8 --seconds 10 --stream
    python benchmarks/load.py --clients 16 --seconds 75 --writers
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.writers import FILTERS, Writers, check_written

SERVER = """
import sys
from assistant.api import serve
from assistant.settings import get_settings
serve("127.0.0.1", int(sys.argv[1]), get_settings(data_dir=sys.argv[2], llm="extractive"))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_index(data_dir: Path) -> int:
    """Ingest the bundled samples; return how many articles are indexed."""
    from assistant.settings import get_settings
    from index import ingest

    report = ingest([REPO / "index" / "samples"], config=get_settings(data_dir=data_dir))
    return len(report.added) + len(report.unchanged)


def wait_until_up(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not come up in time")


def warm_up(url: str, key: str, questions: list[str]) -> None:
    """Ask every question once, so the run measures the steady state, not first-time work."""
    from concurrent.futures import ThreadPoolExecutor

    def ask(question: str) -> None:
        response = httpx.post(
            f"{url}/v1/ask", json={"question": question},
            headers={"Authorization": f"Bearer {key}"}, timeout=120,
        )
        response.raise_for_status()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(ask, questions))


def run_load(
    url: str, key: str, questions: list[str], *, clients: int, seconds: float,
    max_requests: int, stream: bool, filtered: bool = False,
) -> dict[str, object]:
    """Hammer POST /v1/ask from ``clients`` threads; return counts and latencies."""
    latencies: list[float] = []
    errors: list[str] = []
    server_errors = 0
    lock = threading.Lock()
    issued = 0
    start_line = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(number: int) -> None:
        nonlocal issued, server_errors
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            n = number
            start_line.wait()
            while time.monotonic() < stop_at[0]:
                with lock:
                    if issued >= max_requests:
                        return
                    issued += 1
                body = {"question": questions[n % len(questions)], "stream": stream}
                if filtered:
                    body |= FILTERS[n % len(FILTERS)]
                n += clients
                began = time.perf_counter()
                try:
                    response = http.post("/v1/ask", json=body)
                    answered = '"type": "answer"' in response.text if stream else (
                        "citations" in response.json()
                    )
                    ok = response.status_code == 200 and answered
                    problem = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
                    if response.status_code >= 500:
                        with lock:
                            server_errors += 1
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - began
                with lock:
                    (errors.append(problem) if problem else latencies.append(elapsed))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop_at[0] = began + seconds
    start_line.wait()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    ordered = sorted(latencies)
    cuts = [0.0] * 99
    if len(ordered) >= 2:
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": len(errors),
        "5xx": server_errors,
        "requests_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(cuts[49] * 1000),
        "p95_ms": round(cuts[94] * 1000),
        "p99_ms": round(cuts[98] * 1000),
        "max_ms": round(max(ordered, default=0.0) * 1000),
        "first_errors": errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--stream", action="store_true", help="ask for server-sent events")
    parser.add_argument("--writers", action="store_true",
                        help="also ingest/remove from a second process and through the server, "
                        "and ask with filters")
    args = parser.parse_args()
    if not (1 <= args.clients <= 256 and 0 < args.seconds <= 600):
        raise SystemExit("keep it bounded: 1-256 clients, at most 600 seconds")

    questions = [
        json.loads(line)["question"]
        for line in (REPO / "evals" / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="newsdesk-load-") as folder:
        data_dir = Path(folder) / "data"
        print(f"indexing the sample articles into {data_dir} ...", flush=True)
        articles = build_index(data_dir)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "NEWSDESK_API_KEY": key}
        log = open(Path(folder) / "server.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port), str(data_dir)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(url, server)
            warm_up(url, key, questions)
            print(
                f"server up on {url} ({articles} articles, extractive); "
                f"{args.clients} clients for {args.seconds:.0f} s ...", flush=True,
            )
            writers = Writers(url, key, data_dir, Path(folder)) if args.writers else None
            if writers:
                writers.start(args.seconds)
            result = run_load(
                url, key, questions, clients=args.clients, seconds=args.seconds,
                max_requests=args.max_requests, stream=args.stream, filtered=args.writers,
            )
            if writers:
                result |= writers.finish()
                result |= check_written(data_dir, writers)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        if result["errors"]:
            tail = (Path(folder) / "server.log").read_text(errors="replace")[-3000:]
            print("server log (tail):\n" + tail)
    print(json.dumps(result, indent=2))
    columns = ["clients", "seconds", "requests", "errors", "5xx", "requests_per_s", "p50_ms",
               "p95_ms", "p99_ms", "max_ms"]
    if args.writers:
        columns += ["cli_ingests", "cli_removes", "http_posts", "http_deletes", "write_errors",
                    "records_lost", "removed_but_present"]
    heads = [c.replace("_per_s", "/s").replace("_ms", " ms") for c in columns]
    print("\n| " + " | ".join(heads) + " |")
    print("|" + "---:|" * len(columns))
    print("| " + " | ".join(str(result[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
