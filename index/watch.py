"""Follow feeds and folders: ``run_round(feed_list, config=settings)`` polls what is due, once;
``watch(feed_list, ...)`` keeps doing so; ``feed_statuses(config)`` says how each one stands.

A round polls every due source (never polled, or its next poll time has come) in a thread pool,
``index.fetch.Fetcher`` keeping it polite (conditional GETs, robots.txt, per-host limits), and
``index.watch_items`` reading each one:

- a 304, or a body (or folder listing) identical to the last, ends there: nothing is parsed;
- an entry is new or edited when its canonical URL has no record for this feed, or one with
  another hash of the entry's fields; a URL another feed brought in is not fetched again;
- an entry carrying only a summary gets its linked page's main text with trafilatura;
- a text already indexed under another URL is a duplicate, recorded but not ingested.

Articles take their id from their URL and are written by ``index.pipeline.ingest_items`` in
batches of ``watch_batch_size`` (each batch atomic; an edited article replaces its previous
version).  What was seen is recorded once its batch has committed, and a source's state (ETag,
Last-Modified, body hash) only once all it brought is in, so a round killed at any point loses
nothing: the next one fetches again what was not recorded, and the pipeline finds what was
already written unchanged.  An error puts a source on exponential backoff.  State lives in the
catalog's SQLite file (``index.feeds.FeedBook``), so a restart resumes the schedule; what a source
no longer lists is forgotten after ``watch_forget_days`` (see ``index.feeds``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field

from index.config import IndexConfig, index_config
from index.embeddings import Embedder
from index.errors import StoreError
from index.feed_list import Source, read_feed_list
from index.feeds import FeedBook, FeedState, WatchConfig, watch_config
from index.fetch import Fetcher, FetchError
from index.models import IngestReport, Skip
from index.pipeline import ingest_items
from index.store import Store, open_store
from index.watch_items import Candidate, Seen, SourceError, poll_feed, poll_folder


class FeedStatus(BaseModel):
    """One feed or folder: what its last poll did and when it is polled next."""

    source: str
    kind: str = Field(description="'feed' or 'folder'.")
    status: str = Field(
        description="'new' (never polled), 'changed', 'unchanged' (nothing new or edited), "
        "'not modified' (304, or the same bytes), 'disallowed' (robots.txt), 'error', or "
        "'waiting' (not due this round)."
    )
    title: str | None = None
    http_status: int | None = None
    added: int = Field(0, description="Articles this poll added.")
    updated: int = Field(0, description="Articles this poll re-indexed because they changed.")
    duplicates: int = Field(0, description="Entries already indexed under another URL or feed.")
    errors: int = Field(0, description="Errors in a row; the wait before a retry doubles each.")
    remembered: int = Field(
        0, description="Entries or files of it the watcher remembers: those it lists, and those "
        "it dropped less than `watch_forget_days` ago."
    )
    forgotten: int = Field(0, description="Entries or files this poll forgot.")
    message: str | None = None
    last_polled: datetime | None = None
    last_success: datetime | None = None
    last_new: datetime | None = Field(None, description="When it last brought a new article.")
    next_poll: datetime | None = None

    @classmethod
    def of(cls, state: FeedState, **counts: Any) -> FeedStatus:
        """The status a stored state describes."""
        return cls(
            source=state.source, kind=state.kind, status=state.status, title=state.title,
            http_status=state.http_status, errors=state.errors, message=state.message,
            last_polled=_when(state.last_polled), last_success=_when(state.last_success),
            last_new=_when(state.last_new), next_poll=_when(state.next_poll), **counts,
        )


class WatchReport(BaseModel):
    """One round: each source's status, the articles written, and what went wrong."""

    feeds: list[FeedStatus] = Field(default_factory=list)
    problems: list[Skip] = Field(
        default_factory=list, description="Bad lines of the feed list (FILE:LINE, and the fix)."
    )
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(
        default_factory=list, description="Older versions of edited files that had no id."
    )
    skipped: list[Skip] = Field(default_factory=list, description="Entries or files not indexed.")
    duplicates: int = 0
    forgotten: int = Field(
        0, description="Entries or files forgotten: unlisted, or of a source gone from the list, "
        "for longer than `watch_forget_days`."
    )
    due: int = Field(0, description="Sources due, and so polled, this round.")
    polled: int = Field(0, description="Sources polled so far (equals `due` once done).")
    requests: int = Field(0, description="HTTP requests made, robots.txt included.")
    bytes: int = Field(0, description="Bytes downloaded.")
    batches: int = Field(0, description="Ingest batches written.")
    interrupted: bool = False
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """How many sources ended the round with this status."""
        return sum(f.status == status for f in self.feeds)


Progress = Callable[[WatchReport, int], None]
"""Called after each polled source and each written batch with the round so far and the number
of sources due."""


