"""The catalog on a PostgreSQL server: ``PgCatalog(config)`` at ``config.catalog_url``.

Server mode keeps nothing of newsdesk's on local disk: this catalog holds the articles, chunks
and temporal expressions, the write journal of vector ids (``pending_vectors``), the keyword
index (``index.pg_keywords``: the embedded mode's BM25 postings, written in the same
transactions), the counts of vectors per outlet and per day (also kept by each write's
transaction) and the writers' lock (``index.pg_lock``).  Each collection is one schema
of the database (named like the Chroma collection, ``newsdesk`` by default), so several indexes
can share a server.  Reads use a small connection pool; a ``snapshot()`` reads one REPEATABLE
READ transaction, so an index derived from the catalog sees one commit whole.  Writes run in one
transaction on the session that holds the advisory lock (or, called without it, take the same
lock for the transaction), bump the generation and record the embedding model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from index import pg_keywords
from index.catalog import IndexedChunk, PreparedArticle
from index.config import IndexConfig
from index.dates import day_number
from index.errors import ArticleNotFound, StoreError
from index.keywords import KeywordFilter
from index.models import Article
from index.pg_keywords import PgKeywords
from index.pg_lock import PgWriteLock, lock_key
from index.timex import TIMEX_VERSION, Mention

SCHEMA_VERSION = "3"
"""3: counts of vectors per outlet and per day; 2: keyword search by BM25 postings of the
project's tokens (1: ``tsvector`` columns)."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL DEFAULT 0,
    embedding text,
    schema_version text NOT NULL DEFAULT '{SCHEMA_VERSION}'
);
INSERT INTO state DEFAULT VALUES ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS articles (
    id text PRIMARY KEY,
    title text NOT NULL,
    outlet text,
    published date,
    day integer NOT NULL,
    url text,
    authors jsonb NOT NULL,
    text text NOT NULL,
    source text,
    content_hash text NOT NULL,
    ingested_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id text PRIMARY KEY,
    article_id text NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    idx integer NOT NULL,
    sentences jsonb NOT NULL,
    embed_text text NOT NULL,
    dense boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS mentions (
    article_id text PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    version text NOT NULL,
    data jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_vectors (id text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS dense_by_outlet (outlet text PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE IF NOT EXISTS dense_by_day (day integer PRIMARY KEY, n bigint NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_outlet_day ON articles(outlet, day);
"""

_ARTICLE_COLUMNS = "id, title, outlet, published, url, authors, text, source"
_LISTED_COLUMNS = "id, title, outlet, published, url, authors, '', source"
_CHUNK_COLUMNS = "id, article_id, idx, sentences, embed_text"


def _driver() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise StoreError(
            "NEWSDESK_CATALOG_URL needs the PostgreSQL driver, which is not installed",
            hint="pip install -e '.[server]'",
        ) from exc
    return psycopg, psycopg_pool


class PgCatalog:
    """The catalog in one schema of a PostgreSQL database; safe to share between threads."""

    def __init__(self, config: IndexConfig) -> None:
        psycopg, psycopg_pool = _driver()
        from psycopg import sql

        if config.catalog_url is None:
            raise StoreError("no catalog_url given", hint="set NEWSDESK_CATALOG_URL")
        self.embedding_model = config.embedding
        self.schema = config.collection
        self._url = config.catalog_url.get_secret_value()
        self.location = f"{redacted(self._url)} (schema {self.schema})"
        self._search_path = sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
        self._local = threading.local()
        self.pool = psycopg_pool.ConnectionPool(
            self._url, min_size=1, max_size=4, open=False, configure=self._configure,
            kwargs={"autocommit": True}, name=f"newsdesk-{self.schema}",
        )
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=10) as conn, \
                    conn.transaction():  # fails fast, with the server's reason, when unreachable
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("schema:" + self.schema),))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(self.schema)))
                conn.execute(self._search_path)
                conn.execute(SCHEMA + pg_keywords.SCHEMA)
                _upgrade(conn)
            self.pool.open(wait=True, timeout=15)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self.pool.close()
            raise StoreError(
                f"cannot open the catalog at {self.location}: {exc}".strip(),
                hint="start PostgreSQL, or fix NEWSDESK_CATALOG_URL (postgresql://USER@HOST:PORT/DB)",
            ) from exc
        self._keywords: PgKeywords | None = None
        self._keywords_lock = threading.Lock()
        self.write_lock = PgWriteLock(self._connect, lock_key("write:" + self.schema),
                                      f"advisory lock of {self.location}")

    def _configure(self, conn: Any) -> None:
        conn.execute(self._search_path)

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._url, autocommit=True)
        self._configure(conn)
        return conn

    @contextmanager
    def _read(self) -> Iterator[Any]:
        """A connection to read on: the thread's snapshot if it holds one, else a pooled one."""
        held = getattr(self._local, "snapshot", None)
        if held is not None:
            yield held
            return
        with self.pool.connection() as conn:
            yield conn

    def _rows(self, query: Any, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        import psycopg
        import psycopg_pool

        try:
            with self._read() as conn:
                return conn.execute(query, params).fetchall()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreError(
                f"the catalog at {self.location} cannot be reached: {exc}".strip(),
                hint="check that PostgreSQL is running and NEWSDESK_CATALOG_URL points at it",
            ) from exc

    def _one(self, query: Any, params: Sequence[Any] = ()) -> Any:
        rows = self._rows(query, params)
        return rows[0] if rows else None

    @property
    def generation(self) -> int:
        """Counter bumped by every write; derived indexes compare against it."""
        return int(self._one("SELECT generation FROM state")[0])

    @property
    def embedding(self) -> str | None:
        """The embedding model recorded by the last write; None before the first."""
        return self._one("SELECT embedding FROM state")[0]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads of this thread, until released, see one committed state of the database."""
        if getattr(self._local, "snapshot", None) is not None:
            yield
            return
        with self.pool.connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self._local.snapshot = conn
            try:
                yield
            finally:
                self._local.snapshot = None
                conn.execute("ROLLBACK")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One write transaction, committed by a session holding the writers' lock, that bumps
        the generation and records the embedding model."""
        session = self.write_lock.connection
        if session is not None:
            with session.transaction():
                yield session
                self._bump(session)
            return
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.write_lock.key,))
            yield conn
            self._bump(conn)

    def _bump(self, conn: Any) -> None:
        conn.execute(
            "UPDATE state SET generation = generation + 1, embedding = %s", (self.embedding_model,)
        )

    def count_articles(self) -> int:
        """Number of articles indexed."""
        return int(self._one("SELECT count(*) FROM articles")[0])

    def content_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """Stored content hash of each given article id that is indexed."""
        return dict(self._rows(
            "SELECT id, content_hash FROM articles WHERE id = ANY(%s)", (list(ids),)))

    def ids_from_source(self, source: str) -> list[str]:
        """Ids of the articles last read from this file."""
        return [r[0] for r in self._rows("SELECT id FROM articles WHERE source = %s", (source,))]

    def get_article(self, article_id: str) -> Article:
        """The full article, text included. Raises ArticleNotFound."""
        row = self._one(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id = %s", (article_id,))
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
        clauses, params = ["true"], []
        if outlet:
            clauses.append("outlet = %s")
            params.append(outlet)
        if search:
            clauses.append("title ILIKE %s")
            params.append(f"%{search}%")
        rows = self._rows(
            f"SELECT {_LISTED_COLUMNS} FROM articles WHERE {' AND '.join(clauses)} "
            "ORDER BY published IS NULL, published DESC, id COLLATE \"C\" LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return [_article_from_row(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Counts and date range of the articles and chunks, and articles per outlet."""
        with self.snapshot():
            articles, first, last, undated = self._one(
                "SELECT count(*), min(published), max(published), "
                "count(*) FILTER (WHERE published IS NULL) FROM articles")
            chunks, dense = self._one("SELECT count(*), count(*) FILTER (WHERE dense) FROM chunks")
            outlets = self._rows(
                "SELECT outlet, count(*) FROM articles GROUP BY outlet "
                "ORDER BY count(*) DESC, outlet COLLATE \"C\" NULLS FIRST")
        return {
            "articles": articles,
            "chunks": chunks,
            "dense_chunks": dense,
            "undated_articles": undated,
            "first_published": first.isoformat() if first else None,
            "last_published": last.isoformat() if last else None,
            "outlets": {o or "(unknown)": n for o, n in outlets},
            "catalog": self.location,
        }

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, IndexedChunk]:
        """The given chunks by id; ids not in the catalog are left out."""
        rows = self._rows(f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id = ANY(%s)",
                          (list(chunk_ids),))
        return {row[0]: _chunk_from_row(row) for row in rows}

    def all_chunks(self) -> list[IndexedChunk]:
        """Every chunk, ordered by article id, then position."""
        rows = self._rows(f"SELECT {_CHUNK_COLUMNS} FROM chunks ORDER BY article_id COLLATE \"C\", idx")
        return [_chunk_from_row(r) for r in rows]

    def dense_chunk_ids(self) -> set[str]:
        """Ids of the chunks that have a vector."""
        return {r[0] for r in self._rows("SELECT id FROM chunks WHERE dense")}

    def dense_counts(self, within: KeywordFilter) -> tuple[int, int, int]:
        """Vectors in all, of ``within``'s outlets, and within its days (one read of the
        per-outlet and per-day counts, whose size is the outlets' and days', not the archive's)."""
        total, of_outlets, of_days = self._one(
            "SELECT (SELECT coalesce(sum(n), 0) FROM dense_by_outlet), "
            "(SELECT coalesce(sum(n), 0) FROM dense_by_outlet WHERE outlet = ANY(%s)), "
            "(SELECT coalesce(sum(n), 0) FROM dense_by_day WHERE day BETWEEN %s AND %s)",
            (list(within.outlets or ()), within.first_day or 1, within.last_day or 99999999),
        )
        dated = within.first_day or within.last_day
        return int(total), int(of_outlets if within.outlets else total), \
            int(of_days if dated else total)

    @property
    def keywords(self) -> PgKeywords:
        """Keyword search (BM25 over the catalog's postings) as of the last commit."""
        generation = self.generation
        with self._keywords_lock:
            if self._keywords is None or self._keywords.generation != generation:
                self._keywords = PgKeywords.load(self)
            return self._keywords

    def published_days(self, article_ids: Iterable[str]) -> dict[str, int]:
        """Publication day (YYYYMMDD, 0 when unknown) of each given article that is indexed."""
        return dict(self._rows("SELECT id, day FROM articles WHERE id = ANY(%s)",
                               (list(article_ids),)))

    def mentions(self, article_id: str) -> list[Mention] | None:
        """The article's stored temporal expressions, None when not stored for this version."""
        row = self._one("SELECT data FROM mentions WHERE article_id = %s AND version = %s",
                        (article_id, TIMEX_VERSION))
        return [Mention.model_validate(m) for m in row[0]] if row else None

    def keep_mentions(self, article_id: str, mentions: list[Mention]) -> None:
        """Store derived mentions, without bumping the generation (an article removed meanwhile
        keeps none)."""
        import psycopg

        try:
            with self.pool.connection() as conn:
                _put_mentions(conn, article_id, mentions)
        except psycopg.errors.ForeignKeyViolation:
            pass

    def pending_vectors(self) -> list[str]:
        """Vector ids that may be in the vector store without a committed chunk row."""
        return [r[0] for r in self._rows("SELECT id FROM pending_vectors")]

    def intend(self, vector_ids: Sequence[str]) -> None:
        """Record, committed before they are written, the vector ids a write is about to add."""
        with self._journal() as conn:
            _put_pending(conn, vector_ids)

    def settle(self, vector_ids: Sequence[str]) -> None:
        """Forget these pending ids: their vectors are now deleted (or committed)."""
        with self._journal() as conn:
            conn.execute("DELETE FROM pending_vectors WHERE id = ANY(%s)", (list(vector_ids),))

    @contextmanager
    def _journal(self) -> Iterator[Any]:
        """A transaction on the journal alone (no generation bump): on the writers' session
        when this thread holds the lock, else on a pooled connection."""
        session = self.write_lock.connection
        if session is not None:
            with session.transaction():
                yield session
            return
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    def replace(self, batch: Sequence[PreparedArticle]) -> list[str]:
        """Add or replace these articles in one transaction; return their stale vector ids
        (journaled until ``settle``), and settle the new ones."""
        stale: list[str] = []
        now = datetime.now(UTC)
        last = {p.article.id: p for p in batch}  # an article given twice: its last version
        keywords = pg_keywords.documents(list(last.values()))  # tokenized before the lock
        with self._transaction() as conn:
            _count_dense(conn, list(last), -1)  # the versions being replaced
            pg_keywords.remove(conn, list(last))
            for prepared in batch:
                article = prepared.article
                ids = prepared.chunk_ids()
                new_ids = set(ids)
                stale.extend(i for i in _dense_ids(conn, article.id) if i not in new_ids)
                conn.execute("DELETE FROM chunks WHERE article_id = %s", (article.id,))
                conn.execute(
                    "INSERT INTO articles(id, title, outlet, published, day, url, authors, text, "
                    "source, content_hash, ingested_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (id) DO UPDATE SET title=excluded.title, outlet=excluded.outlet, "
                    "published=excluded.published, day=excluded.day, url=excluded.url, "
                    "authors=excluded.authors, text=excluded.text, source=excluded.source, "
                    "content_hash=excluded.content_hash, ingested_at=excluded.ingested_at",
                    (article.id, article.title, article.outlet, article.published,
                     day_number(article.published), article.url,
                     json.dumps(article.authors, ensure_ascii=False), article.text,
                     article.source, prepared.content_hash, now),
                )
                _put_mentions(conn, article.id, prepared.mentions)
                with conn.cursor().copy(
                    "COPY chunks (id, article_id, idx, sentences, embed_text, dense) FROM STDIN"
                ) as copy:
                    for n, (cid, chunk) in enumerate(zip(ids, prepared.chunks, strict=True)):
                        copy.write_row((cid, article.id, chunk.index, json.dumps(chunk.sentences),
                                        chunk.embed_text, n < len(prepared.vectors)))
                conn.execute("DELETE FROM pending_vectors WHERE id = ANY(%s)",
                             (ids[: len(prepared.vectors)],))
            pg_keywords.write(conn, keywords)
            _count_dense(conn, list(last), 1)
            _put_pending(conn, stale)
        return stale

    def delete(self, article_ids: Sequence[str]) -> list[str]:
        """Delete these articles and their chunks in one transaction; return their vector ids
        (journaled until ``settle``)."""
        with self._transaction() as conn:
            stale = [r[0] for r in conn.execute(
                "SELECT id FROM chunks WHERE article_id = ANY(%s) AND dense", (list(article_ids),))]
            _count_dense(conn, list(article_ids), -1)
            pg_keywords.remove(conn, article_ids)
            conn.execute("DELETE FROM articles WHERE id = ANY(%s)", (list(article_ids),))
            _put_pending(conn, stale)
        return stale

    def close(self) -> None:
        """Release the pool and the lock's session."""
        self.write_lock.close()
        self.pool.close()


def _upgrade(conn: Any) -> None:
    """Bring a catalog of an older layout to this one, inside the schema lock's transaction."""
    version = conn.execute("SELECT schema_version FROM state").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version not in ("1", "2"):
        raise StoreError(f"the catalog's layout is version {version}, newer than this newsdesk's "
                         f"({SCHEMA_VERSION})", hint="upgrade newsdesk on this machine")
    if version == "1":  # 1 searched tsvector columns
        for table in ("articles", "chunks"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS tsv, DROP COLUMN IF EXISTS tokens")
        conn.execute("DROP FUNCTION IF EXISTS tsv_tokens(tsvector)")
        pg_keywords.rebuild(conn)
    conn.execute("DELETE FROM dense_by_outlet; DELETE FROM dense_by_day")  # 2 had no counts
    _count_dense(conn, None, 1)
    conn.execute("UPDATE state SET schema_version = %s", (SCHEMA_VERSION,))


def redacted(url: str) -> str:
    """``url`` without its password, for messages and stats."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by the connection attempt
        return "postgresql://?"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def _count_dense(conn: Any, article_ids: Sequence[str] | None, sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) the vectors of these articles (None: all) in the
    counts per outlet ('' when unknown, as Chroma's metadata has it) and per day (0 undated)."""
    among = "AND c.article_id = ANY(%(ids)s)" if article_ids is not None else ""
    for table, key, value in (("dense_by_outlet", "outlet", "coalesce(a.outlet, '')"),
                              ("dense_by_day", "day", "a.day")):
        conn.execute(
            f"INSERT INTO {table}({key}, n) SELECT {value}, %(sign)s * count(*) FROM chunks c "
            f"JOIN articles a ON a.id = c.article_id WHERE c.dense {among} GROUP BY 1 "
            f"ON CONFLICT ({key}) DO UPDATE SET n = {table}.n + excluded.n",
            {"sign": sign, "ids": list(article_ids or ())},
        )
        conn.execute(f"DELETE FROM {table} WHERE n = 0")


def _dense_ids(conn: Any, article_id: str) -> list[str]:
    rows = conn.execute("SELECT id FROM chunks WHERE article_id = %s AND dense", (article_id,))
    return [r[0] for r in rows]


def _put_pending(conn: Any, vector_ids: Sequence[str]) -> None:
    if vector_ids:
        conn.execute("INSERT INTO pending_vectors(id) SELECT unnest(%s::text[]) "
                     "ON CONFLICT DO NOTHING", (list(vector_ids),))


def _put_mentions(conn: Any, article_id: str, mentions: list[Mention]) -> None:
    conn.execute(
        "INSERT INTO mentions(article_id, version, data) VALUES (%s,%s,%s) ON CONFLICT (article_id) "
        "DO UPDATE SET version=excluded.version, data=excluded.data",
        (article_id, TIMEX_VERSION,
         json.dumps([m.model_dump(mode="json", exclude_defaults=True) for m in mentions])),
    )


def _article_from_row(row: tuple[Any, ...]) -> Article:
    return Article(id=row[0], title=row[1], outlet=row[2], published=row[3], url=row[4],
                   authors=row[5], text=row[6], source=row[7])


def _chunk_from_row(row: tuple[Any, ...]) -> IndexedChunk:
    return IndexedChunk(id=row[0], article_id=row[1], index=row[2],
                        sentences=[tuple(s) for s in row[3]], embed_text=row[4])
