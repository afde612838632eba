"""Where a filtered dense search spends its time in Chroma, on one of the scale benchmark's
archives: the ``where`` query newsdesk runs for a narrow filter (one outlet) taken apart.

For each question (the archive's own, ``benchmarks/scale_corpus.py``), medians over the questions
of: the ``where`` query itself (``n`` results), the metadata filter alone (``get(where=...)``),
the SQL statement Chroma runs for that filter (built as chromadb 1.5.9's
``rust/segment/src/sqlite_metadata.rs`` builds it) timed on a read-only connection, first with
the plan SQLite picks for it and then with the plan it picks once ``ANALYZE`` has given it the
table's statistics (forced here with ``NOT INDEXED``: the rows it returns are the same), the
query restricted to the outlet's vectors by id (``query(ids=...)``: no SQL, only the HNSW
search among them), the unfiltered query, and unfiltered queries of wider result counts with
their metadata (what checking the nearest vectors first costs at each width).

    python benchmarks/where_cost.py /tmp/newsdesk-scale/a100000-s7-g1 --questions 15
    python benchmarks/where_cost.py ARCHIVE --chroma COPY_OF_ITS_CHROMA_FOLDER   # e.g. analyzed

``--chroma`` opens that Chroma folder instead of the archive's own (the questions and the query
vectors are still the archive's), so a copy can be changed and compared without touching the
archive.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FILTER_SQL = (
    "SELECT sub.id, sub.embedding_id FROM (SELECT DISTINCT embeddings.id, "
    "embeddings.embedding_id FROM embeddings {hint} WHERE embeddings.segment_id = ? AND "
    "embeddings.id IN (SELECT id FROM embedding_metadata WHERE (embedding_metadata.key = ? "
    "AND embedding_metadata.key IS NOT NULL) AND embedding_metadata.string_value IN (?)) "
    "ORDER BY embeddings.id ASC LIMIT 4294967295 OFFSET 0) AS sub"
)
"""chromadb 1.5.9's SQL for ``where={"outlet": {"$in": [name]}}`` (``SqliteMetadataReader.get``
with ``MetadataExpression::eval``): ids of the metadata segment's embeddings in a subquery."""


def steps(
    collection: Any, sql: sqlite3.Connection, segment: str, vector: list[float], outlet: str,
    n: int, widths: str,
) -> list[tuple[str, Any]]:
    """The timed calls for one question, by name."""
    from index.vectors import ChromaVectors

    where = {"outlet": {"$in": [outlet]}}
    allowed = [row[1] for row in sql.execute(FILTER_SQL.format(hint="NOT INDEXED"),
                                             (segment, "outlet", outlet))]
    out: list[tuple[str, Any]] = [
        (f"where query, {n}", lambda: collection.query(
            query_embeddings=[vector], n_results=n, where=where, include=["distances"])),
        ("metadata filter alone (get ids)", lambda: collection.get(where=where, include=[])),
        ("its SQL, SQLite's plan without statistics", lambda: sql.execute(
            FILTER_SQL.format(hint=""), (segment, "outlet", outlet)).fetchall()),
        ("its SQL, the plan with statistics (rowid lookups)", lambda: sql.execute(
            FILTER_SQL.format(hint="NOT INDEXED"), (segment, "outlet", outlet)).fetchall()),
        (f"query(ids=the outlet's vectors), {n}", lambda: collection.query(
            query_embeddings=[vector], n_results=n, ids=allowed, include=["distances"])),
        ("read and scored exactly (nearest_exactly)", lambda: ChromaVectors.nearest_exactly(
            SimpleNamespace(collection=collection), vector, where)),  # type: ignore[arg-type]
        (f"no filter, {n}", lambda: collection.query(
            query_embeddings=[vector], n_results=n, include=["distances"])),
    ]
    for w in [int(w) for w in widths.split(",") if w]:
        out.append((f"no filter, {w} with metadata", lambda w=w: collection.query(
            query_embeddings=[vector], n_results=w, include=["distances", "metadatas"])))
        out.append((f"no filter, {w} ids only", lambda w=w: collection.query(
            query_embeddings=[vector], n_results=w, include=["distances"])))
    return out


def open_collection(archive: Path, chroma: Path | None) -> Any:
    """The archive's collection, or the one of the same name in the folder ``chroma``."""
    from benchmarks import scale
    from index.store import Store

    settings = scale.settings_for(archive)
    if chroma is None:
        return Store(settings).collection, settings.index.chroma_path
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(path=str(chroma),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    return client.get_collection(settings.index.collection), chroma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--chroma", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--n", type=int, default=100, help="results per query (dense asks 100)")
    parser.add_argument("--widths", default="750,2500,7500")
    args = parser.parse_args()
    from benchmarks import scale, scale_corpus

    size = int(args.archive.name[1:].split("-")[0])
    collection, folder = open_collection(args.archive, args.chroma)
    sql = sqlite3.connect(f"file:{Path(folder) / 'chroma.sqlite3'}?mode=ro", uri=True)
    segment = sql.execute("SELECT id FROM segments WHERE scope = 'METADATA'").fetchone()[0]
    embedder = scale.real_embedder()
    asked = scale_corpus.questions(args.seed, args.questions + 3, size)
    total = collection.count()
    times: dict[str, list[float]] = {}
    rows: list[tuple[str, float, dict[str, float]]] = []

    for i, q in enumerate(asked):
        vector = embedder.embed_query(q.text)
        mine: dict[str, float] = {}
        for name, call in steps(collection, sql, segment, vector, q.outlet, args.n, args.widths):
            started = time.perf_counter()
            got = call()
            mine[name] = 1000 * (time.perf_counter() - started)
            if name.startswith("metadata"):
                share = len(got["ids"]) / total
        if i >= 3:  # the first three warm up
            rows.append((q.outlet, share, mine))
            for name, ms in mine.items():
                times.setdefault(name, []).append(ms)
    shares = [s for _, s, _ in rows]
    print(f"{args.archive.name} ({folder}): {total:,} vectors, {args.questions} questions, "
          f"outlet share median {statistics.median(shares):.4f} (min {min(shares):.4f}, "
          f"max {max(shares):.4f})")
    print("| step | p50 ms | max ms |\n|---|---:|---:|")
    for name, samples in times.items():
        print(f"| {name} | {statistics.median(samples):.1f} | {max(samples):.1f} |")
    print("\nper question, by share (ms): where / get / SQL as planned / SQL by rowid / ids / exact")
    for outlet, share, mine in sorted(rows, key=lambda r: r[1]):
        print(f"  {share:.4f} {outlet:22s} " + " / ".join(f"{v:.1f}" for v in list(mine.values())[:6]))


if __name__ == "__main__":
    main()