def _when(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def run_round(
    feeds: str | Path | Sequence[Source],
    *,
    config: Any = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    fetcher: Fetcher | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> WatchReport:
    """Poll every due source of ``feeds`` (a feed list file, or parsed sources) once.

    ``config`` is the full settings (an ``IndexConfig`` alone gets the default ``WatchConfig``).
    Raises InputError for an unreadable feed list and StoreError while another process runs a
    round into the same data folder.
    """
    index, settings = index_config(config), watch_config(config)
    started = time.perf_counter()
    report = WatchReport()
    if isinstance(feeds, (str, Path)):
        sources, report.problems = read_feed_list(feeds)
    else:
        sources = list(feeds)
    index.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(index.data_dir / "watch.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(
            f"another watcher is following feeds into {index.data_dir}",
            hint="one `newsdesk watch` per data folder: wait for its round to end, or stop it",
        ) from None
    client = fetcher or Fetcher(settings)
    requests, downloaded = client.requests, client.bytes
    book = FeedBook(index)
    try:
        _Round(index, settings, book, client, store, embedder, clock, report).run(sources, progress)
    finally:
        book.close()
        if fetcher is None:
            client.close()
        lock.release()
    report.requests, report.bytes = client.requests - requests, client.bytes - downloaded
    report.seconds = time.perf_counter() - started
    return report


def feed_statuses(config: Any = None) -> list[FeedStatus]:
    """Every source the watcher has polled into this data folder, as it stands."""
    book = FeedBook(index_config(config))
    try:
        counts = book.item_counts()
        return [FeedStatus.of(state, remembered=counts.get(key, 0))
                for key, state in book.states().items()]
    finally:
        book.close()


def watch(
    feeds: str | Path,
    *,
    config: Any = None,
    on_round: Callable[[WatchReport], None] | None = None,
    progress: Progress | None = None,
    rounds: int | None = None,
) -> None:
    """Run rounds until interrupted (or ``rounds`` of them), sleeping until the next poll is due.

    The feed list is read again every round, so edits to it take effect without a restart.
    """
    index, settings = index_config(config), watch_config(config)
    store = open_store(index)
    with Fetcher(settings) as fetcher:
        done = 0
        while True:
            report = run_round(feeds, config=config, store=store, fetcher=fetcher,
                               progress=progress)
            if on_round:
                on_round(report)
            done += 1
            if report.interrupted or (rounds is not None and done >= rounds):
                return
            time.sleep(_pause(report, settings))


def _pause(report: WatchReport, settings: WatchConfig) -> float:
    """Seconds until the earliest next poll (at least 1, at most one interval)."""
    now = datetime.now(UTC)
    upcoming = [(f.next_poll - now).total_seconds() for f in report.feeds if f.next_poll]
    return max(1.0, min([settings.watch_interval, *upcoming]))


@dataclass
class _Polled:
    """A polled source, waiting for what it brought to be written before its state is saved."""

    source: Source
    state: FeedState
    seen: Seen = field(default_factory=Seen)
    waiting: int = 0
    added: int = 0
    updated: int = 0


class _Round:
    """One round: sources are polled in worker threads; articles are written, records kept and
    states saved on the calling thread."""

    def __init__(self, index: IndexConfig, settings: WatchConfig, book: FeedBook,
                 fetcher: Fetcher, store: Store | None, embedder: Embedder | None,
                 clock: Callable[[], float], report: WatchReport) -> None:
        self.index, self.settings, self.book, self.fetcher = index, settings, book, fetcher
        self.store, self.embedder, self.clock, self.report = store, embedder, clock, report
        self.queue: list[tuple[_Polled, Candidate]] = []
        self.queued: set[str] = set()  # article ids queued this round
        self.texts: dict[str, str] = {}  # text hash → article id, queued this round
        self.statuses: dict[str, FeedStatus] = {}

    def run(self, sources: Sequence[Source], progress: Progress | None) -> None:
        now = self.clock()
        self.report.forgotten = self.book.forget_absent(
            (s.key for s in sources), now, self.settings.watch_forget_days
        )
        states = self.book.states(s.key for s in sources)
        due = []
        for source in sources:
            state = states.get(source.key) or FeedState(source.key, source.kind)
            if state.next_poll <= now:
                due.append((source, state))
            else:
                self.statuses[source.key] = FeedStatus.of(state).model_copy(
                    update={"status": "waiting"}
                )
        self.report.due = total = len(due)
        batch = self.settings.watch_batch_size
        with ThreadPoolExecutor(max(1, min(self.settings.watch_concurrency, total))) as pool:
            futures = [pool.submit(self._poll, source, state) for source, state in due]
            try:
                for future in as_completed(futures):
                    self._take(future.result())
                    self.report.polled += 1
                    if progress:
                        progress(self.report, total)
                    while len(self.queue) >= batch and not self.report.interrupted:
                        self._flush(progress, total)
                    if self.report.interrupted:
                        break
                while self.queue and not self.report.interrupted:
                    self._flush(progress, total)
            except KeyboardInterrupt:  # nothing unwritten was recorded: the next round resumes
                self.report.interrupted = True
            finally:
                pool.shutdown(cancel_futures=True)
        counts = self.book.item_counts()
        self.report.feeds = [self.statuses[s.key] for s in sources if s.key in self.statuses]
        for status in self.report.feeds:
            status.remembered = counts.get(status.source, 0)

    def _poll(self, source: Source, state: FeedState) -> _Polled:
        """Fetch and read one source (in a worker thread); its own faults become its state."""
        polled = _Polled(source, state)
        state.last_polled = self.clock()
        try:
            if source.kind == "folder":
                polled.seen = poll_folder(source, state, self.book)
            else:
                polled.seen = poll_feed(source, state, self.book, self.fetcher)
        except FetchError as exc:
            self._failed(state, str(exc), exc.status, exc.retry_after)
        except SourceError as exc:
            self._failed(state, str(exc), state.http_status, None)
        except Exception as exc:  # noqa: BLE001 - one broken source must not stop the round
            self._failed(state, f"{type(exc).__name__}: {exc}", None, None)
        return polled

    def _failed(self, state: FeedState, message: str, status: int | None,
                retry_after: float | None) -> None:
        """Put a source on backoff: the wait doubles with every error in a row."""
        settings = self.settings
        state.errors += 1
        state.status, state.message, state.http_status = "error", message, status
        wait = min(settings.watch_max_backoff, settings.watch_backoff * 2 ** (state.errors - 1))
        if retry_after:  # the server's own word, when longer (up to a day)
            wait = max(wait, min(retry_after, 86400.0))
        state.next_poll = (state.last_polled or self.clock()) + wait

    def _take(self, polled: _Polled) -> None:
        """Queue what a source brought, dropping stories already indexed or queued under
        another URL; a source with nothing to write is finished at once."""
        seen = polled.seen
        self.report.skipped.extend(seen.skipped)
        stored = self.book.same_text(c.text_hash for c in seen.candidates if c.text_hash)
        for candidate in seen.candidates:
            article_id, digest = candidate.article.id, candidate.text_hash
            twins = {self.texts[digest]} if digest in self.texts else set()
            twins |= stored.get(digest or "", set())
            if article_id in self.queued or (twins and article_id not in twins):
                if candidate.record:
                    same = article_id if article_id in self.queued else min(twins)
                    seen.records.append(replace(candidate.record, article_id=same))
                seen.duplicates += 1
                continue
            self.queued.add(article_id)
            if digest:
                self.texts[digest] = article_id
            self.queue.append((polled, candidate))
            polled.waiting += 1
        if not polled.waiting:
            self._finish(polled)

    def _flush(self, progress: Progress | None, total: int) -> None:
        """Write the next batch, then record what it held and finish the sources it completed."""
        size = self.settings.watch_batch_size
        batch, self.queue = self.queue[:size], self.queue[size:]
        self.store = self.store or open_store(self.index)
        result = ingest_items([c.article for _, c in batch], config=self.index,
                              store=self.store, embedder=self.embedder)
        _merge(self.report, result)
        self.report.batches += 1
        written = set(result.added) | set(result.updated) | set(result.unchanged)
        skipped = {s.source for s in result.skipped}
        records, finished = [], []
        for polled, candidate in batch:
            article = candidate.article
            if article.id not in written and article.source not in skipped:
                continue  # interrupted before it was written: not recorded, so fetched again
            if candidate.record:
                records.append(candidate.record)
            polled.added += article.id in result.added
            polled.updated += article.id in result.updated
            polled.waiting -= 1
            if not polled.waiting:
                finished.append(polled)
        self.book.record(records, self.clock())
        if result.interrupted:
            self.report.interrupted = True
            return
        for polled in finished:
            self._finish(polled)
        if progress:
            progress(self.report, total)

    def _finish(self, polled: _Polled) -> None:
        """Everything the source brought is in: record the rest of what it saw, save its state."""
        state, seen = polled.state, polled.seen
        self.book.record(seen.records, self.clock())
        forgotten = 0
        if seen.listed is not None:
            forgotten = self.book.listed(
                state.source, seen.listed, self.clock(), confirmed=state.last_success,
                forget_days=self.settings.watch_forget_days,
            )
            self.report.forgotten += forgotten
        if state.status != "error":
            state.errors = 0
            state.last_success = state.last_polled
            state.next_poll = (state.last_polled or self.clock()) + self.settings.watch_interval
            if polled.added:
                state.last_new = state.last_polled
        self.book.save(state)
        self.report.duplicates += seen.duplicates
        self.statuses[polled.source.key] = FeedStatus.of(
            state, added=polled.added, updated=polled.updated, duplicates=seen.duplicates,
            forgotten=forgotten,
        )


def _merge(report: WatchReport, result: IngestReport) -> None:
    report.added += result.added
    report.updated += result.updated
    report.unchanged += result.unchanged
    report.removed += result.removed
    report.skipped += result.skipped
