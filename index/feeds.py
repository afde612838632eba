"""What the feed watcher follows and remembers: its settings, the feed list, and its state.

- ``WatchConfig``: the watcher's settings section (``assistant.settings`` composes it as
  ``settings.watch``; flat names ``NEWSDESK_WATCH_*``).
- ``read_feed_list(path)``: one http(s) URL or folder path per line, ``#`` comments; every bad
  line comes back as a ``Skip`` naming ``FILE:LINE`` and the fix, and the good lines are kept.
- ``FeedBook(config)``: the watcher's state in the catalog's own SQLite file, so a restart
  resumes: a ``feeds`` table (validators, last poll and success, errors in a row, next poll) and a
  ``feed_items`` table (each entry or file seen, the hash it had, the article it became).

The catalog module does not know these tables; this module creates and reads them over its own
connection (WAL mode lets it share the file with the catalog's).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from index.config import index_config
from index.errors import InputError, StoreError
from index.models import Skip
from index.readers import SUPPORTED, SUPPORTED_HINT
from index.sqlite_catalog import connect


class WatchConfig(BaseModel):
    """How `newsdesk watch` polls feeds and folders."""

    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)

    watch_feeds: Path | None = Field(
        None,
        description="The feed list `newsdesk watch` (with no FEEDS argument) and POST "
        "/v1/watch/run read: one http(s) feed URL or folder path per line, '#' comments.",
    )
    watch_interval: float = Field(
        900, ge=10, description="Seconds between two polls of a feed or folder that is healthy."
    )
    watch_backoff: float = Field(
        60,
        ge=1,
        description="Seconds before retrying a feed after an error; doubled after every further "
        "error in a row (a server's Retry-After is honoured when longer, up to a day).",
    )
    watch_max_backoff: float = Field(
        6 * 3600, ge=1, description="Longest wait between retries of a failing feed, in seconds."
    )
    watch_concurrency: int = Field(
        8, ge=1, le=64, description="Requests in flight at once, over all hosts."
    )
    watch_per_host: int = Field(
        2, ge=1, le=16, description="Requests in flight at once to any one host."
    )
    watch_batch_size: int = Field(
        16, ge=1, le=1000, description="New or edited articles written per ingest batch."
    )
    watch_timeout: float = Field(20, gt=0, le=600, description="Seconds before a request fails.")
    watch_max_mb: float = Field(
        10, gt=0, le=1024, description="Largest feed or page downloaded, in MiB; larger is an error."
    )
    watch_contact: str | None = Field(
        None,
        max_length=200,
        description="A URL or e-mail address put in the User-Agent so site owners can reach "
        "whoever runs this watcher, e.g. 'mailto:desk@example.org'.",
    )


def watch_config(config: Any = None) -> WatchConfig:
    """The ``WatchConfig`` in ``config``: itself, the ``watch`` section of full settings, or the
    defaults when None (or when ``config`` is only an ``IndexConfig``)."""
    if isinstance(config, WatchConfig):
        return config
    section = getattr(config, "watch", None)
    return section if isinstance(section, WatchConfig) else WatchConfig()


# --- the feed list ------------------------------------------------------------------------

Kind = Literal["feed", "folder"]


@dataclass(frozen=True)
class Source:
    """One line of a feed list: a feed URL or a folder (or file) of articles."""

    key: str  # the URL as written, or the folder's absolute path
    kind: Kind
    line: str = ""  # FILE:LINE it was read from, for messages


_COMMENT = re.compile(r"(^|\s)#.*$")
_HOSTLIKE = re.compile(r"^[\w-]+(\.[\w-]+)+(:\d+)?(/|$)")


def read_feed_list(path: str | Path) -> tuple[list[Source], list[Skip]]:
    """The sources in a feed list and a ``Skip`` (``FILE:LINE``, reason and fix) per bad line.

    Relative folder paths are read from the list's own folder. Raises InputError when the file
    cannot be read or holds no usable line.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(
            f"no feed list at {path}",
            hint="write one http(s) feed URL or folder path per line ('#' starts a comment)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the feed list {path}: {exc}",
                         hint="save it as a UTF-8 text file") from None
    sources: list[Source] = []
    problems: list[Skip] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = _COMMENT.sub("", raw).strip()
        if not entry:
            continue
        where = f"{path}:{number}"
        try:
            source = _parse_line(entry, path.parent, where)
        except ValueError as exc:
            problems.append(Skip(source=where, reason=str(exc)))
            continue
        if source.key in first_line:
            problems.append(Skip(
                source=where,
                reason=f"{source.key} is already on line {first_line[source.key]}; delete one",
                error=False,
            ))
            continue
        first_line[source.key] = number
        sources.append(source)
    if not sources:
        detail = f": {problems[0].source}: {problems[0].reason}" if problems else ""
        raise InputError(
            f"the feed list {path} names no feed or folder{detail}",
            hint="write one http(s) feed URL or folder path per line ('#' starts a comment)",
        )
    return sources, problems


