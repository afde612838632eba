"""Where a filtered dense search spends its time in Chroma, on one of the scale benchmark's
archives: the ``where`` query newsdesk runs for a narrow filter (one outlet) taken apart.

For each question (the archive's own, ``benchmarks/scale_corpus.py``), medians over the questions
of: the ``where`` query itself (50 results), the metadata filter alone (``get(where=...)``),
the unfiltered query, and unfiltered queries of wider result counts with their metadata (what
checking the nearest vectors first costs at each width).

    python benchmarks/where_cost.py /tmp/newsdesk-scale/a100000-s7-g1 --questions 15
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def steps(collection: Any, vector: list[float], where: dict, widths: str) -> list[tuple[str, Any]]:
    """The timed calls for one question, by name."""
    out: list[tuple[str, Any]] = [
        ("where query, 50", lambda: collection.query(
            query_embeddings=[vector], n_results=50, where=where, include=["distances"])),
        ("metadata filter alone (get ids)", lambda: collection.get(where=where, include=[])),
        ("no filter, 50", lambda: collection.query(
            query_embeddings=[vector], n_results=50, include=["distances"])),
    ]
    for w in [int(w) for w in widths.split(",")]:
        out.append((f"no filter, {w} with metadata", lambda w=w: collection.query(
            query_embeddings=[vector], n_results=w, include=["distances", "metadatas"])))
        out.append((f"no filter, {w} ids only", lambda w=w: collection.query(
            query_embeddings=[vector], n_results=w, include=["distances"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--questions", type=int, default=15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--widths", default="150,750,2500,7500")
    args = parser.parse_args()
    from benchmarks import scale, scale_corpus
    from index.store import Store

    size = int(args.archive.name[1:].split("-")[0])
    store = Store(scale.settings_for(args.archive))
    embedder = scale.real_embedder()
    asked = scale_corpus.questions(args.seed, args.questions + 3, size)
    collection = store.collection
    total = collection.count()
    times: dict[str, list[float]] = {}

    def timed(name: str, call) -> object:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        out = call()
        times.setdefault(name, []).append(1000 * (time.perf_counter() - started))
        return out

    shares = []
    for i, q in enumerate(asked):
        vector = embedder.embed_query(q.text)
        where = {"outlet": {"$in": [q.outlet]}}
        for name, call in steps(collection, vector, where, args.widths):
            got = timed(name, call)
            if name.startswith("metadata"):
                shares.append(len(got["ids"]) / total)  # type: ignore[index]
        if i < 3:  # warm-up
            times.clear()
            shares.clear()
    print(f"{args.archive.name}: {total:,} vectors, {args.questions} questions, outlet share "
          f"median {statistics.median(shares):.4f} (min {min(shares):.4f}, max {max(shares):.4f})")
    print("| step | p50 ms | max ms |\n|---|---:|---:|")
    for name, ms in times.items():
        print(f"| {name} | {statistics.median(ms):.1f} | {max(ms):.1f} |")


if __name__ == "__main__":
    main()
