"""How the feed watcher is set up and what it remembers: its settings and its state.

- ``WatchConfig``: the watcher's settings section (``assistant.settings`` composes it as
  ``settings.watch``; flat names ``NEWSDESK_WATCH_*``).  The feed list is read by
  ``index.feed_list``.
- ``FeedBook(config)``: the watcher's state in the catalog's own SQLite file, so a restart
  resumes: a ``feeds`` table (validators, last poll and success, errors in a row, next poll) and a
  ``feed_items`` table (each entry or file seen, the hash it had, the article it became, and when
  its source last listed it).

Forgetting keeps ``feed_items`` the size of what the feeds list now plus ``watch_forget_days`` of
what they dropped: after each poll that read a listing, ``FeedBook.listed`` forgets the source's
items absent from it for longer than that, and ``FeedBook.forget_absent`` forgets a source gone
from the feed list, state and items, once it has been gone as long.  Forgetting is safe because
the index, not this table, holds the articles: a forgotten entry that reappears is fetched again
and becomes the same article (its id comes from its URL, its guid, or, for a file, its own id or
words), which ``index.pipeline.ingest_items`` finds stored with the same content hash and counts
unchanged, so nothing is embedded or written twice.  What forgetting does lose is the text-hash memory of a
forgotten entry: a story that comes back under another URL after the window is indexed again.

The catalog module does not know these tables; this module creates and reads them over its own
connection (WAL mode lets it share the file with the catalog's).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from index.config import index_config
from index.errors import StoreError
from index.sqlite_catalog import connect, immediate


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
    watch_forget_days: float = Field(
        30,
        ge=0,
        le=36500,
        description="Days the watcher remembers an entry or file its feed or folder no longer "
        "lists, and a source gone from the feed list; then it is forgotten (an entry that comes "
        "back is fetched again and found unchanged in the index). 0 remembers everything forever.",
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
    last_listed REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (source, key)
);
CREATE INDEX IF NOT EXISTS feed_items_key ON feed_items(key);
CREATE INDEX IF NOT EXISTS feed_items_text ON feed_items(text_hash);
"""

# Every source with state or items; the recursive part steps through the (source, key) index one
# source at a time, so listing 200 sources costs 200 index lookups, not a scan of every item.
SOURCES = """
WITH RECURSIVE item_sources(source) AS (
    SELECT MIN(source) FROM feed_items
    UNION ALL
    SELECT (SELECT MIN(source) FROM feed_items WHERE source > item_sources.source)
    FROM item_sources WHERE item_sources.source IS NOT NULL
)
SELECT source FROM item_sources WHERE source IS NOT NULL UNION SELECT source FROM feeds
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
            self._upgrade()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the watcher's state in {config.catalog_path}: {exc}",
                hint="check that the folder is writable, or pick another with --data-dir",
            ) from exc

    def _upgrade(self) -> None:
        """Give a catalog written before ``last_listed`` existed the column, set from ``seen``
        (the latest time an item is known to have been listed); every row is kept."""
        def missing() -> bool:
            columns = self.db.execute("PRAGMA table_info(feed_items)").fetchall()
            return "last_listed" not in {column[1] for column in columns}

        if missing():
            with self._transaction() as db:
                if missing():  # another process may have upgraded it in the meantime
                    db.execute("ALTER TABLE feed_items ADD COLUMN last_listed REAL NOT NULL "
                               "DEFAULT 0")
                    db.execute("UPDATE feed_items SET last_listed = seen")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction, committed whole or not at all."""
        with immediate(self.db, self._lock) as db:
            yield db

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
            "SELECT key, article_id FROM feed_items WHERE source != ? AND key IN ({marks}) "
            "AND complete=1 AND article_id IS NOT NULL"
        )
        return dict(self._in_parts(sql, keys, source))

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
        """Remember these entries or files as seen, and listed, at ``now``, in one transaction."""
        if not items:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO feed_items(source, key, entry_hash, text_hash, "
                "article_id, complete, seen, last_listed) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (i.source, i.key, i.entry_hash, i.text_hash, i.article_id,
                     int(i.complete), now, now)
                    for i in items
                ],
            )

    def listed(self, source: str, keys: Iterable[str], now: float, *, confirmed: float | None,
               forget_days: float) -> int:
        """Note that ``source`` lists ``keys`` at ``now`` and forget its items it has not listed
        for ``forget_days`` (0: never); returns how many were forgotten.  One transaction.

        ``confirmed`` is the source's previous successful poll: when that was a 304 or the same
        body, its previous listing was still current then, so the items of that listing (the
        latest ``last_listed``) count as listed until ``confirmed``.  Only items absent from
        ``keys`` are ever forgotten; why that is safe is in this module's docstring.
        """
        keys = list(keys)
        with self._transaction() as db:
            if confirmed:
                db.execute(
                    "UPDATE feed_items SET last_listed=? WHERE source=? AND last_listed<? AND "
                    "last_listed=(SELECT MAX(last_listed) FROM feed_items WHERE source=?)",
                    (confirmed, source, confirmed, source),
                )
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                db.execute(
                    "UPDATE feed_items SET last_listed=? WHERE source=? AND key IN "
                    f"({','.join('?' * len(part))})",
                    [now, source, *part],
                )
            if not forget_days:
                return 0
            return db.execute("DELETE FROM feed_items WHERE source=? AND last_listed<?",
                              (source, now - forget_days * 86400)).rowcount

    def forget_absent(self, keep: Iterable[str], now: float, forget_days: float) -> int:
        """Forget each source not in ``keep`` (the feed list) that no poll or listing has named
        for ``forget_days`` (0: never): its state and all its items.  Returns how many items
        were forgotten."""
        if not forget_days:
            return 0
        keep, before = set(keep), now - forget_days * 86400
        last = (
            "SELECT MAX(t) FROM (SELECT last_polled AS t FROM feeds WHERE source=? "
            "UNION ALL SELECT MAX(last_listed) FROM feed_items WHERE source=?)"
        )
        gone = [  # read first, so a round with nothing to forget writes nothing
            source for (source,) in self._rows(SOURCES)
            if source not in keep and (self._rows(last, (source, source))[0][0] or 0) < before
        ]
        if not gone:
            return 0
        forgotten = 0
        with self._transaction() as db:  # this process is the only watcher: still gone
            for source in gone:
                forgotten += db.execute("DELETE FROM feed_items WHERE source=?",
                                        (source,)).rowcount
                db.execute("DELETE FROM feeds WHERE source=?", (source,))
        return forgotten

    def count_items(self, source: str | None = None) -> int:
        """How many entries and files are recorded (for one source, or all)."""
        if source is None:
            return int(self._rows("SELECT COUNT(*) FROM feed_items")[0][0])
        return int(self._rows("SELECT COUNT(*) FROM feed_items WHERE source=?", (source,))[0][0])

    def item_counts(self) -> dict[str, int]:
        """How many entries and files are remembered for each source that has any."""
        return dict(self._rows("SELECT source, COUNT(*) FROM feed_items GROUP BY source"))

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self.db.close()