def _parse_line(entry: str, base: Path, where: str) -> Source:
    """One non-comment line as a Source; ValueError saying what is wrong and how to fix it."""
    if "://" in entry:
        parts = urlsplit(entry)
        if parts.scheme.lower() not in {"http", "https"}:
            raise ValueError(
                f"unsupported scheme {parts.scheme!r} in {entry!r}; newsdesk fetches http:// and "
                "https:// feeds (for local files, write the folder's path)"
            )
        if not parts.hostname:
            raise ValueError(f"{entry!r} has no host; write it like https://example.org/feed.xml")
        if re.search(r"\s", entry):
            raise ValueError(
                f"{entry!r} contains a space; write one URL per line, and encode a space in a "
                "URL as %20"
            )
        return Source(entry, "feed", where)
    folder = (base / Path(entry).expanduser()).resolve()
    if folder.is_dir() or (folder.is_file() and folder.suffix.lower() in SUPPORTED):
        return Source(str(folder), "folder", where)
    if folder.is_file():
        raise ValueError(f"{folder} is not a file newsdesk reads; {SUPPORTED_HINT}")
    if _HOSTLIKE.match(entry):
        raise ValueError(f"no folder {folder}; if {entry!r} is a feed, write it as https://{entry}")
    raise ValueError(
        f"no folder {folder}; fix the path (a relative one starts from the list's folder) or "
        "write the feed's full http(s):// URL"
    )


