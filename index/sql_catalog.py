"""What the SQLite and PostgreSQL catalogs share: ``SqlCatalog``, the ``Catalog`` interface
(``index.catalog``) written once over the tables both lay out alike.

Both keep ``articles``, ``chunks`` (``dense`` when the chunk has a vector), ``mentions``, the
write journal ``pending_vectors`` and the counts of vectors ``dense_by_outlet`` and
``dense_by_day``, and run the same statements on them: the reads, the row mapping, and each
write's steps (``replace``, ``delete``, the journal, the counts).  A backend subclasses
``SqlCatalog`` with only what differs:

- its tables' layout (``SCHEMA``), its connections and transactions: ``_rows`` (a read),
  ``_transaction`` (one write, which bumps the generation and records the embedding model),
  ``_journal`` (a transaction on the journal alone), ``snapshot``, and ``generation``,
  ``embedding``, ``keep_mentions`` and ``close``;
- its keyword index: ``keywords``, and a write's ``_unindex`` / ``_index`` steps;
- its dialect: the class constants below, ``_in`` (a list parameter), ``_upsert_sql``, the bulk
  writes ``_put_chunks`` and ``_put_pending``, and how dates and JSON are stored
  (``_article_row``, ``_stored_date``, ``_stored_json``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from index.catalog import IndexedChunk, PreparedArticle
from index.errors import ArticleNotFound
from index.keywords import KeywordFilter
from index.models import Article
from index.timex import TIMEX_VERSION, Mention

ARTICLE_COLUMNS = "id, title, outlet, published, url, authors, text, source"
LISTED_COLUMNS = "id, title, outlet, published, url, authors, '', source"  # text left out
CHUNK_COLUMNS = "id, article_id, idx, sentences, embed_text"


class SqlCatalog(ABC):
    """The catalog's statements and row mapping, shared by its SQL backends."""

    MARK: ClassVar[str]
    """The driver's parameter mark: ``?`` (sqlite3) or ``%s`` (psycopg)."""

    PART: ClassVar[int | None]
    """The most values one ``_in`` condition takes (None: any number)."""

    BYTEWISE: ClassVar[str]
    """The collation that orders ids and outlets byte by byte, the same in both backends."""

    LIKE: ClassVar[str]
    """The operator of a case-insensitive title search."""

    NO_LIMIT: ClassVar[int | None]
    """The ``LIMIT`` that lists every row."""

    DAY: ClassVar[str]
    """The publication day (YYYYMMDD, 0 when undated) of an ``articles`` row named ``a``."""

    embedding_model: str

    # --- what a backend gives ----------------------------------------------------------------

    @abstractmethod
    def _rows(self, sql: Any, params: Any = ()) -> list[Any]:
        """The rows of one read."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """One write transaction, yielding its connection, that bumps the generation first and
        records the embedding model."""

    @abstractmethod
    def _journal(self) -> AbstractContextManager[Any]:
        """A transaction on the journal alone (no generation bump), yielding its connection."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """A consistent view: no write through this catalog commits while it is held."""

    @abstractmethod
    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """The condition that ``column`` is one of ``values``, with its parameters."""

    @abstractmethod
    def _upsert_sql(self, table: str, columns: list[str], key: str) -> str:
        """An insert of one row that replaces the row with the same ``key``."""

    @abstractmethod
    def _put_chunks(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert chunk rows: (id, article_id, idx, sentences as JSON, embed_text, dense)."""

    @abstractmethod
    def _put_pending(self, conn: Any, vector_ids: Sequence[str]) -> None:
        """Journal these vector ids (each once)."""

    @abstractmethod
    def _unindex(self, conn: Any, article_ids: list[str]) -> None:
        """Take these articles' stored documents out of the keyword index."""

    @abstractmethod
    def _index(self, conn: Any, article_ids: list[str], documents: Any) -> None:
        """Add these articles, as just written, to the keyword index (``documents`` is what
        ``_keyword_documents`` prepared)."""

    def _keyword_documents(self, batch: Sequence[PreparedArticle]) -> Any:
        """What ``_index`` will need of a batch, prepared before the write transaction."""
        return None

    def _article_row(self, prepared: PreparedArticle, now: datetime) -> dict[str, Any]:
        """The ``articles`` row of this version, column by column."""
        article = prepared.article
        return {
            "id": article.id,
            "title": article.title,
            "outlet": article.outlet,
            "published": article.published,
            "url": article.url,
            "authors": json.dumps(article.authors, ensure_ascii=False),
            "text": article.text,
            "source": article.source,
            "content_hash": prepared.content_hash,
            "ingested_at": now,
        }

    @staticmethod
    def _stored_date(value: Any) -> date | None:
        """A ``published`` value as read (the driver's date)."""
        return value  # type: ignore[no-any-return]

    @staticmethod
    def _stored_json(value: Any) -> Any:
        """A JSON column's value as read (decoded by the driver)."""
        return value

    # --- shared helpers ----------------------------------------------------------------------

    def _one(self, sql: Any, params: Any = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _among(self, column: str, values: Iterable[Any]) -> Iterator[tuple[str, list[Any]]]:
        """``_in`` conditions covering ``values``, ``PART`` values at the most in each."""
        values = list(values)
        if self.PART is None:
            yield self._in(column, values)
            return
        for i in range(0, len(values), self.PART):
            yield self._in(column, values[i : i + self.PART])

    def _rows_among(
        self, sql: str, column: str, values: Iterable[Any], conn: Any = None
    ) -> list[Any]:
        """Rows of ``sql``, whose ``{among}`` is ``column`` being one of ``values``; read on
        ``conn`` (a write's own) or else by ``_rows``."""
        rows: list[Any] = []
        for condition, params in self._among(column, values):
            query = sql.format(among=condition)
            rows += (conn.execute(query, params).fetchall() if conn is not None
                     else self._rows(query, params))
        return rows

    def _execute_among(self, conn: Any, sql: str, column: str, values: Iterable[Any]) -> None:
        """Run ``sql`` (a write whose ``{among}`` is ``column`` being one of ``values``)."""
        for condition, params in self._among(column, values):
            conn.execute(sql.format(among=condition), params)

    def _upsert(self, conn: Any, table: str, row: dict[str, Any], key: str) -> None:
        conn.execute(self._upsert_sql(table, list(row), key), list(row.values()))

    def _marks(self, n: int) -> str:
        return ",".join([self.MARK] * n)

    # --- reads -------------------------------------------------------------------------------

    def count_articles(self) -> int:
        """Number of articles indexed."""
        return int(self._one("SELECT count(*) FROM articles")[0])

    def content_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """Stored content hash of each given article id that is indexed."""
        return dict(self._rows_among("SELECT id, content_hash FROM articles WHERE {among}",
                                     "id", ids))

    def ids_from_source(self, source: str) -> list[str]:
        """Ids of the articles last read from this file (used to replace an edited text file)."""
        rows = self._rows(f"SELECT id FROM articles WHERE source = {self.MARK}", (source,))
        return [r[0] for r in rows]

    def get_article(self, article_id: str) -> Article:
        """The full article, text included. Raises ArticleNotFound."""
        row = self._one(f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = {self.MARK}",
                        (article_id,))
        if row is None:
            raise ArticleNotFound(article_id)
        return self._article_from_row(row)

    def list_articles(
        self,
        *,
        offset: int = 0,
        limit: int | None = None,
        outlet: str | None = None,
        search: str | None = None,
    ) -> list[Article]:
        """Articles, newest first (undated last, then by id), without their text (text is '');
        filter by outlet or by a substring of the title."""
        clauses: list[str] = []
        params: list[Any] = []
        if outlet:
            clauses.append(f"outlet = {self.MARK}")
            params.append(outlet)
        if search:
            clauses.append(f"title {self.LIKE} {self.MARK}")
            params.append(f"%{search}%")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(
            f"SELECT {LISTED_COLUMNS} FROM articles {where} ORDER BY published IS NULL, "
            f"published DESC, id COLLATE {self.BYTEWISE} LIMIT {self.MARK} OFFSET {self.MARK}",
            [*params, self.NO_LIMIT if limit is None else limit, offset],
        )
        return [self._article_from_row(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Counts and date range of the articles and chunks, and articles per outlet."""
        with self.snapshot():
            articles, first, last, undated = self._one(
                "SELECT count(*), min(published), max(published), "
                "count(*) FILTER (WHERE published IS NULL) FROM articles")
            chunks, dense = self._one("SELECT count(*), count(*) FILTER (WHERE dense) FROM chunks")
            outlets = self._rows(
                "SELECT outlet, count(*) FROM articles GROUP BY outlet "
                f"ORDER BY count(*) DESC, outlet COLLATE {self.BYTEWISE} NULLS FIRST")
        first, last = self._stored_date(first), self._stored_date(last)
        return {
            "articles": articles,
            "chunks": chunks,
            "dense_chunks": dense,
            "undated_articles": undated,
            "first_published": first.isoformat() if first else None,
            "last_published": last.isoformat() if last else None,
            "outlets": {o or "(unknown)": n for o, n in outlets},
        }

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, IndexedChunk]:
        """The given chunks by id; ids not in the catalog are left out."""
        rows = self._rows_among(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE {{among}}", "id",
                                chunk_ids)
        return {row[0]: self._chunk_from_row(row) for row in rows}

    def all_chunks(self) -> list[IndexedChunk]:
        """Every chunk, ordered by article id, then position."""
        rows = self._rows(f"SELECT {CHUNK_COLUMNS} FROM chunks "
                          f"ORDER BY article_id COLLATE {self.BYTEWISE}, idx")
        return [self._chunk_from_row(r) for r in rows]

    def dense_chunk_ids(self) -> set[str]:
        """Ids of the chunks that have a vector."""
        return {r[0] for r in self._rows("SELECT id FROM chunks WHERE dense")}

    def dense_counts(self, within: KeywordFilter) -> tuple[int, int, int]:
        """Vectors in all, of ``within``'s outlets, and within its days (one read of the
        per-outlet and per-day counts, whose size is the outlets' and days', not the archive's)."""
        of_outlets, outlets = self._in("outlet", list(within.outlets or ()))
        total, in_outlets, in_days = self._one(
            "SELECT (SELECT coalesce(sum(n), 0) FROM dense_by_outlet), "
            f"(SELECT coalesce(sum(n), 0) FROM dense_by_outlet WHERE {of_outlets}), "
            "(SELECT coalesce(sum(n), 0) FROM dense_by_day "
            f"WHERE day BETWEEN {self.MARK} AND {self.MARK})",
            [*outlets, within.first_day or 1, within.last_day or 99999999],
        )
        dated = within.first_day or within.last_day
        return (int(total), int(in_outlets if within.outlets else total),
                int(in_days if dated else total))

    def published_days(self, article_ids: Iterable[str]) -> dict[str, int]:
        """Publication day (YYYYMMDD, 0 when unknown) of each given article that is indexed."""
        return dict(self._rows_among(f"SELECT a.id, {self.DAY} FROM articles a WHERE {{among}}",
                                     "a.id", article_ids))

    def mentions(self, article_id: str) -> list[Mention] | None:
        """The article's stored temporal expressions, None when not stored for this version."""
        row = self._one(
            f"SELECT data FROM mentions WHERE article_id = {self.MARK} AND version = {self.MARK}",
            (article_id, TIMEX_VERSION),
        )
        return [Mention.model_validate(m) for m in self._stored_json(row[0])] if row else None

    def pending_vectors(self) -> list[str]:
        """Vector ids that may be in the vector store without a committed chunk row."""
        return [r[0] for r in self._rows("SELECT id FROM pending_vectors")]

    # --- writes ------------------------------------------------------------------------------

    def intend(self, vector_ids: Sequence[str]) -> None:
        """Record, committed before they are written, the vector ids a write is about to add."""
        with self._journal() as conn:
            self._put_pending(conn, vector_ids)

    def settle(self, vector_ids: Sequence[str]) -> None:
        """Forget these pending ids: their vectors are now deleted (or committed)."""
        with self._journal() as conn:
            self._execute_among(conn, "DELETE FROM pending_vectors WHERE {among}", "id",
                                vector_ids)

    def touch(self) -> None:
        with self._transaction():
            pass

    def replace(self, batch: Sequence[PreparedArticle]) -> list[str]:
        """Add or replace these articles in one transaction; return their stale vector ids
        (journaled until ``settle``), and settle the new ones."""
        stale: list[str] = []
        now = datetime.now(UTC)
        written = list(dict.fromkeys(p.article.id for p in batch))
        documents = self._keyword_documents(batch)
        with self._transaction() as conn:
            self._count_dense(conn, written, -1)  # the versions being replaced
            self._unindex(conn, written)
            for prepared in batch:
                article_id = prepared.article.id
                ids = prepared.chunk_ids()
                new_ids = set(ids)
                stale.extend(i for i in self._dense_ids(conn, article_id) if i not in new_ids)
                conn.execute(f"DELETE FROM chunks WHERE article_id = {self.MARK}", (article_id,))
                self._upsert(conn, "articles", self._article_row(prepared, now), "id")
                self._put_mentions(conn, article_id, prepared.mentions)
                self._put_chunks(conn, [
                    (cid, article_id, chunk.index, json.dumps(chunk.sentences), chunk.embed_text,
                     n < len(prepared.vectors))
                    for n, (cid, chunk) in enumerate(zip(ids, prepared.chunks, strict=True))
                ])
                self._execute_among(conn, "DELETE FROM pending_vectors WHERE {among}", "id",
                                    ids[: len(prepared.vectors)])
            self._index(conn, written, documents)
            self._count_dense(conn, written, 1)
            self._put_pending(conn, stale)
        return stale

    def delete(self, article_ids: Sequence[str]) -> list[str]:
        """Delete these articles and their chunks in one transaction; return their vector ids
        (journaled until ``settle``)."""
        ids = list(dict.fromkeys(article_ids))
        with self._transaction() as conn:
            stale = [r[0] for r in self._rows_among(
                "SELECT id FROM chunks WHERE {among} AND dense", "article_id", ids, conn)]
            self._count_dense(conn, ids, -1)
            self._unindex(conn, ids)
            self._execute_among(conn, "DELETE FROM chunks WHERE {among}", "article_id", ids)
            self._execute_among(conn, "DELETE FROM articles WHERE {among}", "id", ids)
            self._put_pending(conn, stale)
        return stale

    def _count_dense(self, conn: Any, article_ids: Sequence[str] | None, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) the vectors of these articles (None: all) in the
        counts per outlet ('' when unknown, as Chroma's metadata has it) and per day (0 undated)."""
        parts = [("", [])] if article_ids is None else [
            (f"AND {condition}", params)
            for condition, params in self._among("c.article_id", article_ids)]
        for among, params in parts:
            for table, key, value in (("dense_by_outlet", "outlet", "coalesce(a.outlet, '')"),
                                      ("dense_by_day", "day", self.DAY)):
                conn.execute(
                    f"INSERT INTO {table}({key}, n) SELECT {value}, {self.MARK} * count(*) "
                    f"FROM chunks c JOIN articles a ON a.id = c.article_id WHERE c.dense {among} "
                    f"GROUP BY 1 ON CONFLICT ({key}) DO UPDATE SET n = {table}.n + excluded.n",
                    [sign, *params],
                )
                conn.execute(f"DELETE FROM {table} WHERE n = 0")

    def _dense_ids(self, conn: Any, article_id: str) -> list[str]:
        rows = conn.execute(f"SELECT id FROM chunks WHERE article_id = {self.MARK} AND dense",
                            (article_id,))
        return [r[0] for r in rows]

    def _put_mentions(self, conn: Any, article_id: str, mentions: list[Mention]) -> None:
        data = [m.model_dump(mode="json", exclude_defaults=True) for m in mentions]
        self._upsert(conn, "mentions", {"article_id": article_id, "version": TIMEX_VERSION,
                                        "data": json.dumps(data)}, "article_id")

    # --- row mapping -------------------------------------------------------------------------

    def _article_from_row(self, row: tuple[Any, ...]) -> Article:
        return Article(id=row[0], title=row[1], outlet=row[2], published=self._stored_date(row[3]),
                       url=row[4], authors=self._stored_json(row[5]), text=row[6], source=row[7])

    def _chunk_from_row(self, row: tuple[Any, ...]) -> IndexedChunk:
        return IndexedChunk(id=row[0], article_id=row[1], index=row[2],
                            sentences=[tuple(s) for s in self._stored_json(row[3])],
                            embed_text=row[4])
