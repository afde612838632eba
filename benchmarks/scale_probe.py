"""The out-of-process parts of ``benchmarks/scale.py``: a cold start, ``newsdesk serve``'s memory,
and the index's disk use split into catalog, keyword index and Chroma; and, in process, filtered
dense search along each of its paths (``dense_paths``).

Run as a script, this file is the cold-start probe itself: a fresh process that opens the index
in DATA_DIR and answers one hybrid question, printing (as JSON) how long each stage took and the
resident memory after it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of a process (Linux), MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM", "RssAnon", "RssFile"}:
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def evict(folder: Path) -> None:
    """Drop the folder's files from the OS page cache, so the next open reads the disk."""
    os.sync()
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cold_open(
    data: Path, *, evict_first: bool, question: str, env: dict[str, str] | None = None,
    scan_while_cold: bool = True,
) -> dict[str, Any]:
    """A fresh process opening the index and answering its first (hybrid) question: its wall
    time from start to answer, and the probe's own stages.  ``env`` adds to its environment
    (``NEWSDESK_CHROMA_HOST``, for one); ``scan_while_cold`` False makes it load Chroma's
    graph for its first question (as before the scan table answered those)."""
    if evict_first:
        evict(data)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, str(data), question, "scan" if scan_while_cold else "chroma",
         repr(time.time())],
        capture_output=True, text=True, check=False,
        env=os.environ | {"PYTHONPATH": str(REPO)} | (env or {}),
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cold-open probe failed:\n{done.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), **json.loads(done.stdout.strip().splitlines()[-1])}


