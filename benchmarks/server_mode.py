"""Server mode against the embedded default: keyword quality, questions/s of replicas, ingest rate.

Starts a throw-away PostgreSQL and a `chroma run` on loopback (``tests/servers.py``), then:

1. **migrate**: the embedded index of a RealTime QA set (``benchmarks/retrieval.py``'s cache,
   benchmarks/out/SET/newsdesk, built on the first run and reused after) is copied into server
   mode with ``index.migrate`` (timed);
2. **quality**: every question of the set is ranked by the dense, keyword ("bm25": chunk- and
   article-level keyword search fused) and hybrid retrievers over the embedded index (SQLite
   catalog, embedded Chroma) and over the server index (PostgreSQL, `chroma run`), in turn, each
   question with its ``as_of`` date: hit@1, hit@5, MRR@10 of distinct articles and p50/p95
   latency, counted by ``benchmarks/retrieval.py``'s ``evaluate``, and the server's difference;
3. **replicas**: ``newsdesk serve`` processes (extractive answers) over the server index, asked
   the set's questions by ``--clients`` threads for ``--seconds``: one replica, two replicas
   (clients alternate), and one embedded replica as the peer; every replica is warmed first;
4. **ingest**: the first ``--ingest-articles`` articles of the set ingested into a fresh
   embedded folder and into a fresh server collection, same model, articles/s and chunks/s.

Everything is bounded (time and request count) and talks to 127.0.0.1 only.  Run from the
repository root, alone on the machine (the shared heavy-job lock):

    flock /tmp/newsdesk-heavy.lock python benchmarks/server_mode.py --set dev
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "realtimeqa"
sys.path.insert(0, str(REPO))

from benchmarks.load import run_load, wait_until_up
from benchmarks.retrieval import evaluate, ranker, table
from tests import servers

MODES = ("dense", "bm25", "hybrid")


def quality(embedded, server, questions: list[dict], modes: tuple[str, ...] = MODES) -> list[dict]:
    """Each retriever over the embedded index and over the server index, in turn, on the same
    questions (each with its ``as_of``), with one embedding model."""
    from index import open_store
    from index.embeddings import get_embedder

    embedder = get_embedder(embedded)
    stores = {"embedded": (embedded, open_store(embedded)), "server": (server, open_store(server))}
    return [evaluate(f"{name} {mode}", questions, ranker(settings, store, embedder, mode))
            for mode in modes for name, (settings, store) in stores.items()]


def gaps(rows: list[dict], modes: tuple[str, ...] = MODES) -> list[dict]:
    """Server minus embedded, per retriever."""
    by_name = {r["retriever"]: r for r in rows}
    return [{"retriever": mode} | {m: by_name[f"server {mode}"][m] - by_name[f"embedded {mode}"][m]
                                   for m in ("hit@1", "hit@5", "MRR@10")} for mode in modes]


def replica(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = servers.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--no-ui"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc)
    return proc, url


def ask_all(url: str, key: str, questions: list[str]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as http:
        for question in questions:
            http.post("/v1/ask", json={"question": question}).raise_for_status()


def replicas(envs: dict[str, tuple[dict[str, str], int]], questions: list[str], key: str,
             clients: int, seconds: float) -> list[dict]:
    """Questions/s over each configuration's replicas (clients alternate between them)."""
    rows = []
    for name, (env, count) in envs.items():
        started = [replica(env) for _ in range(count)]
        try:
            for _, url in started:
                ask_all(url, key, questions)  # warm: each process embeds its sources' sentences once
            result = run_multi([u for _, u in started], key, questions, clients, seconds)
            rows.append({"configuration": name, **result})
        finally:
            for proc, _ in started:
                proc.terminate()
                proc.wait(30)
    return rows


