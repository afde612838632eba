"""Retrieval quality against the number of vectors per article (``dense_chunks_per_article``).

The memory of ``newsdesk serve`` grows with the vectors Chroma holds (its HNSW index is loaded
whole into each process; ``benchmarks/scale.py``), so an archive's size in RAM is set by how many
leading chunks of each article are embedded.  This script builds one index of a RealTime QA set
for each count asked (``--counts 1,2,4``), in one run, and ranks every question with each
retriever, each question's ``as_of`` applied (``benchmarks/retrieval.py``'s metrics).

Every index is built by the real ingest pipeline (reading, Punkt, dates, chunking, keyword index,
Chroma).  Vectors already computed by the model for the same chunk text (``--vectors-from``, an
index of the same set such as the default one ``retrieval.py`` caches) are looked up instead of
being recomputed: the model is deterministic, so they are the vectors it would give (every other
chunk is embedded by the model, and the number is printed).

Run from the repository root, under the heavy-job lock:

    python benchmarks/dense_chunks.py --set dev-small --counts 1,2,3,4 --fresh
    python benchmarks/dense_chunks.py --set dev --counts 1,2 --modes '' --fresh  # builds only
    python benchmarks/dense_chunks.py --set dev --counts 1,2,4 --vectors-from DIR  # + 4, ranks

An index whose build was cut short is completed by the next run (ingest is incremental), so the
builds can be spread over several lock holds and the questions asked of all of them in one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.retrieval import DATA, evaluate, ranker, table


class KnownVectors:
    """The real embedder, answering from vectors it already computed when the text matches.

    Everything but ``embed_documents`` is the real embedder's.
    """

    def __init__(self, real: Any, known: dict[str, list[float]]) -> None:
        self.real = real
        self.known = known
        self.looked_up = 0
        self.embedded = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Known vectors by text; the model's for the rest."""
        missing = [t for t in texts if t not in self.known]
        fresh = dict(zip(missing, self.real.embed_documents(missing), strict=True))
        self.looked_up += len(texts) - len(missing)
        self.embedded += len(missing)
        return [self.known[t] if t in self.known else fresh[t] for t in texts]


def known_vectors(folder: Path) -> dict[str, list[float]]:
    """Chunk text → vector for every vector of the newsdesk index in ``folder`` (read from a
    copy, so the folder itself is never opened for writing)."""
    from assistant.settings import get_settings
    from index.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "index"
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.lock", "bm25"))
        store = Store(get_settings(data_dir=copy))
        texts = {c.id: c.embed_text for c in store.all_chunks()}
        out: dict[str, list[float]] = {}
        offset = 0
        while True:
            got = store.collection.get(include=["embeddings"], limit=5000, offset=offset)
            for cid, vector in zip(got["ids"], got["embeddings"], strict=True):
                if cid in texts:
                    out[texts[cid]] = [float(x) for x in vector]
            if len(got["ids"]) < 5000:
                break
            offset += 5000
        store.close()
    return out


def build(
    corpus: Path, folder: Path, count: int, embedder: Any, *, fresh: bool
) -> tuple[Any, Any, dict]:
    """An index of ``corpus`` in ``folder`` embedding the first ``count`` chunks of each
    article (built afresh if ``fresh``, else completed: a build done by an earlier run is
    reused as it is): its settings, its store, and what the build cost."""
    from assistant.settings import get_settings
    from index import ingest, open_store

    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    settings = get_settings(data_dir=folder, dense_chunks_per_article=count)
    started = time.perf_counter()
    report = ingest([corpus], config=settings, embedder=embedder)
    store = open_store(settings)
    stats = store.stats()
    return settings, store, {
        "dense_chunks_per_article": count,
        "articles": stats["articles"],
        "added now": len(report.added),
        "chunks": stats["chunks"],
        "vectors": stats["dense_chunks"],
        "build_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="dev-small", choices=["dev-small", "dev"])
    parser.add_argument("--counts", default="1,2,4", help="dense_chunks_per_article values")
    parser.add_argument("--modes", default="dense,hybrid",
                        help="retrievers to rank with ('' to build the indexes only)")
    parser.add_argument("--fresh", action="store_true", help="rebuild indexes built before")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--vectors-from", type=Path, help="an index of the same articles")
    args = parser.parse_args()
    folder = DATA / args.set
    if not (folder / "corpus.jsonl").exists():
        print(f"{folder} is absent: nothing to measure (internal data lives in ../shared).")
        return
    from assistant.settings import get_settings
    from index.embeddings import get_embedder

    real = get_embedder(get_settings())
    known = known_vectors(args.vectors_from) if args.vectors_from else {}
    embedder = KnownVectors(real, known)
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()
                 if line.strip()]
    rows, builds = [], []
    for count in [int(c) for c in args.counts.split(",")]:
        settings, store, built = build(
            folder / "corpus.jsonl", args.out / args.set / f"dense-count-{count}", count, embedder,
            fresh=args.fresh,
        )
        builds.append(built)
        print(f"built {built}; vectors looked up {embedder.looked_up}, embedded "
              f"{embedder.embedded} so far", file=sys.stderr, flush=True)
        for mode in [m for m in args.modes.split(",") if m]:
            rank = ranker(settings, store, real, mode, use_as_of=True)
            rows.append(evaluate(f"{mode}, first {count} embedded", questions, rank))
    print(f"\n{args.set}: {len(questions)} questions, each with its as_of")
    print(table([{**b} for b in builds]))
    print()
    if rows:
        print(table(rows))


if __name__ == "__main__":
    main()
