"""The catalog in one SQLite file: ``SqliteCatalog(config)`` at ``config.catalog_path``.

WAL mode, so readers in other processes see each write transaction whole; one connection per
process, shared by its threads under a lock.  Writes take SQLite's write lock (``BEGIN
IMMEDIATE``), bump the generation first (the keyword index stamps its rows with it), update
the keyword index (``index.keyword_tables``) and the counts of vectors per outlet and per day
(``dense_by_outlet``, ``dense_by_day``), and record the embedding model, all in the same
transaction.  A catalog made before the keyword index lived here, or with an older layout of
it, gets it built once, when first opened; so do the counts, when the generation they were
last kept at is not the catalog's (a catalog made before them, or written by an older newsdesk).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from index.catalog import PreparedArticle
from index.config import IndexConfig
from index.errors import StoreError
from index.keyword_tables import VERSION as KEYWORDS_VERSION
from index.keywords import KeywordCache, KeywordIndex, add_articles, rebuild, remove_articles
from index.sql_catalog import SqlCatalog
from index.timex import Mention

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    outlet TEXT,
    published TEXT,
    url TEXT,
    authors TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT,
    content_hash TEXT NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    sentences TEXT NOT NULL,
    embed_text TEXT NOT NULL,
    dense INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending_vectors (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS dense_by_outlet (outlet TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dense_by_day (day INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mentions (
    article_id TEXT PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the catalog's file, as every part that keeps tables in it opens one:
    WAL mode (readers in other processes see whole transactions), autocommit outside explicit
    transactions, usable from any thread (callers lock), 30 s of patience for a writer."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    return db


def bytes_on_disk(path: Path) -> int:
    """Bytes of an SQLite file and of its write-ahead log."""
    log = path.with_name(path.name + "-wal")
    return path.stat().st_size + (log.stat().st_size if log.exists() else 0)


@contextmanager
def immediate(db: sqlite3.Connection, lock: Any) -> Iterator[sqlite3.Connection]:
    """``db`` inside one write transaction taken at once (``BEGIN IMMEDIATE``), holding
    ``lock`` (the connection's), committed when the block ends and rolled back when it
    raises."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


class SqliteCatalog(SqlCatalog):
    """The catalog in one SQLite file (WAL mode); one connection shared under a lock."""

    MARK = "?"
    PART = 500  # values bound one by one: a statement takes this many at the most
    BYTEWISE = "BINARY"
    LIKE = "LIKE"  # case-insensitive for ASCII letters
    NO_LIMIT = -1
    DAY = "COALESCE(CAST(REPLACE(a.published, '-', '') AS INTEGER), 0)"  # published: ISO text

    def __init__(self, config: IndexConfig) -> None:
        self.embedding_model = config.embedding
        self._lock = threading.RLock()
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self._path = config.catalog_path
            self.db = connect(self._path)
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            self._keyword_cache = KeywordCache()
            self._build_keywords_once()
            self._count_dense_once()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the index in {config.data_dir}: {exc}",
                hint="check that the folder is writable, or pick another with --data-dir",
            ) from exc

    def _build_keywords_once(self) -> None:
        """Index every article and chunk for keyword search if this catalog predates the
        keyword index or its current layout (``keyword_tables.VERSION``)."""
        if self._meta("keywords") == KEYWORDS_VERSION:
            return
        with self._immediate():
            if self._meta("keywords") != KEYWORDS_VERSION:
                _bump_generation(self.db)  # readers holding the old layout start again
                rebuild(self.db)
                self._put_meta("keywords", KEYWORDS_VERSION)

    def _count_dense_once(self) -> None:
        """Count the vectors per outlet and per day afresh if the counts were not kept by the
        last write (their ``dense_counts`` stamp is not the catalog's generation)."""
        if self._meta("dense_counts") == (self._meta("generation") or "0"):
            return
        with self._immediate():
            generation = self._meta("generation") or "0"
            if self._meta("dense_counts") != generation:
                self.db.execute("DELETE FROM dense_by_outlet")
                self.db.execute("DELETE FROM dense_by_day")
                self._count_dense(self.db, None, 1)
                self._put_meta("dense_counts", generation)

    @property
    def keywords(self) -> KeywordIndex:
        """Keyword search (BM25 over chunks and over articles) as of the last commit."""
        return KeywordIndex(self.db, self._lock, self._keyword_cache)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def _meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key=?", (key,))
        return row[0] if row else None

    def _put_meta(self, key: str, value: str) -> None:
        self._upsert(self.db, "meta", {"key": key, "value": value}, "key")

    @property
    def generation(self) -> int:
        """Counter bumped by every write; derived indexes compare against it."""
        return int(self._meta("generation") or 0)

    @property
    def embedding(self) -> str | None:
        """The embedding model recorded by the last write; None before the first."""
        return self._meta("embedding")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Hold off this process's writes while a derived index reads the catalog."""
        with self._lock:
            yield

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that bumps the generation and records the embedding model."""
        with self._immediate():
            _bump_generation(self.db)  # first: the keyword index stamps what it writes
            yield self.db
            self.db.execute(  # the counts are kept as of this generation
                "INSERT OR REPLACE INTO meta(key, value) "
                "SELECT 'dense_counts', value FROM meta WHERE key='generation'"
            )
            self._put_meta("embedding", self.embedding_model)

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (``immediate``)."""
        with immediate(self.db, self._lock) as db:
            yield db

    _journal = _immediate  # the journal's own writes take the write lock the same way

    def keep_mentions(self, article_id: str, mentions: list[Mention]) -> None:
        """Store derived mentions; no generation bump, so BM25 is not rebuilt for them."""
        with self._lock:
            self._put_mentions(self.db, article_id, mentions)

    def optimize(self) -> None:
        """SQLite's VACUUM: the file rewritten table by table, each in key order, so a
        keyword term's postings, written batch after batch between articles' text, end up in
        one run of pages (cold reads of a question's postings took a twelfth of the time at 1M
        articles, benchmarks/RESULTS.md).  It needs free space for two copies of the file (one in
        the temporary folder, one in the write-ahead log) and holds this connection
        meanwhile; readers in other processes go on with the last commit.  The content,
        the generation included, is unchanged."""
        path, temp = self._path, Path(tempfile.gettempdir())
        size = bytes_on_disk(path)
        needed = {path.parent: size, temp: size}
        if os.stat(path.parent).st_dev == os.stat(temp).st_dev:
            needed = {path.parent: 2 * size}
        for folder, need in needed.items():
            free = shutil.disk_usage(folder).free
            if free < need * 1.05:
                raise StoreError(
                    f"optimizing {path} needs {need / 1e9:.1f} GB free in {folder}, "
                    f"and it has {free / 1e9:.1f} GB",
                    hint="free some disk space (or point TMPDIR at a folder with room) "
                    "and run it again; the catalog is unchanged",
                )
        try:
            with self._lock:
                self.db.execute("VACUUM")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot optimize {path}: {exc}",
                hint="the catalog is unchanged; free disk space, or stop the other processes "
                "writing to it, and run it again",
            ) from exc

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self.db.close()

    # --- the dialect -------------------------------------------------------------------------

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({self._marks(len(values))})", values

    def _upsert_sql(self, table: str, columns: list[str], key: str) -> str:
        # REPLACE deletes the old row and inserts anew: the article's rowid moves on, as ever
        marks = self._marks(len(columns))
        return f"INSERT OR REPLACE INTO {table}({', '.join(columns)}) VALUES ({marks})"

    def _put_chunks(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany("INSERT INTO chunks(id, article_id, idx, sentences, embed_text, dense) "
                         "VALUES (?,?,?,?,?,?)", rows)  # dense: True is stored as 1

    def _put_pending(self, conn: Any, vector_ids: Sequence[str]) -> None:
        conn.executemany("INSERT OR IGNORE INTO pending_vectors(id) VALUES (?)",
                         [(i,) for i in vector_ids])

    def _unindex(self, conn: Any, article_ids: list[str]) -> None:
        remove_articles(conn, article_ids)

    def _index(self, conn: Any, article_ids: list[str], documents: Any) -> None:
        add_articles(conn, article_ids)  # reads the rows just written back

    def _article_row(self, prepared: PreparedArticle, now: datetime) -> dict[str, Any]:
        published = prepared.article.published
        return super()._article_row(prepared, now) | {
            "published": published.isoformat() if published else None,
            "ingested_at": now.isoformat(timespec="seconds"),
        }

    @staticmethod
    def _stored_date(value: Any) -> date | None:
        return date.fromisoformat(value) if value else None

    @staticmethod
    def _stored_json(value: Any) -> Any:
        return json.loads(value)


def _bump_generation(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )
