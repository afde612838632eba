"""The index in one data directory: ``open_store(config) -> Store``.

A ``Store`` composes three parts: the catalog (``index.catalog``, the source of truth), the chunk
vectors (``index.vectors``, Chroma) and the keyword index (``index.keywords``, BM25 derived from
the catalog).  It owns the write protocol, which leaves no article half-indexed even when the
process is killed:

1. the new chunks' vectors are added under ids that include the content hash;
2. one catalog transaction replaces the articles' rows and chunk rows (the commit point);
3. the vectors of the articles' previous versions are deleted.

A kill between 1 and 2 leaves vectors no catalog row points to; ``reconcile()`` deletes them at
the start of the next ingest, and queries ignore them meanwhile.  Steps 1-3 hold the data
directory's ``write.lock`` file, which ``reconcile()`` also takes, so one process's reconcile never
deletes the vectors another process has written but not yet committed.  The keyword index carries
the catalog's generation, so a stale one is rebuilt when next asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from filelock import FileLock, Timeout

from index.catalog import Catalog, IndexedChunk, PreparedArticle
from index.config import IndexConfig, index_config
from index.dates import day_number, day_of
from index.errors import StoreError
from index.keywords import (
    BM25_PARAMS,
    Bm25Level,
    KeywordIndex,
    KeywordSearch,
    load_or_build,
    tokenize,
)
from index.sqlite_catalog import SqliteCatalog
from index.timex import Mention, find_mentions
from index.vectors import ChromaVectors

__all__ = [  # the part modules' names stay importable from here
    "BM25_PARAMS",
    "Bm25Level",
    "IndexedChunk",
    "KeywordIndex",
    "PreparedArticle",
    "Store",
    "day_number",
    "day_of",
    "open_store",
    "tokenize",
]


class Store:
    """Open index in one data directory; safe to share between threads and processes.

    Reads of the catalog (``count_articles``, ``content_hashes``, ``ids_from_source``,
    ``get_article``, ``list_articles``, ``chunks``, ``all_chunks``) are the catalog's own methods.
    Raises StoreError when the index cannot be opened or was built with another embedding model.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        catalog: Catalog | None = None,
        vectors: ChromaVectors | None = None,
        write_lock: Any = None,
        keywords: Callable[[Catalog], KeywordSearch] | None = None,
    ) -> None:
        self.config: IndexConfig = index_config(config)
        self.catalog: Catalog = catalog or SqliteCatalog(self.config)
        self.vectors = vectors or ChromaVectors(self.config)
        self.count_articles = self.catalog.count_articles
        self.content_hashes = self.catalog.content_hashes
        self.ids_from_source = self.catalog.ids_from_source
        self.get_article = self.catalog.get_article
        self.list_articles = self.catalog.list_articles
        self.chunks = self.catalog.chunks
        self.all_chunks = self.catalog.all_chunks
        self._check_embedding()
        self._lock = threading.Lock()
        self._keywords: KeywordIndex | None = None
        self._write_lock = write_lock or FileLock(self.config.data_dir / "write.lock")
        self._load_keywords = keywords  # server mode: search in the catalog's database

    def _check_embedding(self) -> None:
        built_with = self.catalog.embedding
        if built_with and built_with != self.config.embedding and self.count_articles():
            raise StoreError(
                f"the index in {self.config.data_dir} was built with embedding {built_with!r}, "
                f"not {self.config.embedding!r}",
                hint=f"keep using this index with NEWSDESK_EMBEDDING={built_with}, or re-embed "
                f"its articles with {self.config.embedding!r} into a new folder: `newsdesk "
                "ingest --data-dir NEW_FOLDER YOUR_FILES` (vectors of different models cannot "
                "be mixed)",
            )

    @property
    def generation(self) -> int:
        """Counter bumped by every write; derived indexes compare against it."""
        return self.catalog.generation

    @property
    def collection(self) -> Any:
        """The Chroma collection of chunk vectors (embedded client, or a server if configured)."""
        return self.vectors.collection

    def stats(self) -> dict[str, Any]:
        """Counts and ranges describing what is indexed, and where."""
        return {
            "data_dir": str(self.config.data_dir),
            **self.catalog.stats(),
            "embedding": self.config.embedding,
            "chroma": self.vectors.location,
        }

    def mentions(self, article_id: str) -> list[Mention]:
        """The article's resolved temporal expressions (computed once, then kept in the catalog).
        Raises ArticleNotFound."""
        found = self.catalog.mentions(article_id)
        if found is None:
            article = self.catalog.get_article(article_id)
            found = find_mentions(article.text, article.published)
            self.catalog.keep_mentions(article_id, found)
        return found

    def keyword_index(self) -> KeywordIndex:
        """The BM25 index over all chunks and articles, rebuilt first if the catalog has changed."""
        with self._lock:
            if self._keywords is None or self._keywords.generation != self.catalog.generation:
                if self._load_keywords is not None:  # server mode
                    self._keywords = cast(KeywordIndex, self._load_keywords(self.catalog))
                else:
                    self._keywords = load_or_build(self.catalog, self.config.bm25_path)
            return self._keywords

    @contextmanager
    def writing(self, timeout: float = -1) -> Iterator[None]:
        """Hold the data directory's write lock (shared by every process using the folder);
        raises filelock.Timeout after ``timeout`` seconds (negative: wait forever)."""
        with self._write_lock.acquire(timeout=timeout):
            yield

    def write(self, batch: Sequence[PreparedArticle]) -> None:
        """Add or replace these articles atomically (each is either fully indexed or absent)."""
        if not batch:
            return
        with self.writing():
            self.vectors.add(batch)
            stale = self.catalog.replace(batch)
            self.vectors.delete(stale)

    def remove(self, article_ids: Sequence[str]) -> list[str]:
        """Remove articles and all their chunks; return the ids that were present."""
        with self.writing():
            present = list(self.catalog.content_hashes(article_ids))
            if not present:
                return []
            stale = self.catalog.delete(present)
            self.vectors.delete(stale)
            return present

    def reconcile(self, timeout: float = 60) -> int:
        """Delete vectors no catalog row points to (left by an interrupted run); return count.

        Waits up to ``timeout`` seconds for another process's write batch to commit; if it is
        still writing then, nothing is deleted this time (0).
        """
        try:
            with self.writing(timeout):
                known = self.catalog.dense_chunk_ids()
                stray = [i for i in self.vectors.ids() if i not in known]
                self.vectors.delete(stray)
        except Timeout:
            return 0
        return len(stray)

    def close(self) -> None:
        """Release the catalog connection."""
        self.catalog.close()


_STORES: dict[tuple[str, str | None, int, str, str | None], Store] = {}
_STORES_LOCK = threading.Lock()


def open_store(config: Any = None) -> Store:
    """The store for this ``IndexConfig`` (or settings holding one); one per data directory and
    collection per process."""
    config = index_config(config)
    key = (
        str(config.data_dir.resolve()),
        config.chroma_host,
        config.chroma_port,
        config.collection,
        config.catalog_url.get_secret_value() if config.catalog_url else None,
    )
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None or store.config.embedding != config.embedding:
            store = _STORES[key] = server_store(config) if config.catalog_url else Store(config)
        return store


def server_store(config: IndexConfig) -> Store:
    """Server mode: the catalog, keyword search and writers' lock in PostgreSQL
    (``index.pg_catalog``), the vectors on a Chroma server; nothing in a local folder."""
    from index.pg_catalog import PgCatalog
    from index.pg_keywords import PgKeywords

    catalog = PgCatalog(config)
    return Store(config, catalog=catalog, write_lock=catalog.write_lock, keywords=PgKeywords.load)
