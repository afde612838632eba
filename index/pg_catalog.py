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

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from index import pg_keywords
from index.catalog import PreparedArticle
from index.config import IndexConfig
from index.dates import day_number
from index.errors import StoreError
from index.pg_keywords import PgKeywords
from index.pg_lock import PgWriteLock, lock_key
from index.sql_catalog import SqlCatalog
from index.timex import Mention

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


class PgCatalog(SqlCatalog):
    """The catalog in one schema of a PostgreSQL database; safe to share between threads."""

    MARK = "%s"
    PART = None  # a list is one array parameter
    BYTEWISE = '"C"'
    LIKE = "ILIKE"
    NO_LIMIT = None
    DAY = "a.day"

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
                conn.execute("SELECT pg_advisory_xact_lock(%s)",
                             (lock_key("schema:" + self.schema),))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(self.schema)))
                conn.execute(self._search_path)
                conn.execute(SCHEMA + pg_keywords.SCHEMA)
                self._upgrade(conn)
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

    def _upgrade(self, conn: Any) -> None:
        """Bring a catalog of an older layout to this one, inside the schema lock's
        transaction."""
        version = conn.execute("SELECT schema_version FROM state").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version not in ("1", "2"):
            raise StoreError(f"the catalog's layout is version {version}, newer than this "
                             f"newsdesk's ({SCHEMA_VERSION})",
                             hint="upgrade newsdesk on this machine")
        if version == "1":  # 1 searched tsvector columns
            for table in ("articles", "chunks"):
                conn.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS tsv, "
                             "DROP COLUMN IF EXISTS tokens")
            conn.execute("DROP FUNCTION IF EXISTS tsv_tokens(tsvector)")
            pg_keywords.rebuild(conn)
        conn.execute("DELETE FROM dense_by_outlet; DELETE FROM dense_by_day")  # 2 had no counts
        self._count_dense(conn, None, 1)
        conn.execute("UPDATE state SET schema_version = %s", (SCHEMA_VERSION,))

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

    def stats(self) -> dict[str, Any]:
        """Counts and date range of the articles and chunks, articles per outlet, and where."""
        return super().stats() | {"catalog": self.location}

    @property
    def keywords(self) -> PgKeywords:
        """Keyword search (BM25 over the catalog's postings) as of the last commit."""
        generation = self.generation
        with self._keywords_lock:
            if self._keywords is None or self._keywords.generation != generation:
                self._keywords = PgKeywords.load(self)
            return self._keywords

    def keep_mentions(self, article_id: str, mentions: list[Mention]) -> None:
        """Store derived mentions, without bumping the generation (an article removed meanwhile
        keeps none)."""
        import psycopg

        try:
            with self.pool.connection() as conn:
                self._put_mentions(conn, article_id, mentions)
        except psycopg.errors.ForeignKeyViolation:
            pass

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

    def optimize(self) -> None:
        """PostgreSQL's VACUUM (ANALYZE) of the schema's tables: the space of replaced and
        removed rows made reusable and the planner's statistics brought up to date.  (The
        server places rows itself; CLUSTER would order them, locking readers out.)"""
        import psycopg
        from psycopg import sql

        tables = [r[0] for r in self._rows(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
            (self.schema,))]
        try:
            with self.pool.connection() as conn:  # autocommit: VACUUM runs outside a transaction
                for table in tables:
                    conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(
                        sql.Identifier(self.schema, table)))
        except psycopg.Error as exc:
            raise StoreError(f"cannot optimize the catalog at {self.location}: {exc}",
                             hint="check the server is up and the user owns the schema's "
                             "tables, then run it again") from exc

    def close(self) -> None:
        """Release the pool and the lock's session."""
        self.write_lock.close()
        self.pool.close()

    # --- the dialect -------------------------------------------------------------------------

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [values]

    def _upsert_sql(self, table: str, columns: list[str], key: str) -> str:
        update = ", ".join(f"{c}=excluded.{c}" for c in columns if c != key)
        return (f"INSERT INTO {table}({', '.join(columns)}) VALUES ({self._marks(len(columns))}) "
                f"ON CONFLICT ({key}) DO UPDATE SET {update}")

    def _put_chunks(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        with conn.cursor().copy(
            "COPY chunks (id, article_id, idx, sentences, embed_text, dense) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)

    def _put_pending(self, conn: Any, vector_ids: Sequence[str]) -> None:
        if vector_ids:
            conn.execute("INSERT INTO pending_vectors(id) SELECT unnest(%s::text[]) "
                         "ON CONFLICT DO NOTHING", (list(vector_ids),))

    def _keyword_documents(self, batch: Sequence[PreparedArticle]) -> Any:
        last = {p.article.id: p for p in batch}  # an article given twice: its last version
        return pg_keywords.documents(list(last.values()))  # tokenized before the lock

    def _unindex(self, conn: Any, article_ids: list[str]) -> None:
        pg_keywords.remove(conn, article_ids)

    def _index(self, conn: Any, article_ids: list[str], documents: Any) -> None:
        pg_keywords.write(conn, documents)

    def _article_row(self, prepared: PreparedArticle, now: datetime) -> dict[str, Any]:
        return super()._article_row(prepared, now) | {
            "day": day_number(prepared.article.published)}


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