def serve_memory(data: Path, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Start ``newsdesk serve`` (extractive writer, hybrid retrieval) on the index, ask it each
    body in turn (the warm-up), wait for its memory to settle (Chroma's graph loaded on a
    thread), ask each again (timed), then read its resident memory."""
    import httpx

    from benchmarks.load import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env |= {"NEWSDESK_DATA_DIR": str(data), "NEWSDESK_LLM": "extractive", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--no-ui"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/ask"
    try:
        first = None
        while first is None:
            if server.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit(f"newsdesk serve did not answer (exit code {server.returncode})")
            try:
                response = httpx.post(url, json=bodies[0], timeout=120)
                response.raise_for_status()
                first = time.perf_counter() - started
            except httpx.TransportError:
                time.sleep(0.1)
        for body in bodies:  # the warm-up: Chroma's graph starts loading on a thread
            httpx.post(url, json=body, timeout=120).raise_for_status()
        settled = _settle(server.pid, started)
        seconds = []
        for body in bodies:  # the steady state
            asked = time.perf_counter()
            httpx.post(url, json=body, timeout=120).raise_for_status()
            seconds.append(time.perf_counter() - asked)
        memory = _status(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "first_answer_s": round(first, 2),
        "settled_s": settled,
        "answers": len(seconds),
        "answer_median_s": round(sorted(seconds)[len(seconds) // 2], 3),
        "rss_mib": memory["VmRSS"],
        "hwm_mib": memory["VmHWM"],
        "anon_mib": memory["RssAnon"],
        "file_mib": memory["RssFile"],
    }


def _settle(pid: int, started: float, quiet: float = 10.0, limit: float = 300.0) -> float:
    """Seconds from ``started`` until the process's anonymous memory has grown by less than 1%
    over ``quiet`` seconds (Chroma's graph loaded), or ``limit``."""
    last, since = _status(pid)["RssAnon"], time.perf_counter()
    while time.perf_counter() - started < limit:
        time.sleep(2)
        now = _status(pid)["RssAnon"]
        if now > last * 1.01:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            break
    return round(time.perf_counter() - started, 1)


def disk_usage(data: Path, size: int) -> dict[str, Any]:
    """Bytes of the catalog tables, the keyword tables (``kw_*``, in the same SQLite file) and
    Chroma (its own SQLite file, and the vector index files), and each per 1,000 articles."""
    catalog_file = data / "catalog.sqlite3"
    db = sqlite3.connect(catalog_file)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        tables = dict(db.execute("SELECT name, tbl_name FROM sqlite_schema"))
    finally:
        db.close()
    keyword = sum(n for name, n in pages if tables.get(name, name).startswith("kw_"))
    on_disk = sum(p.stat().st_size for p in data.glob("catalog.sqlite3*"))
    chroma = data / "chroma"
    chroma_sqlite = sum(p.stat().st_size for p in chroma.glob("chroma.sqlite3*"))
    chroma_all = sum(p.stat().st_size for p in chroma.rglob("*") if p.is_file())
    split = {
        "catalog": on_disk - keyword,
        "keywords": keyword,
        "chroma": chroma_all,
        "chroma_sqlite": chroma_sqlite,
        "chroma_vector_index": chroma_all - chroma_sqlite,
    }
    return {
        "bytes": split,
        "per_1k_mb": {k: round(v / size * 1000 / 1e6, 1) for k, v in split.items()},
        "total_gb": round((on_disk + chroma_all) / 1e9, 2),
    }


PATHS = {"chosen": None, "before scan": (0.1, 1500, False), "nearest-first": (0.0, 0, False),
         "where": (2.0, 0, False), "scan": (2.0, 0, True)}
"""Dense filter paths compared by ``dense_paths``, as ``DenseSearch.postfilter_share``,
``DenseSearch.exact_max`` and whether the scan table is used: the one chosen by the filter's
selectivity (the defaults); the same choice without the scan table (the code before it, with
narrow filters up to 1,500 vectors read from Chroma and scored exactly); always the nearest
vectors first (what the code did before the choice); always Chroma's ``where`` (what it did
before the nearest-first path); always the scan table."""


def dense_paths(store: Any, settings: Any, asked: list[Any], embedder: Any) -> dict[str, Any]:
    """p50/p95 of the dense and hybrid retrievers with an outlet filter and with as_of, along each
    of ``PATHS``, the paths taking turns question by question (each as often first, and after
    each other path, so the order favours none) and share the machine's load; with the Chroma
    queries per search, and for dense each question's estimated share and milliseconds per path
    (the crossover).  ``asked[:3]`` only warm up."""
    import numpy as np

    from assistant.retrieve import Filters, get_retriever

    chosen = (store.dense.postfilter_share, store.dense.exact_max, store.scan is not None)
    table = store.scan
    query, exactly = store.vectors.query, store.vectors.nearest_exactly
    calls = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return query(*args, **kwargs)

    def counted_exactly(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return exactly(*args, **kwargs)

    kinds = {"outlet": lambda q: Filters(outlets=[q.outlet]), "as_of": lambda q: Filters(as_of=q.as_of)}
    k = settings.retrieval.top_k
    out: dict[str, Any] = {}
    store.vectors.warm()  # as in a long-running process: Chroma's graph loaded
    store.vectors.query, store.vectors.nearest_exactly = counted, counted_exactly
    try:
        for name in ("dense", "hybrid"):
            retriever = get_retriever(name, settings=settings, store=store, embedder=embedder)
            for q in asked[:3]:
                retriever.retrieve(q.text, Filters(), k)
            for kind, filters in kinds.items():
                seconds: dict[str, list[float]] = {p: [] for p in PATHS}
                queries: dict[str, int] = dict.fromkeys(PATHS, 0)
                estimates, shares = [], []
                for i, q in enumerate(asked[3:]):
                    within = filters(q).keyword_filter()
                    started = time.perf_counter()
                    total, of_outlets, of_days = store.catalog.dense_counts(within)
                    estimates.append(time.perf_counter() - started)
                    shares.append(of_outlets * of_days / total / total)
                    turn = i % len(PATHS)
                    order = list(PATHS)[turn:] + list(PATHS)[:turn]
                    if i // len(PATHS) % 2:  # each path goes first, and after each other, as often
                        order.reverse()
                    for path in order:
                        store.dense.postfilter_share, store.dense.exact_max, scanned = PATHS[path] or chosen
                        store.scan = table if scanned else None
                        calls[0] = 0
                        started = time.perf_counter()
                        retriever.retrieve(q.text, filters(q), k)
                        seconds[path].append(time.perf_counter() - started)
                        queries[path] += calls[0]
                cell: dict[str, Any] = {
                    path: {**percentiles(seconds[path]),
                           "chroma_queries_per_search": round(queries[path] / len(shares), 2)}
                    for path in PATHS
                }
                cell["estimate_p50_ms"] = round(float(np.median(estimates)) * 1000, 3)
                if name == "dense":
                    cell["per_question"] = [
                        [round(share, 4), *(round(seconds[p][j] * 1000, 1) for p in PATHS)]
                        for j, share in enumerate(shares)
                    ]
                out[f"{name}/{kind}"] = cell
                print(f"  {name:6} {kind:6} " + "  ".join(
                    f"{p} {cell[p]['p50_ms']}/{cell[p]['p95_ms']} ms" for p in PATHS), flush=True)
    finally:
        store.dense.postfilter_share, store.dense.exact_max, _ = chosen
        store.scan = table
        del store.vectors.query, store.vectors.nearest_exactly
    return out


def run_on_archives(
    compare: Callable[[Path, int], dict[str, Any]], doc: str, questions: int
) -> None:
    """A comparison script's command line: ``compare(folder, questions)`` for each archive
    folder given, printed as one JSON object per archive."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("archives", type=Path, nargs="+", help="archive folders of scale.py")
    parser.add_argument("--questions", type=int, default=questions)
    args = parser.parse_args()
    for folder in args.archives:
        print(json.dumps(compare(folder, args.questions)), flush=True)


def percentiles(seconds: list[float]) -> dict[str, float]:
    import numpy as np

    p50, p95 = np.percentile(seconds, [50, 95])
    return {"p50_ms": round(float(p50) * 1000, 1), "p95_ms": round(float(p95) * 1000, 1)}


def _probe(
    data: Path, question: str, first: str = "scan", launched: str | None = None
) -> dict[str, Any]:
    """In a fresh process: import, open, answer one hybrid question, answer a second; with
    ``first`` "chroma", Chroma's graph is loaded for the first (else it is scanned).
    ``launched`` (the parent's ``time.time()`` as it started the process) gives
    ``first_answer_wall_s``: from the launch to the first answer, the interpreter's own start
    included, the second question and the exit not."""
    started = time.perf_counter()
    from assistant.retrieve import Filters, get_retriever
    from assistant.settings import get_settings
    from index.store import open_store

    stages: dict[str, Any] = {"import_s": time.perf_counter() - started, "rss_import": _status()}
    settings = get_settings(data_dir=data)
    store = open_store(settings)
    store.dense.scan_while_cold = first != "chroma"
    store.count_articles()
    stages["open_s"] = time.perf_counter() - started - stages["import_s"]
    stages["rss_open"] = _status()
    retriever = get_retriever("hybrid", settings=settings, store=store)
    asked = time.perf_counter()
    answered = retriever.retrieve(question, Filters(), settings.retrieval.top_k)
    stages["first_query_s"] = time.perf_counter() - asked
    if launched:
        stages["first_answer_wall_s"] = time.time() - float(launched)
    stages["first_query_parts_s"] = {k: round(v, 3) for k, v in answered.timings.items()}
    stages["rss_first_query"] = _status()
    asked = time.perf_counter()
    retriever.retrieve(question + " today", Filters(), settings.retrieval.top_k)
    stages["second_query_s"] = time.perf_counter() - asked
    stages["in_process_s"] = time.perf_counter() - started
    host = settings.index.chroma_host
    stages["chroma"] = f"server {host}:{settings.index.chroma_port}" if host else "embedded"
    stages["chroma_imported"] = "chromadb" in sys.modules
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in stages.items()}


if __name__ == "__main__":
    print(json.dumps(_probe(Path(sys.argv[1]), *sys.argv[2:5])))