# --- state in the catalog's SQLite file ---------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    source TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT,
    etag TEXT,
    last_modified TEXT,
    body_hash TEXT,
    last_polled REAL,
    last_success REAL,
    last_new REAL,
    next_poll REAL NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'new',
    http_status INTEGER,
    message TEXT
);
CREATE TABLE IF NOT EXISTS feed_items (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    entry_hash TEXT NOT NULL,
    text_hash TEXT,
    article_id TEXT,
    complete INTEGER NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE INDEX IF NOT EXISTS feed_items_key ON feed_items(key);
CREATE INDEX IF NOT EXISTS feed_items_text ON feed_items(text_hash);
"""


@dataclass
class FeedState:
    """What is remembered about one feed or folder between polls (times are Unix seconds)."""

    source: str
    kind: str = "feed"
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_polled: float | None = None
    last_success: float | None = None
    last_new: float | None = None
    next_poll: float = 0.0
    errors: int = 0
    status: str = "new"
    http_status: int | None = None
    message: str | None = None


_STATE_COLUMNS = [f.name for f in fields(FeedState)]


@dataclass(frozen=True)
class ItemRecord:
    """One feed entry (keyed by its canonical URL) or one file of a folder, as last seen.

    ``complete`` is False when the entry was indexed from its summary because its page could not
    be fetched: the page is tried again the next time the feed changes.
    """

    source: str
    key: str
    entry_hash: str
    text_hash: str | None = None
    article_id: str | None = None
    complete: bool = True


class FeedBook:
    """The watcher's tables in the catalog's SQLite file; one connection shared under a lock."""

    def __init__(self, config: Any = None) -> None:
        config = index_config(config)
        self._lock = threading.Lock()
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self.db = connect(config.catalog_path)
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the watcher's state in {config.catalog_path}: {exc}",
                hint="check that the folder is writable, or pick another with --data-dir",
            ) from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def _in_parts(self, sql: str, values: Iterable[str], *head: Any) -> Iterator[Any]:
        values = list(values)
        for i in range(0, len(values), 500):
            part = values[i : i + 500]
            yield from self._rows(sql.format(marks=",".join("?" * len(part))), [*head, *part])

    def states(self, sources: Iterable[str] | None = None) -> dict[str, FeedState]:
        """The stored state of each given source that has one (every source when None)."""
        columns = ", ".join(_STATE_COLUMNS)
        rows = (
            self._rows(f"SELECT {columns} FROM feeds ORDER BY source")
            if sources is None
            else self._in_parts(f"SELECT {columns} FROM feeds WHERE source IN ({{marks}})", sources)
        )
        return {row[0]: FeedState(*row) for row in rows}

    def save(self, state: FeedState) -> None:
        """Insert or replace one source's state."""
        marks = ",".join("?" * len(_STATE_COLUMNS))
        values = [getattr(state, name) for name in _STATE_COLUMNS]
        with self._lock:
            self.db.execute(
                f"INSERT OR REPLACE INTO feeds({', '.join(_STATE_COLUMNS)}) VALUES ({marks})",
                values,
            )

    def known(self, source: str, keys: Iterable[str]) -> dict[str, tuple[str, bool]]:
        """(entry hash, complete) of each given key this source has recorded."""
        sql = "SELECT key, entry_hash, complete FROM feed_items WHERE source=? AND key IN ({marks})"
        return {k: (h, bool(c)) for k, h, c in self._in_parts(sql, keys, source)}

    def elsewhere(self, source: str, keys: Iterable[str]) -> dict[str, str]:
        """Article id of each given key that another source has recorded whole."""
        sql = (
            "SELECT key, article_id FROM feed_items WHERE key IN ({marks}) AND source != ? "
            "AND complete=1 AND article_id IS NOT NULL"
        )
        keys = list(keys)
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            rows = self._rows(sql.format(marks=",".join("?" * len(part))), [*part, source])
            found.update(dict(rows))
        return found

    def same_text(self, text_hashes: Iterable[str]) -> dict[str, set[str]]:
        """The article ids recorded with each given text hash."""
        sql = (
            "SELECT text_hash, article_id FROM feed_items WHERE text_hash IN ({marks}) "
            "AND article_id IS NOT NULL"
        )
        found: dict[str, set[str]] = {}
        for digest, article_id in self._in_parts(sql, text_hashes):
            found.setdefault(digest, set()).add(article_id)
        return found

    def record(self, items: Sequence[ItemRecord], now: float) -> None:
        """Remember these entries or files as seen, in one transaction."""
        if not items:
            return
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "INSERT OR REPLACE INTO feed_items(source, key, entry_hash, text_hash, "
                    "article_id, complete, seen) VALUES (?,?,?,?,?,?,?)",
                    [
                        (i.source, i.key, i.entry_hash, i.text_hash, i.article_id,
                         int(i.complete), now)
                        for i in items
                    ],
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def count_items(self, source: str | None = None) -> int:
        """How many entries and files are recorded (for one source, or all)."""
        if source is None:
            return int(self._rows("SELECT COUNT(*) FROM feed_items")[0][0])
        return int(self._rows("SELECT COUNT(*) FROM feed_items WHERE source=?", (source,))[0][0])

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self.db.close()
