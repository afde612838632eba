"""Retrieval quality and latency on RealTime QA: dense, BM25 and hybrid beside llama-index's default.

For every question of a set, each retriever ranks chunks over the set's whole article pool; the
ranking is reduced to distinct articles.  Reported per retriever:

- hit@1, hit@5: a relevant article (``relevant_doc_ids``) among the first k distinct articles;
- MRR over the first 10 distinct articles;
- answer@5: an accepted answer string inside the top-5 chunks' text, both normalised by
  ``evals.metrics.normalise`` (the evaluation's answer normalisation);
- p50/p95 retrieval latency (query embedding included).

The baseline is llama-index out of the box: ``VectorStoreIndex.from_documents`` (default
SentenceSplitter, same bundled embedding model, Chroma) and ``as_retriever(similarity_top_k=10)``.

Run from the repository root (indexes are cached under benchmarks/out/, reused when complete):

    python benchmarks/retrieval.py --set dev-small
    python benchmarks/retrieval.py --set dev --as-of      # also with each question's as_of date
    python benchmarks/retrieval.py --set dev --as-of --dense-all --no-baseline   # + every chunk embedded

The data stays in ../shared/data; the script exits cleanly when it is absent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "realtimeqa"
sys.path.insert(0, str(REPO))

from evals.metrics import normalise


def indexed_set(name: str, out: Path) -> tuple[Path, list[dict]] | None:
    """The data folder of an index this script built for set ``name``, and the set's questions;
    None (after saying why) when the data or the index is absent."""
    folder, data_dir = DATA / name, out / name / "newsdesk"
    if not (folder / "questions.jsonl").exists():
        print(f"{folder} is absent: nothing to run (internal data lives in ../shared).")
        return None
    if not (data_dir / "catalog.sqlite3").exists():
        print(f"no index in {data_dir}: run `python benchmarks/retrieval.py --set {name}` first")
        return None
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()
                 if line.strip()]
    return data_dir, questions


def distinct(ids: list[str]) -> list[str]:
    """Article ids in first-seen order."""
    return list(dict.fromkeys(ids))


Ranker = Callable[[dict], tuple[list[str], list[str]]]
"""question record → (article ids of ranked chunks, texts of ranked chunks)."""


def evaluate(name: str, questions: list[dict], ranker: Ranker) -> dict:
    """Run one retriever over all questions and summarise."""
    hit1 = hit5 = ans5 = rr = 0.0
    latencies = []
    for q in questions:
        started = time.perf_counter()
        article_ids, texts = ranker(q)
        latencies.append(time.perf_counter() - started)
        ranked = distinct(article_ids)
        relevant = set(q["relevant_doc_ids"])
        hit1 += bool(ranked[:1] and ranked[0] in relevant)
        hit5 += bool(relevant & set(ranked[:5]))
        rr += next((1 / (i + 1) for i, a in enumerate(ranked[:10]) if a in relevant), 0.0)
        top = normalise(" ".join(texts[:5]))
        ans5 += any(normalise(a) and normalise(a) in top for a in q["answers"])
    n = len(questions)
    latencies.sort()
    return {
        "retriever": name,
        "hit@1": hit1 / n,
        "hit@5": hit5 / n,
        "MRR@10": rr / n,
        "answer@5": ans5 / n,
        "p50 ms": 1000 * statistics.median(latencies),
        "p95 ms": 1000 * latencies[min(n - 1, int(0.95 * n))],
    }


def newsdesk_rankers(
    corpus: Path, out: Path, use_as_of: bool, recency: str, dense_chunks: int = 4,
    modes: tuple[str, ...] = ("dense", "bm25", "hybrid"),
) -> dict[str, Ranker]:
    """newsdesk's retrievers over an index of ``corpus`` that embeds the first ``dense_chunks``
    chunks of each article (0: all; the default index lives in ``out/newsdesk``)."""
    from assistant.settings import get_settings
    from index import ingest, open_store
    from index.embeddings import get_embedder

    folder = out / ("newsdesk" if dense_chunks == 4 else f"newsdesk-dense{dense_chunks}")
    settings = get_settings(data_dir=folder, recency=recency,
                            dense_chunks_per_article=dense_chunks)
    started = time.perf_counter()
    report = ingest([corpus], config=settings)
    print(f"newsdesk index: {len(report.added)} added, {len(report.unchanged)} unchanged "
          f"in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    store, embedder = open_store(settings), get_embedder(settings)
    label = "" if dense_chunks == 4 else (
        " (every chunk embedded)" if dense_chunks == 0 else f" (first {dense_chunks} embedded)"
    )
    return {f"newsdesk {m}{label}": ranker(settings, store, embedder, m, use_as_of)
            for m in modes}


def ranker(settings: Any, store: Any, embedder: Any, mode: str, use_as_of: bool = True) -> Ranker:
    """newsdesk's ``mode`` retriever (dense, bm25, hybrid) over ``store``, top 30 chunks, each
    question with its ``as_of`` date when ``use_as_of``; the store's keyword search and the
    embedder are warmed first, so no question pays for loading them."""
    from assistant.retrieve import Filters, retrieve

    store.keyword_index()
    embedder.embed_query("warm up")

    def rank(q: dict) -> tuple[list[str], list[str]]:
        as_of = q.get("as_of") if use_as_of else None
        filters = Filters(as_of=date.fromisoformat(as_of)) if as_of else None
        hits = retrieve(q["question"], filters, mode=mode, k=30, settings=settings,
                        store=store, embedder=embedder).hits
        rows = store.chunks([h.chunk_id for h in hits[:5]])
        return [h.article_id for h in hits], [rows[h.chunk_id].embed_text for h in hits[:5]]

    return rank


def baseline_ranker(corpus: Path, out: Path) -> Ranker:
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.settings import get_settings
    from index.embeddings import get_embedder

    embed_model = get_embedder(get_settings()).model
    records = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    client = chromadb.PersistentClient(path=str(out / "baseline"))
    collection = client.get_or_create_collection("baseline")
    vector_store = ChromaVectorStore(chroma_collection=collection)
    marker = out / "baseline" / "complete"
    if not marker.exists():
        client.delete_collection("baseline")
        collection = client.get_or_create_collection("baseline")
        vector_store = ChromaVectorStore(chroma_collection=collection)
        docs = [Document(text=r["text"], id_=r["id"],
                         metadata={"title": r["title"], "outlet": r["outlet"] or ""})
                for r in records]
        started = time.perf_counter()
        VectorStoreIndex.from_documents(
            docs, storage_context=StorageContext.from_defaults(vector_store=vector_store),
            embed_model=embed_model)
        marker.write_text("ok")
        print(f"baseline index built in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=10)

    def rank(q: dict) -> tuple[list[str], list[str]]:
        nodes = retriever.retrieve(q["question"])
        return [n.node.ref_doc_id or "" for n in nodes], [n.node.get_content() for n in nodes[:5]]

    return rank


def table(rows: list[dict]) -> str:
    """Markdown table of the summaries."""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(
            f"{r[c]:.3f}" if isinstance(r[c], float) and "ms" not in c else
            f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="dev-small", choices=["dev-small", "dev"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--as-of", action="store_true", help="pass each question's as_of date")
    parser.add_argument("--recency", default="auto", choices=["auto", "on", "off"],
                        help="newsdesk's recency boost (default: auto, for 'latest' questions)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--dense-all", action="store_true",
                        help="also an index with every chunk embedded (dense and hybrid rows)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    args = parser.parse_args()
    folder = DATA / args.set
    if not (folder / "corpus.jsonl").exists():
        print(f"{folder} is absent: nothing to benchmark (internal data lives in ../shared).")
        return
    out = args.out / args.set
    out.mkdir(parents=True, exist_ok=True)
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()
                 if line.strip()]
    if args.limit:
        questions = questions[: args.limit]
    rankers = newsdesk_rankers(folder / "corpus.jsonl", out, args.as_of, args.recency)
    if args.dense_all:
        rankers |= newsdesk_rankers(folder / "corpus.jsonl", out, args.as_of, args.recency,
                                    dense_chunks=0, modes=("dense", "hybrid"))
    if not args.no_baseline:
        rankers["llama-index default (dense)"] = baseline_ranker(folder / "corpus.jsonl", out)
    rows = [evaluate(name, questions, ranker) for name, ranker in rankers.items()]
    print(f"\n{args.set}: {len(questions)} questions, as_of {'on' if args.as_of else 'off'}, "
          f"recency {args.recency}")
    print(table(rows))


if __name__ == "__main__":
    main()
