"""Copy an index into server mode without re-embedding: ``migrate(source, target)``.

``source`` is an index with a local catalog (SQLite in its data folder, vectors in embedded
Chroma or on a Chroma server); ``target`` is a server-mode configuration (``catalog_url`` and
``chroma_host`` set).  Every article is read back from the source catalog with its chunks,
sentence offsets and temporal expressions, its stored vectors are read from the source Chroma,
and the whole is written through the target store's own write protocol (vectors, then the
catalog commit, then stale vectors out), in batches: an interrupted migration leaves every
article whole or absent in the target, and running it again copies only what is missing or
different (articles whose content hash the target already holds are left alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, Field

from index.catalog import PreparedArticle
from index.config import index_config
from index.errors import ConfigError
from index.models import Chunk, Skip
from index.store import Store, open_store

VECTORS_PER_BATCH = 512


class MigrationReport(BaseModel):
    """What a migration did."""

    source: str = Field(description="Where the articles came from.")
    target: str = Field(description="The server catalog and Chroma server they went to.")
    copied: list[str] = Field(default_factory=list, description="Articles written to the target.")
    unchanged: list[str] = Field(
        default_factory=list, description="Articles the target already held, same content hash."
    )
    skipped: list[Skip] = Field(default_factory=list, description="Articles not copied, and why.")
    vectors: int = Field(0, description="Vectors copied.")
    seconds: float = 0.0


def migrate(
    source: Any,
    target: Any,
    *,
    progress: Callable[[MigrationReport, int], None] | None = None,
) -> MigrationReport:
    """Copy every article of the ``source`` index into the ``target`` server-mode index,
    reusing the stored vectors; ``progress`` is called after each batch with the report so far
    and the number of articles to go through.  Raises ConfigError when ``target`` is not in
    server mode or ``source`` is, StoreError when either cannot be opened."""
    started = time.perf_counter()
    source, target = index_config(source), index_config(target)
    if target.catalog_url is None:
        raise ConfigError("the migration target is not a server catalog",
                          hint="give a postgresql:// URL: `newsdesk migrate --to postgresql://...`")
    if source.catalog_url is not None:
        raise ConfigError("the migration source is already a server catalog",
                          hint="migrate from an index folder: unset NEWSDESK_CATALOG_URL")
    src = open_store(source)
    src.catch_up()  # the vectors are copied from its Chroma: none may be left pending
    recorded = src.catalog.embedding
    if recorded and recorded != target.embedding:
        target = target.model_copy(update={"embedding": recorded})
    dst = open_store(target)
    report = MigrationReport(source=f"{source.data_dir} (Chroma: {src.vectors.location})",
                             target=f"{getattr(dst.catalog, 'location', '')} (Chroma: {dst.vectors.location})")
    dst.reconcile()
    ids = [a.id for a in src.list_articles(limit=None)]
    hashes = src.content_hashes(ids)
    held = dst.content_hashes(ids)
    pending: list[str] = []
    for article_id in ids:
        (report.unchanged if held.get(article_id) == hashes[article_id] else pending).append(
            article_id)
    chunk_ids: dict[str, list[str]] = {}
    for chunk in src.all_chunks():
        chunk_ids.setdefault(chunk.article_id, []).append(chunk.id)
    dense = src.catalog.dense_chunk_ids()
    for batch in _batches(pending, chunk_ids, dense):
        prepared = _prepared(src, batch, hashes, chunk_ids, dense, report)
        dst.write(prepared)
        report.copied += [p.article.id for p in prepared]
        report.vectors += sum(len(p.vectors) for p in prepared)
        if progress:
            progress(report, len(ids))
    if report.copied:
        dst.keyword_index()
    report.seconds = time.perf_counter() - started
    return report


def _batches(
    ids: list[str], chunk_ids: dict[str, list[str]], dense: set[str]
) -> Iterator[list[str]]:
    """Article ids in batches of about ``VECTORS_PER_BATCH`` vectors."""
    batch: list[str] = []
    vectors = 0
    for article_id in ids:
        batch.append(article_id)
        vectors += sum(1 for c in chunk_ids.get(article_id, []) if c in dense)
        if vectors >= VECTORS_PER_BATCH:
            yield batch
            batch, vectors = [], 0
    if batch:
        yield batch


def _prepared(
    src: Store,
    batch: list[str],
    hashes: dict[str, str],
    chunk_ids: dict[str, list[str]],
    dense: set[str],
    report: MigrationReport,
) -> list[PreparedArticle]:
    """The batch's articles as the target's write wants them, vectors read from the source."""
    rows = src.chunks([c for aid in batch for c in chunk_ids.get(aid, [])])
    wanted = [c for c in rows if c in dense]
    vectors: dict[str, list[float]] = {}
    if wanted:
        found = src.collection.get(ids=wanted, include=["embeddings"])
        vectors = {i: [float(x) for x in v]
                   for i, v in zip(found["ids"], found["embeddings"], strict=True)}
    prepared = []
    for aid in batch:
        article = src.get_article(aid)
        chunks = sorted((c for c in rows.values() if c.article_id == aid), key=lambda c: c.index)
        n_dense = sum(1 for c in chunks if c.id in dense)
        lead = chunks[:n_dense]
        if not chunks or any(c.id not in dense or c.id not in vectors for c in lead):
            report.skipped.append(Skip(
                source=aid, reason="its chunks or stored vectors are missing in the source: "
                "re-ingest it into the server index (`newsdesk ingest`)"))
            continue
        prepared.append(PreparedArticle(
            article,
            hashes[aid],
            [Chunk(id=c.id, article_id=aid, index=c.index, sentences=c.sentences,
                   text=article.text[c.sentences[0][0]:c.sentences[-1][1]],
                   embed_text=c.embed_text) for c in chunks],
            [vectors[c.id] for c in lead],
            mentions=src.mentions(aid),
        ))
    return prepared
