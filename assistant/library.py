"""The library: what is in the index, and how articles get in and out of it.

``Library(settings)`` is the one service every face (CLI, HTTP, UI) calls to ingest files,
uploads and JSON records, to list, read and remove articles, and to describe the index.  Uploads
are read exactly like files given to ``newsdesk ingest``; reports name them ``upload:NAME``
(never a temporary path).  Writes over one store take turns, whichever face makes them; reads
never wait.  Errors are the domain errors of ``assistant.errors``.
"""

from __future__ import annotations

import re
import tempfile
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from assistant.errors import ArticleNotFound, InputError
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder, get_embedder
from index.models import Article, IngestReport, Skip
from index.pipeline import Progress, ingest_items
from index.readers import SUPPORTED_HINT, read_file, read_paths, record_item
from index.store import Store, open_store

Item = Article | Skip

RECORDS_HINT = (
    "records need a non-empty string field 'text'; optional: id, title, outlet, "
    "published (YYYY-MM-DD), url, authors"
)


class ArticlePage(BaseModel):
    """A page of indexed articles, newest first."""

    articles: list[Article] = Field(
        description="Metadata only (text is ''): GET /v1/articles/{id} has the full text."
    )
    offset: int
    limit: int | None = Field(description="Page size asked for; null: every article.")
    next_offset: int | None = Field(description="Offset of the next page; null on the last.")
    total: int = Field(description="Articles indexed in all (before filters).")


@dataclass
class FileResult:
    """What ingesting one uploaded file did: articles added/updated/unchanged, skips with why."""

    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """'skipped' (nothing indexed), 'partial' (some articles skipped), else the first of
        'added', 'updated', 'unchanged' that happened."""
        indexed = [o for o in ("added", "updated", "unchanged") if self.outcomes[o]]
        if not indexed:
            return "skipped"
        return "partial" if self.skipped else indexed[0]

    def summary(self) -> str:
        """E.g. 'added 2 · unchanged 1 · skipped 1'."""
        counts = [f"{k} {self.outcomes[k]}" for k in ("added", "updated", "unchanged")
                  if self.outcomes[k]]
        if self.skipped:
            counts.append(f"skipped {len(self.skipped)}")
        return " · ".join(counts) or "skipped"


@dataclass
class UploadReport:
    """A batch of uploads: the ingest report, and one result per file in the order given."""

    report: IngestReport
    files: list[FileResult]


def upload_name(filename: str | None) -> str:
    """A client's file name made safe: its base name, only word characters, dots, dashes and
    spaces, at most 120 characters (the suffix, which picks the reader, kept); 'upload' if
    nothing is left."""
    name = re.sub(r"[^\w.\- ]", "_", Path(filename or "").name)[-120:]
    return name if name.strip(". ") else "upload"


