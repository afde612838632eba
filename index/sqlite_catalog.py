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
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from index.catalog import IndexedChunk, PreparedArticle
from index.config import IndexConfig
from index.dates import day_number
from index.errors import ArticleNotFound, StoreError
from index.keyword_tables import VERSION as KEYWORDS_VERSION
from index.keywords import KeywordCache, KeywordFilter, KeywordIndex, add_articles, rebuild
from index.keywords import remove_articles as unindex_articles
from index.models import Article
from index.timex import TIMEX_VERSION, Mention

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

_ARTICLE_COLUMNS = "id, title, outlet, published, url, authors, text, source"
_LISTED_COLUMNS = "id, title, outlet, published, url, authors, '', source"  # text left out
_CHUNK_COLUMNS = "id, article_id, idx, sentences, embed_text"


class SqliteCatalog:
    """The catalog in one SQLite file (WAL mode); one connection shared under a lock."""

    def __init__(self, config: IndexConfig) -> None:
        self.embedding_model = config.embedding
        self._lock = threading.RLock()
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                config.catalog_path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self.db.execute("PRAGMA journal_mode=WAL")
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
            row = self.db.execute("SELECT value FROM meta WHERE key='keywords'").fetchone()
            if not row or row[0] != KEYWORDS_VERSION:
                _bump_generation(self.db)  # readers holding the old layout start again
                rebuild(self.db)
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('keywords', ?)",
                    (KEYWORDS_VERSION,),
                )

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
                _count_dense(self.db, None, 1)
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('dense_counts', ?)",
                    (generation,),
                )

    @property
    def keywords(self) -> KeywordIndex:
        """Keyword search (BM25 over chunks and over articles) as of the last commit."""
        return KeywordIndex(self.db, self._lock, self._keyword_cache)

    def published_days(self, article_ids: Iterable[str]) -> dict[str, int]:
        """Publication day (YYYYMMDD, 0 when unknown) of each given article that is indexed."""
        return {
            aid: day_number(date.fromisoformat(pub)) if pub else 0
            for aid, pub in self._in_parts(
                "SELECT id, published FROM articles WHERE id IN ({marks})", article_ids
            )
        }

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key=?", (key,))
        return row[0] if row else None

    def _in_parts(self, sql: str, ids: Iterable[str]) -> Iterator[Any]:
        """Rows of ``sql`` (holding one ``{marks}``) over ``ids``, 500 ids per query."""
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            yield from self._rows(sql.format(marks=",".join("?" * len(part))), part)

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
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES('embedding', ?)",
                (self.embedding_model,),
            )

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        """A write transaction taken at once (``BEGIN IMMEDIATE``), committed when the block
        ends and rolled back when it raises."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def count_articles(self) -> int:
        """Number of articles indexed."""
        return int(self._one("SELECT COUNT(*) FROM articles")[0])

    def content_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """Stored content hash of each given article id that is indexed."""
        return dict(
            self._in_parts("SELECT id, content_hash FROM articles WHERE id IN ({marks})", ids)
        )

    def ids_from_source(self, source: str) -> list[str]:
        """Ids of the articles last read from this file (used to replace an edited text file)."""
        return [r[0] for r in self._rows("SELECT id FROM articles WHERE source=?", (source,))]

    def get_article(self, article_id: str) -> Article:
        """The full article, text included. Raises ArticleNotFound."""
        row = self._one(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id=?",
            (article_id,),
        )
        if row is None:
            raise ArticleNotFound(article_id)
        return _article_from_row(row)

    def list_articles(
        self,
        *,
        offset: int = 0,
        limit: int | None = None,
        outlet: str | None = None,
        search: str | None = None,
    ) -> list[Article]:
        """Articles, newest first, without their text (text is ''); filter by outlet or title."""
        clauses: list[str] = []
        params: list[Any] = []
        if outlet:
            clauses.append("outlet = ?")
            params.append(outlet)
        if search:
            clauses.append("title LIKE ?")
            params.append(f"%{search}%")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params += [limit if limit is not None else -1, offset]
        rows = self._rows(
            f"SELECT {_LISTED_COLUMNS} FROM articles "
            f"{where} ORDER BY published IS NULL, published DESC, id LIMIT ? OFFSET ?",
            params,
        )
        return [_article_from_row(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Counts and date range of the articles and chunks, and articles per outlet."""
        articles, first, last, undated = self._one(
            "SELECT COUNT(*), MIN(published), MAX(published), SUM(published IS NULL) FROM articles"
        )
        chunks, dense = self._one("SELECT COUNT(*), SUM(dense) FROM chunks")
        outlets = self._rows(
            "SELECT outlet, COUNT(*) FROM articles GROUP BY outlet ORDER BY COUNT(*) DESC, outlet"
        )
        return {
            "articles": articles,
            "chunks": chunks or 0,
            "dense_chunks": dense or 0,
            "undated_articles": undated or 0,
            "first_published": first,
            "last_published": last,
            "outlets": {o or "(unknown)": n for o, n in outlets},
        }

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, IndexedChunk]:
        """Catalog rows of the given chunk ids; ids not in the catalog are left out."""
        sql = f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id IN ({{marks}})"
        return {row[0]: _chunk_from_row(row) for row in self._in_parts(sql, chunk_ids)}

    def all_chunks(self) -> list[IndexedChunk]:
        """Every chunk in the catalog, in a stable order."""
        rows = self._rows(f"SELECT {_CHUNK_COLUMNS} FROM chunks ORDER BY article_id, idx")
        return [_chunk_from_row(r) for r in rows]

    def dense_chunk_ids(self) -> set[str]:
        """Ids of the chunks that have a vector."""
        return {r[0] for r in self._rows("SELECT id FROM chunks WHERE dense=1")}

    def dense_counts(self, within: KeywordFilter) -> tuple[int, int, int]:
        """Vectors in all, of ``within``'s outlets, and within its days (one read of the
        per-outlet and per-day counts, whose size is the outlets' and days', not the archive's)."""
        outlets = list(within.outlets or ())
        total, of_outlets, of_days = self._one(
            "SELECT (SELECT TOTAL(n) FROM dense_by_outlet), "
            f"(SELECT TOTAL(n) FROM dense_by_outlet WHERE outlet IN ({','.join('?' * len(outlets))})), "
            "(SELECT TOTAL(n) FROM dense_by_day WHERE day BETWEEN ? AND ?)",
            [*outlets, within.first_day or 1, within.last_day or 99999999],
        )
        dated = within.first_day or within.last_day
        return int(total), int(of_outlets if outlets else total), int(of_days if dated else total)

    def mentions(self, article_id: str) -> list[Mention] | None:
        """The article's stored temporal expressions, None when not stored for this version."""
        row = self._one(
            "SELECT data FROM mentions WHERE article_id=? AND version=?", (article_id, TIMEX_VERSION)
        )
        return [Mention.model_validate(m) for m in json.loads(row[0])] if row else None

    def keep_mentions(self, article_id: str, mentions: list[Mention]) -> None:
        """Store derived mentions; no generation bump, so BM25 is not rebuilt for them."""
        with self._lock:
            _put_mentions(self.db, article_id, mentions)

    def pending_vectors(self) -> list[str]:
        """Vector ids that may be in the vector store without a committed chunk row."""
        return [r[0] for r in self._rows("SELECT id FROM pending_vectors")]

    def intend(self, vector_ids: Sequence[str]) -> None:
        """Record, committed before they are written, the vector ids a write is about to add."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                _put_pending(self.db, vector_ids)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def settle(self, vector_ids: Sequence[str]) -> None:
        """Forget these pending ids: their vectors are now deleted (or committed)."""
        with self._lock:
            for i in range(0, len(vector_ids), 500):
                part = list(vector_ids[i : i + 500])
                self.db.execute(
                    f"DELETE FROM pending_vectors WHERE id IN ({','.join('?' * len(part))})", part
                )

    def replace(self, batch: Sequence[PreparedArticle]) -> list[str]:
        """Add or replace these articles in one transaction; return their stale vector ids
        (recorded as pending until ``settle``), and settle the new ones."""
        stale: list[str] = []
        now = datetime.now(UTC).isoformat(timespec="seconds")
        written = list(dict.fromkeys(p.article.id for p in batch))
        with self._transaction() as db:
            _count_dense(db, written, -1)  # the versions being replaced
            unindex_articles(db, [p.article.id for p in batch])  # once per batch: its cost
            for prepared in batch:  # is the batch's, and the index's blocks are written once
                article = prepared.article
                ids = prepared.chunk_ids()
                new_ids = set(ids)
                stale.extend(i for i in _dense_ids(db, article.id) if i not in new_ids)
                db.execute("DELETE FROM chunks WHERE article_id=?", (article.id,))
                db.execute(
                    "INSERT OR REPLACE INTO articles(id, title, outlet, published, url, authors, "
                    "text, source, content_hash, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        article.id,
                        article.title,
                        article.outlet,
                        article.published.isoformat() if article.published else None,
                        article.url,
                        json.dumps(article.authors, ensure_ascii=False),
                        article.text,
                        article.source,
                        prepared.content_hash,
                        now,
                    ),
                )
                _put_mentions(db, article.id, prepared.mentions)
                db.executemany(
                    "INSERT INTO chunks(id, article_id, idx, sentences, embed_text, dense) "
                    "VALUES (?,?,?,?,?,?)",
                    [
                        (cid, article.id, c.index, json.dumps(c.sentences), c.embed_text,
                         int(n < len(prepared.vectors)))
                        for n, (cid, c) in enumerate(zip(ids, prepared.chunks, strict=True))
                    ],
                )
                db.executemany(
                    "DELETE FROM pending_vectors WHERE id=?",
                    [(cid,) for cid in ids[: len(prepared.vectors)]],
                )
            add_articles(db, [p.article.id for p in batch])
            _count_dense(db, written, 1)
            _put_pending(db, stale)
        return stale

    def delete(self, article_ids: Sequence[str]) -> list[str]:
        """Delete these articles and their chunks in one transaction; return their vector ids."""
        stale: list[str] = []
        with self._transaction() as db:
            _count_dense(db, list(dict.fromkeys(article_ids)), -1)
            unindex_articles(db, article_ids)
            for article_id in article_ids:
                stale.extend(_dense_ids(db, article_id))
                db.execute("DELETE FROM chunks WHERE article_id=?", (article_id,))
                db.execute("DELETE FROM articles WHERE id=?", (article_id,))
            _put_pending(db, stale)
        return stale

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self.db.close()


def _bump_generation(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )


def _count_dense(db: sqlite3.Connection, article_ids: Sequence[str] | None, sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) the vectors of these articles (None: all) in the
    counts per outlet ('' when unknown, as Chroma's metadata has it) and per day (0 undated)."""
    parts = [article_ids[i : i + 500] for i in range(0, len(article_ids), 500)] if article_ids \
        is not None else [None]
    for part in parts:
        among = f"AND c.article_id IN ({','.join('?' * len(part))})" if part is not None else ""
        for table, key, value in (
            ("dense_by_outlet", "outlet", "COALESCE(a.outlet, '')"),
            ("dense_by_day", "day", "COALESCE(CAST(REPLACE(a.published, '-', '') AS INTEGER), 0)"),
        ):
            db.execute(
                f"INSERT INTO {table}({key}, n) SELECT {value}, ? * COUNT(*) FROM chunks c "
                f"JOIN articles a ON a.id = c.article_id WHERE c.dense = 1 {among} GROUP BY 1 "
                f"ON CONFLICT({key}) DO UPDATE SET n = n + excluded.n",
                [sign, *(part or [])],
            )
            db.execute(f"DELETE FROM {table} WHERE n = 0")