def run_multi(urls: list[str], key: str, questions: list[str], clients: int,
              seconds: float) -> dict:
    """``run_load`` against several replicas at once: client i asks replica i mod len(urls)."""
    import threading

    results: list[dict] = []
    lock = threading.Lock()
    share = [clients // len(urls) + (i < clients % len(urls)) for i in range(len(urls))]

    def one(url: str, n: int) -> None:
        got = run_load(url, key, questions, clients=n, seconds=seconds, max_requests=20_000,
                       stream=False)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=one, args=(u, n)) for u, n in zip(urls, share, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = sum(r["ok"] for r in results)
    wall = max(r["seconds"] for r in results)
    return {
        "replicas": len(urls),
        "clients": clients,
        "answers": ok,
        "errors": sum(r["errors"] for r in results),
        "questions/s": round(ok / wall, 2),
        "p50 ms (worst replica)": max(r["p50_ms"] for r in results),
        "p95 ms (worst replica)": max(r["p95_ms"] for r in results),
    }


def ingest_rate(embedded, server, corpus: Path, n: int, folder: Path) -> list[dict]:
    from index import ingest
    from index.embeddings import get_embedder

    lines = [line for line in corpus.read_text().splitlines() if line.strip()][:n]
    subset = folder / "subset.jsonl"
    subset.write_text("\n".join(lines) + "\n")
    embedder = get_embedder(embedded)
    embedder.embed_documents(["warm up"])
    rows = []
    for name, settings in (("embedded", embedded), ("server", server)):
        started = time.perf_counter()
        report = ingest([subset], config=settings, embedder=embedder)
        took = time.perf_counter() - started
        rows.append({"configuration": name, "articles": len(report.added),
                     "chunks": report.chunks_written, "seconds": round(took, 1),
                     "articles/s": round(len(report.added) / took, 2),
                     "chunks/s": round(report.chunks_written / took, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="dev", choices=["dev-small", "dev"])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load-questions", type=int, default=40,
                        help="distinct questions the replicas are asked (each warmed first)")
    parser.add_argument("--ingest-articles", type=int, default=150)
    parser.add_argument("--parts", default="quality,replicas,ingest")
    parser.add_argument("--dense-chunks", type=int, default=4,
                        help="leading chunks embedded per article in the set's index (keyword "
                        "quality does not depend on it; fewer build the index faster)")
    parser.add_argument("--modes", default=",".join(MODES), help="quality: the retrievers")
    parser.add_argument("--limit", type=int, default=0,
                        help="quality: only the first N questions (0: all)")
    args = parser.parse_args()
    folder = DATA / args.set
    if not (folder / "corpus.jsonl").exists():
        print(f"{folder} is absent: nothing to benchmark (internal data lives in ../shared).")
        return
    from assistant.settings import get_settings
    from index import ingest
    from index.migrate import migrate

    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()
                 if line.strip()]
    out = REPO / "benchmarks" / "out" / args.set  # shared with benchmarks/retrieval.py
    name = "newsdesk" if args.dense_chunks == 4 else f"newsdesk-dense{args.dense_chunks}"
    embedded = get_settings(data_dir=out / name, llm="extractive",
                            dense_chunks_per_article=args.dense_chunks)
    started = time.perf_counter()
    built = ingest([folder / "corpus.jsonl"], config=embedded)
    print(f"embedded index: {len(built.added)} added, {len(built.unchanged)} unchanged in "
          f"{time.perf_counter() - started:.0f}s", file=sys.stderr)
    parts = set(args.parts.split(","))
    with (servers.postgres() as pg_url, tempfile.TemporaryDirectory() as tmp,
          servers.chroma(Path(tmp) / "chroma") as port):
        server = embedded.updated(data_dir=Path(tmp) / "nothing-here", catalog_url=pg_url,
                                  chroma_host="127.0.0.1", chroma_port=port)
        moved = migrate(embedded, server)
        print(f"\n## migrate\n{len(moved.copied)} articles, {moved.vectors} vectors copied in "
              f"{moved.seconds:.1f}s ({len(moved.copied) / moved.seconds:.1f} articles/s), "
              f"skipped {len(moved.skipped)}")
        if "quality" in parts:
            asked = questions[: args.limit] if args.limit else questions
            modes = tuple(args.modes.split(","))
            rows = quality(embedded, server, asked, modes)
            print(f"\n## retrieval quality, {len(asked)} questions, each with its as_of\n"
                  + table(rows) + "\n\nserver minus embedded:\n" + table(gaps(rows, modes)))
        if "replicas" in parts:
            base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
            key = secrets.token_hex(16)
            base |= {"PYTHONPATH": str(REPO), "NEWSDESK_LLM": "extractive",
                     "NEWSDESK_API_KEY": key}
            remote = base | {"NEWSDESK_CATALOG_URL": pg_url, "NEWSDESK_CHROMA_HOST": "127.0.0.1",
                             "NEWSDESK_CHROMA_PORT": str(port),
                             "NEWSDESK_DATA_DIR": str(Path(tmp) / "nothing-here")}
            local = base | {"NEWSDESK_DATA_DIR": str(out / name),
                            "NEWSDESK_DENSE_CHUNKS_PER_ARTICLE": str(args.dense_chunks)}
            asked = [q["question"] for q in questions[: args.load_questions]]
            rows = replicas({"embedded, 1 replica": (local, 1), "server, 1 replica": (remote, 1),
                             "server, 2 replicas": (remote, 2)}, asked, key, args.clients,
                            args.seconds)
            print(f"\n## questions/s ({args.clients} clients, {args.seconds:.0f} s each)\n"
                  + table(rows))
        if "ingest" in parts:
            rate = ingest_rate(
                get_settings(data_dir=Path(tmp) / "ingest-embedded"),
                get_settings(data_dir=Path(tmp) / "nothing-here", catalog_url=pg_url,
                             chroma_host="127.0.0.1", chroma_port=port,
                             collection="ingest-bench"), folder / "corpus.jsonl",
                args.ingest_articles, Path(tmp))
            print("\n## ingest\n" + table(rate))
        assert not (Path(tmp) / "nothing-here").exists(), "server mode wrote to a local folder"


if __name__ == "__main__":
    main()
