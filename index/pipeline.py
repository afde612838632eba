"""The ingest pipeline, files in, indexed articles out: ``ingest(paths) -> IngestReport``.

Idempotent and incremental: an article whose content hash is already stored is counted as
unchanged and costs no embedding; a changed one replaces its old chunks.  One bad article never
costs the others: whatever fails while it is read, split, dated, embedded or written makes it a
reported Skip and the batch goes on.  Articles are written
in batches, each atomically (see ``index.store``), so Ctrl-C or a kill loses at most the batch
in flight and the next run completes the rest.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from index.chunking import CHUNKER_VERSION, chunk_article, sentence_spans
from index.config import IndexConfig, index_config
from index.embeddings import Embedder, get_embedder
from index.errors import ConfigError, NewsdeskError, unexpected
from index.models import Article, Chunk, IngestReport, Skip
from index.readers import HTML_SUFFIXES, TEXT_SUFFIXES, read_paths
from index.store import PreparedArticle, Store, open_store
from index.timex import Mention, find_mentions

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
    """Index a stream of articles and skips as read by ``index.readers``.

    Every per-article failure, whatever its type, becomes a Skip naming the article's source
    and the reason, and the rest of the batch is indexed.  Only a failure of the index or the
    model themselves (every article of a batch failing alike, or a ConfigError) is raised.
    """
    config = index_config(config)
    store = store or open_store(config)
    embedder = embedder or get_embedder(config)
    started = time.perf_counter()
    report = IngestReport()
    salt = fingerprint(config)

    try:
        store.reconcile()
        articles = _collect(items, report)
        total = len(articles)
        stored = store.content_hashes(articles)
        pending: list[tuple[Article, str]] = []
        for article in articles.values():
            try:
                digest = article.content_hash(salt)
            except Exception as exc:  # noqa: BLE001 - e.g. text that is not valid Unicode
                report.skipped.append(_failed(article, exc, "while reading this article"))
                continue
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


def _collect(items: Iterable[Article | Skip], report: IngestReport) -> dict[str, Article]:
    """The articles of ``items`` by id (the first of a repeated id kept); skips go to the report.

    The readers turn every failure into a Skip; should an iterator still raise, what was read
    so far is kept and the failure is reported after the last input read.
    """
    articles: dict[str, Article] = {}
    iterator = iter(items)
    last = "the first input"
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - keep what was read
            report.skipped.append(
                Skip(source=f"(after {last})", reason=unexpected(exc, "while reading the inputs"))
            )
            break
        last = item.source or getattr(item, "id", None) or last
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
    return articles


@dataclass
class _Ready:
    """An article ready to embed and write: its hash, chunks, how many lead chunks are embedded,
    and its dates."""

    article: Article
    digest: str
    chunks: list[Chunk]
    n_dense: int
    mentions: list[Mention]

    def dense_texts(self) -> list[str]:
        return [c.embed_text for c in self.chunks[: self.n_dense]]


def _failed(article: Article, exc: BaseException, where: str) -> Skip:
    return Skip(source=article.source or article.id, reason=unexpected(exc, where))


def _prepare(article: Article, digest: str, config: IndexConfig, embedder: Embedder) -> _Ready | Skip:
    """Split and date one article; a Skip if it has no sentences or fails in any way but a
    domain error (the model or the configuration failing, which no other article escapes)."""
    try:
        spans = sentence_spans(article.text)
        chunks = chunk_article(
            article, max_tokens=config.chunk_tokens, count_tokens=embedder.count_tokens, spans=spans
        )
        if not chunks:
            return Skip(source=article.source or article.id, reason="article has no sentences")
        mentions = find_mentions(article.text, article.published, sentences=spans)
    except NewsdeskError:
        raise
    except Exception as exc:  # noqa: BLE001 - one article must never stop the batch
        return _failed(article, exc, "while splitting this article into sentences")
    n_dense = min(len(chunks), config.dense_chunks_per_article or len(chunks))
    return _Ready(article, digest, chunks, n_dense, mentions)


@dataclass
class _Group:
    """Articles written together by one ``store.write``, with the model's work on their texts:
    one future per run of texts handed to the model, in order."""

    ready: list[_Ready] = field(default_factory=list)
    futures: list[Future[list[list[float]]]] = field(default_factory=list)
    texts: int = 0
    sent: int = 0  # articles whose texts are with the model

    def add(self, ready: _Ready) -> None:
        self.ready.append(ready)
        self.texts += ready.n_dense

    def unsent_texts(self) -> int:
        return sum(r.n_dense for r in self.ready[self.sent :])

    def send(self, model: ThreadPoolExecutor, embedder: Embedder) -> None:
        texts = [t for r in self.ready[self.sent :] for t in r.dense_texts()]
        self.sent = len(self.ready)
        if texts:
            self.futures.append(model.submit(embedder.embed_documents, texts))

    def embedded(self) -> bool:
        return all(f.done() for f in self.futures)


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
    """Chunk, date, embed and write ``pending`` in groups.

    The model embeds in a worker thread (ONNX Runtime releases the GIL).  Each run of
    ``embed_batch_size`` texts (the first one a quarter of that) goes to it as soon as its
    articles are split, so it starts after a few articles and never waits for a write; this
    thread splits and dates the next articles and writes each group of about two runs whose
    vectors are ready, in order, by one ``store.write`` (atomic).  At most two groups wait for
    the model, which bounds the memory held.
    """
    group = _Group()
    waiting: deque[_Group] = deque()
    write_at = config.embed_batch_size * 2
    run = max(1, config.embed_batch_size // 4)  # the first is small: the model starts early

    def write(done: _Group) -> None:
        embedded = _embedded(done, embedder, report)
        prepared = [
            PreparedArticle(r.article, r.digest, r.chunks, v, mentions=r.mentions)
            for r, v in embedded
        ]
        for item in _write(prepared, store, report):
            article_id = item.article.id
            (report.updated if article_id in stored else report.added).append(article_id)
            report.chunks_written += len(item.chunks)
            report.removed.extend(_replaced_by(item.article, store))
        if progress:  # after the report is complete: the callback may raise KeyboardInterrupt
            progress(report, total)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed") as model:
        for article, digest in pending:
            ready = _prepare(article, digest, config, embedder)
            if isinstance(ready, Skip):
                report.skipped.append(ready)
                continue
            group.add(ready)
            if group.unsent_texts() >= run or group.texts >= write_at:
                group.send(model, embedder)
                run = config.embed_batch_size
            if group.texts >= write_at:
                waiting.append(group)
                group = _Group()
            while waiting and (waiting[0].embedded() or len(waiting) > 2):
                write(waiting.popleft())
        group.send(model, embedder)
        waiting.append(group)
        while waiting:
            write(waiting.popleft())


def _embedded(
    group: _Group, embedder: Embedder, report: IngestReport
) -> list[tuple[_Ready, list[list[float]]]]:
    """Each article of the group with the vectors of its dense chunks.

    When the model fails on the group, each article is embedded alone and those that still fail
    are skipped; if every one of several fails, the model itself is failing and the error is
    raised.
    """
    batch = group.ready
    try:
        vectors = [v for future in group.futures for v in future.result()]
    except ConfigError:
        raise
    except Exception as batch_error:  # noqa: BLE001 - find the article that caused it
        return _one_by_one(
            batch, lambda r: embedder.embed_documents(r.dense_texts()), batch_error,
            lambda r: r.article, report, "while embedding this article",
        )
    out, offset = [], 0
    for ready in batch:
        out.append((ready, vectors[offset : offset + ready.n_dense]))
        offset += ready.n_dense
    return out


def _write(
    prepared: list[PreparedArticle], store: Store, report: IngestReport
) -> list[PreparedArticle]:
    """Write the batch atomically; when it fails, write its articles one by one, skipping any
    that still fail (if every one of several fails, the index itself is failing: raised)."""
    if not prepared:
        return []
    try:
        store.write(prepared)
        return prepared
    except ConfigError:
        raise
    except Exception as batch_error:  # noqa: BLE001 - find the article that caused it
        written = _one_by_one(
            prepared, lambda p: store.write([p]), batch_error, lambda p: p.article, report,
            "while writing this article to the index",
        )
        return [p for p, _ in written]


T = TypeVar("T")
R = TypeVar("R")


def _one_by_one(
    batch: list[T],
    run: Callable[[T], R],
    batch_error: Exception,
    article_of: Callable[[T], Article],
    report: IngestReport,
    where: str,
) -> list[tuple[T, R]]:
    """``run`` on each item alone after the batch failed: the items that succeed with their
    results; the others become skips.  If several items all fail, the failure is not any one
    article's, and the batch's error is raised."""
    done: list[tuple[T, R]] = []
    failed: list[Skip] = []
    for item in batch:
        try:
            done.append((item, run(item)))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - this one article is the problem
            failed.append(_failed(article_of(item), exc, where))
    if failed and not done and len(batch) > 1:
        raise batch_error
    report.skipped.extend(failed)
    return done


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