_WRITE_LOCKS: weakref.WeakKeyDictionary[Store, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(store: Store) -> threading.Lock:
    # One per store, so every Library over it (the API's, a mounted UI's) takes the same turns:
    # a second writer's start-of-ingest clean-up must not race the first's write.
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(store, threading.Lock())


class Library:
    """The index as the faces use it. Dependencies are passed in; settings are the default.

    The embedding model loads on the first ingest: listing, reading and removing never need it.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or open_store(self.settings)
        self._embedder = embedder
        self._lock = _write_lock(self.store)

    @property
    def embedder(self) -> Embedder:
        """The embedding model ingestion uses (loaded on first use)."""
        if self._embedder is None:
            self._embedder = get_embedder(self.settings)
        return self._embedder

    @property
    def max_upload_bytes(self) -> int:
        """Largest file ``ingest_upload``/``ingest_files`` accept (NEWSDESK_API_MAX_UPLOAD_MB)."""
        return int(self.settings.api.api_max_upload_mb * 1024 * 1024)

    # --- ingesting ------------------------------------------------------------------------

    def ingest_paths(
        self, paths: Iterable[str | Path], *, progress: Progress | None = None
    ) -> IngestReport:
        """Index every article under these files and folders (what ``newsdesk ingest`` does).

        Bad inputs are reported in ``skipped``, never raised; the rest is indexed.
        """
        return self._ingest(read_paths(paths), progress)

    def ingest_upload(self, filename: str | None, data: bytes) -> IngestReport:
        """Index one uploaded file of any format ``newsdesk ingest`` reads.

        Raises InputError when the file is over the upload limit, or when nothing in it could
        be indexed (the message names ``upload:NAME`` and each problem).  When only some of its
        articles were bad, the report's ``skipped`` lists them.
        """
        result = self.ingest_files([(filename, data)])
        return _indexed_or_raise(result.report, SUPPORTED_HINT)

    def ingest_files(
        self,
        files: Sequence[tuple[str | None, bytes]],
        *,
        progress: Progress | None = None,
    ) -> UploadReport:
        """Index a batch of uploaded files, given as (file name, content); one result per file.

        Names are sanitised (``upload_name``) and made unique within the batch.  A file that
        cannot be read is a skip in its result, and the rest is indexed.  Raises InputError,
        before anything is indexed, when a file is over the upload limit.
        """
        names = _unique([upload_name(name) for name, _ in files])
        for name, (_, data) in zip(names, files, strict=True):
            self._check_size(name, data)
        with tempfile.TemporaryDirectory(prefix="newsdesk-upload-") as folder:
            found = [
                list(_read_upload(Path(folder), name, data))
                for name, (_, data) in zip(names, files, strict=True)
            ]
        report = self._ingest((item for items in found for item in items), progress)
        return UploadReport(report, _file_results(names, found, report))

    def ingest_records(self, payload: Any) -> IngestReport:
        """Index JSON records in the corpus format: one record (a dict) or a list of them.

        Raises InputError when the list is empty or no record could be indexed (naming
        ``request[N]`` and the bad field); when only some were bad, ``skipped`` lists them.
        """
        records = payload if isinstance(payload, list) else [payload]
        if not records:
            raise InputError("body: the list of records is empty", hint="send at least one record")
        items: list[Item] = []
        for number, record in enumerate(records, start=1):
            source = f"request[{number}]" if isinstance(payload, list) else "request"
            items.append(record_item(record, source=source))  # never raises
        return _indexed_or_raise(self._ingest(items, None), RECORDS_HINT)

    def _ingest(self, items: Iterable[Item], progress: Progress | None) -> IngestReport:
        with self._lock:
            return ingest_items(
                items, config=self.settings, store=self.store, embedder=self.embedder,
                progress=progress,
            )

    def _check_size(self, name: str, data: bytes) -> None:
        if len(data) > self.max_upload_bytes:
            limit = self.settings.api.api_max_upload_mb
            raise InputError(
                f"{name} is {len(data) / 1024 / 1024:.1f} MB, over the {limit:g} MB upload "
                "limit; nothing was ingested",
                hint="split the file, ingest it on the server with `newsdesk ingest PATH`, or "
                "raise NEWSDESK_API_MAX_UPLOAD_MB",
            )

    # --- reading and removing -------------------------------------------------------------

    def list_articles(
        self,
        *,
        offset: int = 0,
        limit: int | None = 50,
        outlet: str | None = None,
        search: str | None = None,
    ) -> ArticlePage:
        """A page of articles, newest first, without their text; ``limit=None``: all of them.

        ``outlet`` keeps one outlet's articles, ``search`` those whose title contains it
        (case-insensitive); ``next_offset`` is None on the last page.
        """
        more = None if limit is None else limit + 1
        rows = self.store.list_articles(offset=offset, limit=more, outlet=outlet, search=search)
        last = limit is None or len(rows) <= limit
        return ArticlePage(
            articles=rows[:limit],
            offset=offset,
            limit=limit,
            next_offset=None if last else offset + (limit or 0),
            total=self.store.count_articles(),
        )

    def get_article(self, article_id: str) -> Article:
        """One article with its full text (a citation's start/end index into it).

        Raises ArticleNotFound.
        """
        return self.store.get_article(article_id)

    def remove(self, article_id: str) -> None:
        """Remove an article and all its chunks. Raises ArticleNotFound if it is not indexed."""
        if not self.remove_many([article_id]):
            raise ArticleNotFound(article_id)

    def remove_many(self, article_ids: Sequence[str]) -> list[str]:
        """Remove the articles among these ids that are indexed; return those ids."""
        with self._lock:
            removed = self.store.remove(article_ids)
            if removed:
                self.store.keyword_index()  # rebuild now, not in the next question's time
        return removed

    def stats(self) -> dict[str, Any]:
        """What is indexed: article and chunk counts, date range, outlets (most articles first,
        unknown ones as '(unknown)'), embedding model, data folder."""
        return self.store.stats()

    def optimize(self) -> dict[str, Any]:
        """Lay the index out for reading (``Store.optimize``); what it did."""
        return self.store.optimize()


def _read_upload(folder: Path, name: str, data: bytes) -> Iterator[Item]:
    """The items in one upload, read like a file given to `newsdesk ingest`, named
    ``upload:NAME`` instead of the temporary path they were read from."""
    path = folder / name  # names are unique within a batch
    path.write_bytes(data)
    for item in read_file(path):
        yield item.model_copy(
            update={"source": (item.source or "").replace(str(path), f"upload:{name}")}
        )


def _unique(names: list[str]) -> list[str]:
    """The names, a repeated one numbered 'a (2).txt' so each file's result is its own."""
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        if seen[name] > 1:
            stem, dot, suffix = name.rpartition(".")
            name = f"{stem} ({seen[name]}).{suffix}" if dot and stem else f"{name} ({seen[name]})"
        unique.append(name)
    return unique


def _file_results(
    names: list[str], found: list[list[Item]], report: IngestReport
) -> list[FileResult]:
    outcome = {i: "added" for i in report.added}
    outcome |= {i: "updated" for i in report.updated}
    outcome |= {i: "unchanged" for i in report.unchanged}
    results, kept = [], set()
    for name, items in zip(names, found, strict=True):
        result = FileResult(name)
        for item in items:
            if isinstance(item, Article) and item.id not in kept and item.id in outcome:
                kept.add(item.id)  # a later duplicate of this id was skipped, not indexed
                result.outcomes[outcome[item.id]] += 1
        source = f"upload:{name}"
        for skip in report.skipped:
            # Sanitised names hold no ':', so what follows one is a line number.
            if skip.source == source or skip.source.startswith(f"{source}:"):
                line = skip.source[len(source) + 1 :]
                result.skipped.append(f"line {line}: {skip.reason}" if line else skip.reason)
        results.append(result)
    if report.interrupted:
        results.append(FileResult("(interrupted)", skipped=["interrupted; upload again"]))
    return results


def _indexed_or_raise(report: IngestReport, hint: str) -> IngestReport:
    """The report, unless bad input left nothing indexed: then InputError naming each problem."""
    if report.errors and not (report.added or report.updated or report.unchanged):
        shown = "; ".join(f"{s.source}: {s.reason}" for s in report.errors[:5])
        more = f" (and {len(report.errors) - 5} more)" if len(report.errors) > 5 else ""
        raise InputError(f"nothing was ingested: {shown}{more}", hint=hint)
    return report