def _dense_ids(db: sqlite3.Connection, article_id: str) -> list[str]:
    return [
        r[0] for r in db.execute("SELECT id FROM chunks WHERE article_id=? AND dense=1", (article_id,))
    ]


def _put_pending(db: sqlite3.Connection, vector_ids: Sequence[str]) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO pending_vectors(id) VALUES (?)", [(i,) for i in vector_ids]
    )


def _put_mentions(db: sqlite3.Connection, article_id: str, mentions: list[Mention]) -> None:
    db.execute(
        "INSERT OR REPLACE INTO mentions(article_id, version, data) VALUES (?,?,?)",
        (
            article_id,
            TIMEX_VERSION,
            json.dumps([m.model_dump(mode="json", exclude_defaults=True) for m in mentions]),
        ),
    )


def _article_from_row(row: tuple[Any, ...]) -> Article:
    return Article(
        id=row[0],
        title=row[1],
        outlet=row[2],
        published=date.fromisoformat(row[3]) if row[3] else None,
        url=row[4],
        authors=json.loads(row[5]),
        text=row[6],
        source=row[7],
    )


def _chunk_from_row(row: tuple[Any, ...]) -> IndexedChunk:
    return IndexedChunk(
        id=row[0],
        article_id=row[1],
        index=row[2],
        sentences=[tuple(s) for s in json.loads(row[3])],  # type: ignore[misc]
        embed_text=row[4],
    )
