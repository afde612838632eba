"""Vectors left pending for Chroma, and given to it later: ``defers``, ``give_pending``.

Embedded Chroma loads its whole graph into a process before that process's first write there
(seconds per hundred thousand vectors).  A write by a process that has not loaded it, into an
archive large enough for that to cost, leaves its vectors out of Chroma: they are committed
with the catalog and the scan table (``index.scan``), as rows from ``ScanTable.pending`` on,
which dense search scores beside what Chroma finds (``index.dense``).  ``give_pending`` later
upserts them, with the metadata a direct write gives (``index.vectors.metadata``);
``Store.catch_up`` calls it under the write lock and then records none pending.
"""

from __future__ import annotations

from typing import Any

from index.keywords import KeywordFilter
from index.vectors import metadata

DEFER_FROM = 50_000
"""Vectors an archive holds from which a process whose Chroma graph is not loaded leaves new
vectors pending (loading it costs about 0.4 s at 50k vectors, 3 s at 400k)."""

PENDING_MAX = 20_000
"""The most vectors left pending: dense search scores them beside every Chroma search (about
5 ms at 20k rows), and the write that would pass it catches Chroma up first."""


def defers(store: Any, adding: int) -> bool:
    """Whether a write of ``adding`` vectors into ``store`` (``index.store.Store``, its write
    lock held, its scan table complete) leaves them pending: Chroma's graph is not loaded in
    this process, the archive holds ``store.defer_from`` vectors or more (or some are pending
    already), and the pending rows stay within ``store.pending_max``."""
    if store.vectors.is_warm:
        return False
    table = store.scan
    pending = table.pending
    waiting = 0 if pending is None else table.rows - pending
    if waiting + adding > store.pending_max:
        return False
    return pending is not None or (
        store.catalog.dense_counts(KeywordFilter())[0] >= store.defer_from)


def give_pending(table: Any, catalog: Any, vectors: Any) -> int:
    """Upsert into ``vectors`` (``ChromaVectors``) the pending rows of ``table`` whose chunks
    ``catalog`` lists (rows of a write a kill interrupted are not given), with their
    metadata; return how many.  Holding the write lock."""
    given = 0
    with table.writing():
        for ids, rows, outlets, days in table.pending_rows():
            chunks = catalog.chunks(ids)
            known = [i for i, chunk_id in enumerate(ids) if chunk_id in chunks]
            articles = [chunks[ids[i]].article_id for i in known]
            hashes = catalog.content_hashes(set(articles))
            vectors.upsert(
                [ids[i] for i in known], rows[known],
                [metadata(article, hashes.get(article, ""), chunks[ids[i]].index, outlets[i],
                          days[i]) for i, article in zip(known, articles, strict=True)])
            given += len(known)
    return given
