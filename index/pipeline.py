"""The ingest pipeline, files in, indexed articles out: ``ingest(paths) -> IngestReport``.

Idempotent and incremental: an article whose content hash is already stored is counted as
unchanged and costs no embedding; a changed one replaces its old chunks.  Articles are written
in batches, each atomically (see ``index.store``), so Ctrl-C or a kill loses at most the batch
in flight and the next run completes the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from index.chunking import CHUNKER_VERSION, chunk_article, sentence_spans
from index.config import IndexConfig, index_config
from index.embeddings import Embedder, get_embedder
from index.models import Article, Chunk, IngestReport, Skip
from index.readers import HTML_SUFFIXES, TEXT_SUFFIXES, read_paths
from index.store import PreparedArticle, Store, open_store
from index.timex import Mention, find_mentions

Prepared = tuple[Article, str, list[Chunk], int, list[Mention]]
"""An article ready to write: content hash, chunks, how many lead chunks are embedded, dates."""

Progress = Callable[[IngestReport, int], None]
"""Called after each article with the report so far and the number of articles in the run."""


def fingerprint(config: IndexConfig) -> str:
    """What, besides an article's content, decides its chunks and vectors."""
    return (
        f"chunker={CHUNKER_VERSION};tokens={config.chunk_tokens};"
        f"dense={config.dense_chunks_per_article};embedding={config.embedding}"
    )


def ingest(
    paths: Iterable[str | Path],
    *,
    config: Any = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Read, chunk, embed and index every article under ``paths``; report what happened."""
    return ingest_items(
        read_paths(paths), config=config, store=store, embedder=embedder, progress=progress
    )


def ingest_articles(
    articles: Iterable[Article],
    *,
    config: Any = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
) -> IngestReport:
    """Index already-parsed articles (the HTTP API's JSON bodies, for instance)."""
    return ingest_items(articles, config=config, store=store, embedder=embedder)


def ingest_items(
    items: Iterable[Article | Skip],
    *,
    config: Any = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Index a stream of articles and skips as read by ``index.readers``."""
    config = index_config(config)
    store = store or open_store(config)
    embedder = embedder or get_embedder(config)
    started = time.perf_counter()
    report = IngestReport()
    salt = fingerprint(config)

    try:
        store.reconcile()
        articles: dict[str, Article] = {}
        for item in items:
            if isinstance(item, Skip):
                report.skipped.append(item)
            elif item.id in articles:
                report.skipped.append(
                    Skip(
                        source=item.source or item.id,
                        reason=f"duplicate id {item.id!r} (also in {articles[item.id].source}); "
                        "the first one is kept",
                        error=False,
                    )
                )
            else:
                articles[item.id] = item
        total = len(articles)
        stored = store.content_hashes(articles)
        pending: list[tuple[Article, str]] = []
        for article in articles.values():
            digest = article.content_hash(salt)
            if stored.get(article.id) == digest:
                report.unchanged.append(article.id)
                if progress:
                    progress(report, total)
            else:
                pending.append((article, digest))
        _index(pending, stored, config, store, embedder, report, progress, total)
    except KeyboardInterrupt:
        report.interrupted = True
    if report.added or report.updated or report.removed:
        store.keyword_index()  # rebuild now so the first query does not pay for it
    report.seconds = time.perf_counter() - started
    return report


def _index(
    pending: list[tuple[Article, str]],
    stored: dict[str, str],
    config: IndexConfig,
    store: Store,
    embedder: Embedder,
    report: IngestReport,
    progress: Progress | None,
    total: int,
) -> None:
    """Chunk, date, embed and write ``pending`` in batches.

    The model embeds one batch in a worker thread (ONNX Runtime releases the GIL) while this
    thread splits and dates the next, so the pipeline's own work hides behind the model's.
    Batches are written in order, each by one ``store.write`` (atomic), on this thread.
    """
    batch: list[Prepared] = []
    texts: list[str] = []
    flush_at = config.embed_batch_size * 4
    limit = config.dense_chunks_per_article or None

    def write(vectors: list[list[float]], done: list[Prepared]) -> None:
        prepared, offset = [], 0
        for article, digest, chunks, n_dense, mentions in done:
            prepared.append(
                PreparedArticle(
                    article, digest, chunks, vectors[offset : offset + n_dense], mentions=mentions
                )
            )
            offset += n_dense
        store.write(prepared)
        for item in prepared:
            article_id = item.article.id
            (report.updated if article_id in stored else report.added).append(article_id)
            report.chunks_written += len(item.chunks)
            report.removed.extend(_replaced_by(item.article, store))
        if progress:  # after the report is complete: the callback may raise KeyboardInterrupt
            progress(report, total)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed") as model:
        in_flight: tuple[Future[list[list[float]]], list[Prepared]] | None = None
        for article, digest in pending:
            spans = sentence_spans(article.text)
            chunks = chunk_article(
                article, max_tokens=config.chunk_tokens, count_tokens=embedder.count_tokens,
                spans=spans,
            )
            if not chunks:
                report.skipped.append(
                    Skip(source=article.source or article.id, reason="article has no sentences")
                )
                continue
            dense = chunks[:limit]
            texts.extend(c.embed_text for c in dense)
            mentions = find_mentions(article.text, article.published, sentences=spans)
            batch.append((article, digest, chunks, len(dense), mentions))
            if len(texts) >= flush_at:
                if in_flight:
                    write(in_flight[0].result(), in_flight[1])
                in_flight = (model.submit(embedder.embed_documents, list(texts)), list(batch))
                batch.clear()
                texts.clear()
        if in_flight:
            write(in_flight[0].result(), in_flight[1])
        if batch:
            write(embedder.embed_documents(texts), batch)


def _replaced_by(article: Article, store: Store) -> list[str]:
    """Remove the older version of an edited text/HTML file that had no id of its own.

    Such articles get an id derived from their content, so an edit yields a new id; the file
    they came from is what ties the versions together.
    """
    source = article.source
    if not source or Path(source).suffix.lower() not in TEXT_SUFFIXES | HTML_SUFFIXES:
        return []
    older = [i for i in store.ids_from_source(source) if i != article.id]
    return store.remove(older) if older else []
