"""The catalog: the source of truth for what is indexed.

It holds every article (text included), every chunk with its sentence offsets and whether it has
a vector, the number of vectors per outlet and per publication day, each article's resolved
temporal expressions, the keyword index over chunks and articles (written with them, in one
transaction), a journal of vector ids a write may leave behind, and a generation number that
every write bumps, so other processes can tell when they are stale.

``Catalog`` is the interface a backend implements (``index.sqlite_catalog.SqliteCatalog`` keeps
it in one SQLite file, ``index.pg_catalog.PgCatalog`` in PostgreSQL; both build on the statements
they share in ``index.sql_catalog``); ``PreparedArticle`` is what a write is given and
``IndexedChunk`` what chunk reads return.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from index.keywords import KeywordFilter
from index.models import Article, Chunk
from index.timex import Mention


@dataclass
class IndexedChunk:
    """A chunk as the catalog holds it, with what a citation needs."""

    id: str
    article_id: str
    index: int
    sentences: list[tuple[int, int]]
    embed_text: str


@dataclass
class PreparedArticle:
    """An article ready to be written: its chunks and the vectors of the leading (dense) ones."""

    article: Article
    content_hash: str
    chunks: list[Chunk]
    vectors: list[list[float]]
    mentions: list[Mention] = field(default_factory=list)

    def chunk_ids(self) -> list[str]:
        """Each chunk's id, ``ARTICLE#CONTENT_HASH#INDEX``: a new version never reuses an old id,
        so its vectors can be added before the catalog switches to them."""
        return [f"{self.article.id}#{self.content_hash}#{c.index}" for c in self.chunks]

    def embedded(self) -> list[tuple[str, Chunk, list[float]]]:
        """(chunk id, chunk, vector) of the leading chunks that have a vector."""
        return list(zip(self.chunk_ids(), self.chunks, self.vectors, strict=False))


class KeywordLevel(Protocol):
    """Keyword search over one kind of document (chunks, or whole articles)."""

    def search(
        self, query: str, k: int, where: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (id, score > 0) for the query among the documents ``where`` admits."""


class KeywordSearch(Protocol):
    """Keyword search over chunks (ids 'ARTICLE#HASH#N') and over articles (article ids)."""

    @property
    def chunks(self) -> KeywordLevel:
        """Search over every chunk (vector or not)."""

    @property
    def articles(self) -> KeywordLevel:
        """Search over every article's title and text."""


class Catalog(Protocol):
    """What the index keeps about articles and chunks, and the commit point of every write."""

    @property
    def generation(self) -> int:
        """Counter bumped by every write (``replace``, ``delete``); derived indexes compare it."""

    @property
    def embedding(self) -> str | None:
        """The embedding model recorded by the last write; None before the first."""

    def snapshot(self) -> AbstractContextManager[None]:
        """A consistent view: no write through this catalog commits while it is held."""

    def count_articles(self) -> int:
        """Number of articles indexed."""

    def content_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """Stored content hash of each given article id that is indexed."""

    def ids_from_source(self, source: str) -> list[str]:
        """Ids of the articles last read from this file."""

    def get_article(self, article_id: str) -> Article:
        """The full article, text included. Raises ArticleNotFound."""

    def list_articles(
        self,
        *,
        offset: int = 0,
        limit: int | None = None,
        outlet: str | None = None,
        search: str | None = None,
    ) -> list[Article]:
        """Articles, newest first (undated last, then by id), with text ''; filter by outlet or
        by a substring of the title."""

    def stats(self) -> dict[str, Any]:
        """Counts: articles, chunks, dense_chunks, undated_articles; first_published and
        last_published (ISO dates or None); outlets (name or '(unknown)' → articles)."""

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, IndexedChunk]:
        """The given chunks by id; ids not in the catalog are left out."""

    def all_chunks(self) -> list[IndexedChunk]:
        """Every chunk, ordered by article id, then position."""

    def dense_chunk_ids(self) -> set[str]:
        """Ids of the chunks that have a vector."""

    def dense_counts(self, within: KeywordFilter) -> tuple[int, int, int]:
        """How many chunks have a vector: all, those of ``within``'s outlets, and those
        published within its days (each "all" when ``within`` sets no such bound); read from
        counts per outlet and per day that ``replace`` and ``delete`` keep in their
        transactions, so the cost does not grow with the archive."""

    @property
    def keywords(self) -> KeywordSearch:
        """Keyword search over chunks and articles as of the last commit, maintained by
        ``replace`` and ``delete`` in their own transactions."""

    def published_days(self, article_ids: Iterable[str]) -> dict[str, int]:
        """Publication day (YYYYMMDD, 0 when unknown) of each given article that is indexed."""

    def mentions(self, article_id: str) -> list[Mention] | None:
        """The article's stored temporal expressions, None when not stored for this
        ``TIMEX_VERSION``."""

    def keep_mentions(self, article_id: str, mentions: list[Mention]) -> None:
        """Store derived mentions of an indexed article, without bumping the generation."""

    def pending_vectors(self) -> list[str]:
        """The write journal: vector ids that may exist in the vector store without a committed
        chunk row (about to be written, or stale and about to be deleted)."""

    def intend(self, vector_ids: Sequence[str]) -> None:
        """Journal these vector ids, committed, before a write adds their vectors."""

    def settle(self, vector_ids: Sequence[str]) -> None:
        """Drop these ids from the journal once their vectors are deleted (or committed)."""

    def touch(self) -> None:
        """Bump the generation with nothing else changed: the vectors have, so other
        processes read their view of them again."""

    def replace(self, batch: Sequence[PreparedArticle]) -> list[str]:
        """Add or replace these articles with all their chunks and mentions in one transaction;
        return the ids of the replaced versions' dense chunks, whose vectors are now stale.
        The same transaction settles the new dense ids and journals the stale ones."""

    def delete(self, article_ids: Sequence[str]) -> list[str]:
        """Delete these articles and their chunks in one transaction; return the ids of their
        dense chunks, whose vectors are now stale (journaled in the same transaction)."""

    def optimize(self) -> None:
        """Rewrite the catalog's storage so that each table's rows, and each term's postings,
        lie together (long reads from a cold disk), with the same content; readers go on
        meanwhile.  Raises StoreError, saying what to do, when it cannot."""

    def close(self) -> None:
        """Release the catalog's connection."""
