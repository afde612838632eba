"""The index in one data directory: ``open_store(config) -> Store``.

A ``Store`` composes two stores: the catalog (``index.catalog``, the source of truth, which also
keeps the keyword index of ``index.keywords`` in its own transactions) and the chunk vectors
(``index.vectors``, Chroma).  It owns the write protocol, which leaves no article half-indexed even when the
process is killed:

1. the new chunks' vectors are added under ids that include the content hash (to Chroma, and
   to the scan table of ``index.scan`` that filtered search reads);
2. one catalog transaction replaces the articles' rows and chunk rows (the commit point);
3. the vectors of the articles' previous versions are deleted.

Before step 1 the new vector ids are journaled in the catalog (``Catalog.intend``); step 2
settles them and journals the stale ones in the same transaction, and step 3 settles those once
deleted.  So whatever a kill interrupts, the vectors no catalog row points to are listed in the
journal, and ``reconcile()`` (run by every ingest and remove) deletes exactly those: its cost
follows the interrupted batch, not the archive.  Queries skip such vectors meanwhile, without
losing a place in their top-k, and delete the ones they meet when no write is in flight.  Steps
1-3 hold the data directory's ``write.lock`` file, which ``reconcile()`` also takes, so one
process's reconcile never deletes the vectors another process has written but not yet committed.

Several processes may share the folder.  The catalog (SQLite, WAL) shows every process each
committed batch; embedded Chroma does not, so ``search_vectors`` reopens this process's view of
it when the catalog generation shows that another process has committed, and when Chroma
reports the view out of date mid-query.  The keyword index lives in the catalog, written in the
commit point's transaction, so every process sees it exactly as committed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from filelock import FileLock, Timeout

from index.catalog import Catalog, IndexedChunk, KeywordSearch, PreparedArticle
from index.config import IndexConfig, index_config
from index.dates import day_number, day_of
from index.errors import StoreError
from index.keywords import BM25_PARAMS, KeywordFilter, KeywordIndex, tokenize
from index.scan import ScanTable, rows_of
from index.sqlite_catalog import SqliteCatalog
from index.timex import Mention, find_mentions
from index.vectors import ChromaVectors, admits, chroma_error, where_clause

__all__ = [  # the part modules' names stay importable from here
    "BM25_PARAMS",
    "IndexedChunk",
    "KeywordFilter",
    "KeywordIndex",
    "PreparedArticle",
    "Store",
    "day_number",
    "day_of",
    "open_store",
    "tokenize",
]

POSTFILTER_WIDTH = 3
"""The fewest times ``n`` nearest vectors a filtered dense search checks before it asks Chroma
for a ``where`` query (``Store.search_vectors``)."""

POSTFILTER_MAX_WIDTH = 15
"""The most: checking 15 * n nearest vectors still costs a fraction of a ``where`` that admits a
tenth of an archive or more."""

POSTFILTER_MARGIN = 1.5
"""The width is chosen so the nearest vectors checked are expected to hold this many times the
``n`` admitted ones a search needs (the filter's estimated share times the width)."""

POSTFILTER_SHARE = POSTFILTER_MARGIN / POSTFILTER_MAX_WIDTH
"""The least share of the vectors a filter must be estimated to admit for dense search to check
the nearest vectors first (0.1).  Below it the check would mostly fail and the search would pay
for it and for Chroma's ``where`` (cheap when it admits little); above it the check mostly
succeeds and spares a ``where`` whose cost grows with what it admits (benchmarks/RESULTS.md,
"Dense filter path chosen by selectivity" and "... a width by share")."""

EXACT_MAX = 1500
"""Without a complete scan table (``index.scan``), the most vectors a narrower filter may be
estimated to admit for dense search to read them from Chroma and score them exactly
(``ChromaVectors.nearest_exactly``) instead of asking Chroma for a ``where`` query, whose walk
of the HNSW graph among few admitted vectors costs the more the fewer they are (at 396k
vectors: 85-143 ms among an outlet's 900-1,100, against 33-47 ms to read and score them; the
two cross near 1,500; benchmarks/RESULTS.md, "One outlet at scale").  With the scan table,
every filter below ``postfilter_share`` or admitting at most ``SCAN_ROWS`` is scored exactly
from it.  Embedded Chroma only: a server would send every vector over HTTP."""

SCAN_ROWS = 50_000
"""With a complete scan table, the most vectors a filter may be estimated to admit and still be
scored exactly from it when it admits a tenth of the archive or more (below a tenth it always
is): about 14 ms at 0.28 µs a row.  Checking the nearest vectors first cost 74-135 ms for
outlets just over a tenth of the 100k-article archive (40k vectors), but 15-40 ms for most
as_of filters, which a scan of 80k-150k rows did not beat (benchmarks/RESULTS.md, "One outlet at
scale, scored exactly")."""

VECTOR_BYTES = 2030
"""Resident memory one vector takes in a process that searches embedded Chroma, whose HNSW index
(vectors and graph, 1,698 bytes a vector on disk, plus its id maps) is loaded whole into each
such process, or into the Chroma server: a process holding only Chroma grew 536.8 MiB from the
30k-article archive's 118,846 vectors to the 100k one's 396,157 (benchmarks/RESULTS.md, "Scale
at 100k articles").  What dominates ``newsdesk serve`` on a large archive."""


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
        self._view_lock = threading.Lock()
        self._opener: threading.Thread | None = None
        self._vectors_seen: int | None = None  # catalog generation the Chroma view reflects
        self._write_lock = write_lock or FileLock(self.config.data_dir / "write.lock")
        self.postfilter_share = POSTFILTER_SHARE  # benchmarks compare 0 (always) and 2 (never)
        self.exact_max = 0 if self.config.chroma_host else EXACT_MAX  # and 0 (never)
        # the vectors again, beside their outlets and days, for exact filtered search; a
        # Chroma server's vectors stay on the server (benchmarks set None to compare)
        self.scan: ScanTable | None = (
            None if self.config.chroma_host else ScanTable(self.config.data_dir / "scan"))
        self.scan_rows = SCAN_ROWS

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
        """Counts and ranges describing what is indexed, and where; ``vector_memory_mib``
        estimates the resident memory the vectors take in each process that searches them
        (``VECTOR_BYTES`` each), which ``dense_chunks_per_article`` sets."""
        counts = self.catalog.stats()
        return {
            "data_dir": str(self.config.data_dir),
            **counts,
            "vector_memory_mib": round(counts["dense_chunks"] * VECTOR_BYTES / 2**20, 1),
            "embedding": self.config.embedding,
            "chroma": self.vectors.location,
            "scan_table": self._scan_state(),
        }

    def _scan_state(self) -> str:
        """What ``stats`` says of the scan table."""
        if self.scan is None:
            return "none (the vectors are on a Chroma server; filters go to it)"
        if not self.scan.complete:
            return "not yet built: the next ingest reads the vectors into it"
        return f"complete, {self.scan.rows} rows"

    def mentions(self, article_id: str) -> list[Mention]:
        """The article's resolved temporal expressions (computed once, then kept in the catalog).
        Raises ArticleNotFound."""
        found = self.catalog.mentions(article_id)
        if found is None:
            article = self.catalog.get_article(article_id)
            found = find_mentions(article.text, article.published)
            self.catalog.keep_mentions(article_id, found)
        return found

    def keyword_index(self) -> KeywordSearch:
        """BM25 over all chunks and articles, as of the catalog's last commit (kept by the
        catalog in each write's transaction, so never stale and never rebuilt)."""
        return self.catalog.keywords

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
            before = self.catalog.generation
            self.catalog.intend([chunk_id for p in batch for chunk_id, _, _ in p.embedded()])
            scanned = self._scan_kept()  # before the batch's vectors are in Chroma
            self.vectors.add(batch)
            if scanned:
                with self.scan.writing():  # type: ignore[union-attr]
                    self.scan.append(*rows_of(batch))  # type: ignore[union-attr]
            stale = self.catalog.replace(batch)
            self._own_commit(before)
            if stale:
                self._delete_vectors(stale)
                self.catalog.settle(stale)

    def remove(self, article_ids: Sequence[str]) -> list[str]:
        """Remove articles and all their chunks; return the ids that were present."""
        with self.writing():
            self._recover()
            present = list(self.catalog.content_hashes(article_ids))
            if not present:
                return []
            before = self.catalog.generation
            stale = self.catalog.delete(present)
            self._own_commit(before)
            if stale:
                self._delete_vectors(stale)
                self.catalog.settle(stale)
            return present

    def reconcile(self, timeout: float = 60, *, full: bool = False) -> int:
        """Delete the vectors no catalog row points to (left by an interrupted write); return
        how many.

        Looks at the journal of interrupted writes only (``Catalog.pending_vectors``), unless
        ``full``, which also compares every vector id in Chroma with the catalog (for an index
        whose strays predate the journal).  Waits up to ``timeout`` seconds for another
        process's write batch to commit; if it is still writing then, nothing is deleted (0).
        """
        try:
            with self.writing(timeout):
                return self._recover(full=full)
        except Timeout:
            return 0

    def _recover(self, *, full: bool = False) -> int:
        """Delete journaled (and with ``full``, all) uncommitted vectors; hold ``writing()``."""
        pending = self.catalog.pending_vectors()
        known = set(self.catalog.chunks(pending))
        stray = [i for i in pending if i not in known]
        if full:
            dense = self.catalog.dense_chunk_ids()
            stray += [i for i in self.vectors.ids() if i not in dense and i not in set(stray)]
        if stray:
            self._delete_vectors(stray)
        if pending:
            self.catalog.settle(pending)
        return len(stray)

    def _delete_vectors(self, ids: Sequence[str]) -> None:
        """Delete these chunks' vectors from Chroma and their rows from the scan table."""
        self.vectors.delete(ids)
        if self.scan is not None and self.scan.rows:
            self.scan.delete(ids)

    def _scan_kept(self) -> bool:
        """Whether the scan table holds every vector (holding ``writing()``): an empty index
        starts it complete; an index built before it existed is read into it once, here."""
        if self.scan is None:
            return False
        if not self.scan.complete:
            with self.scan.writing():
                if not self.catalog.dense_counts(KeywordFilter())[0] and not self.scan.rows:
                    self.scan.start_complete()
                else:
                    self.scan.fill(self.vectors)
        return True

    def prepare_scan(self) -> bool:
        """Bring the scan table up to date now (reading an older index's vectors into it, a
        minute or so per million) rather than in the next write; False when there is none
        (the vectors are on a Chroma server)."""
        with self.writing():
            return self._scan_kept()

    def scan_ready(self) -> bool:
        """Whether filtered dense search may use the scan table (it holds every vector)."""
        return self.scan is not None and self.scan.complete

    def _own_commit(self, before: int) -> None:
        """After this process committed a batch (holding ``writing()``): its Chroma view, if
        it was current at generation ``before``, has the batch too."""
        with self._view_lock:
            if self._vectors_seen == before:
                self._vectors_seen = self.catalog.generation

    def open_vectors_in_background(self) -> None:
        """Start opening the vector collection on another thread, unless it is open or opening.

        A new process then loads Chroma (about half a second of imports and index reading)
        while it embeds the question on the other core.  A failure there is left to the next
        use, which opens the collection again and reports it.
        """
        with self._view_lock:
            if self.vectors.is_open or (self._opener is not None and self._opener.is_alive()):
                return
            self._opener = threading.Thread(
                target=self._open_vectors_quietly, name="newsdesk-open-vectors", daemon=True
            )
            self._opener.start()

    def _open_vectors_quietly(self) -> None:
        try:
            self._refresh_vectors()
            self.vectors.collection  # noqa: B018 - opens it
        except Exception:  # noqa: BLE001, S110 - the next use opens it again and says why
            pass

    def _refresh_vectors(self, *, force: bool = False) -> None:
        """Reopen this process's Chroma view if another process has committed since (or if
        ``force``); the generation is read first, so the view is at least that new."""
        generation = self.catalog.generation
        with self._view_lock:
            if force or generation != self._vectors_seen:
                if self._vectors_seen is not None or force:
                    self.vectors.reopen()
                self._vectors_seen = generation

    def search_vectors(
        self, vector: list[float], n: int, *, within: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` nearest committed chunks to ``vector`` among those ``within`` admits
        (outlets, publication days), as (chunk id, cosine similarity), best first.

        A filter is applied one of three ways, chosen by the share of vectors it admits, which
        the catalog estimates from its counts per outlet and per day (``dense_counts``; outlets
        and days taken as independent):

        - a wide filter (at least ``postfilter_share``; an ``as_of`` over an archive admits
          nearly everything) is checked on the metadata of the ``POSTFILTER_WIDTH * n``
          nearest vectors, as Chroma's ``where`` costs grow with the vectors it admits; if
          fewer than ``n`` pass, the ``where`` query runs after all;
        - a narrower one (an outlet, a short date range), or any estimated to admit at most
          ``scan_rows`` vectors, is scored exactly from the scan table (``index.scan``), when
          it holds every vector;
        - without one (vectors on a Chroma server, or an older index not yet written to), a
          filter estimated to admit at most ``exact_max`` vectors has them all read from
          Chroma and scored exactly, and any other goes straight to a ``where`` query.

        Either way the answer is the ``n`` nearest admitted chunks; the estimate only decides
        the cost.  Sees every batch any process has committed (see the module notes).  Vectors
        the catalog does not list are skipped and the search widened, so they take no place in
        the ``n``; when no write is in flight they are deleted.  Raises StoreError if Chroma
        keeps failing after its view is reopened.
        """
        ChromaError = chroma_error()

        self._refresh_vectors()
        where = where_clause(within)
        scanned = self.scan_ready()
        width = self._postfilter_width(within, scanned) if within is not None and where else None
        if where and width == 0 and within is not None and scanned:
            return self._scan(vector, n, within)
        if where and width == 0:  # few enough to score every one of them exactly
            try:
                found = self.vectors.nearest_exactly(vector, where)
            except (ChromaError, KeyError):
                found = None  # an old view: the ``where`` path below reopens and retries
            if found is not None:
                known = self.catalog.chunks([c for c, _ in found[:n]])
                if len(known) < min(n, len(found)):  # strays among the first n
                    known = self.catalog.chunks([c for c, _ in found])
                return [(c, score) for c, score in found if c in known][:n]
        if within is not None and width:
            try:
                found = self.vectors.query(
                    vector, width * n, admit=lambda meta: admits(within, meta)
                )
            except (ChromaError, KeyError):
                found = []  # an old view: the ``where`` path below reopens and retries
            known = self.catalog.chunks([c for c, _ in found[:n]])
            if len(known) < n:  # strays among the first n: look further down
                known = self.catalog.chunks([c for c, _ in found])
            hits = [(c, score) for c, score in found if c in known]
            if len(hits) >= n:
                return hits[:n]
        wanted, failures, hits = n, 0, []
        for _ in range(8):
            try:
                found = self.vectors.query(vector, wanted, where=where)
            except (ChromaError, KeyError) as exc:  # an old view of the folder: read it again
                failures += 1
                if failures > 3:
                    raise StoreError(
                        f"the vector store in {self.vectors.location} keeps failing: {exc}",
                        hint="retry; if it persists, restart the process",
                    ) from exc
                self._refresh_vectors(force=True)
                continue
            known = self.catalog.chunks([c for c, _ in found])
            hits = [(c, score) for c, score in found if c in known]
            strays = [c for c, _ in found if c not in known]
            if strays:
                self._drop_strays(strays)
            if len(hits) >= n or len(found) < wanted:
                break
            wanted += len(strays)
        return hits[:n]

    def _scan(self, vector: list[float], n: int, within: KeywordFilter) -> list[tuple[str, float]]:
        """The ``n`` nearest committed chunks ``within`` admits, scored exactly from the scan
        table; rows whose chunk the catalog does not list are skipped (and their vectors
        dropped when no write is in flight), the search widened past them."""
        wanted = n
        while True:
            found = self.scan.search(  # type: ignore[union-attr]
                vector, wanted, outlets=within.outlets, first_day=within.first_day,
                last_day=within.last_day)
            known = self.catalog.chunks([c for c, _ in found])
            hits = [(c, score) for c, score in found if c in known]
            if len(hits) >= n or len(found) < wanted:
                if len(hits) < len(found):
                    self._drop_scan_strays([c for c, _ in found if c not in known])
                return hits[:n]
            wanted *= 4

    def _drop_scan_strays(self, ids: list[str]) -> None:
        """Mark dead the scan table's rows of chunks the catalog does not list, unless a write
        is in flight (they may be its uncommitted rows).  Chroma is left alone: its strays are
        its own paths' and ``reconcile``'s to delete, and reloading its view here would put
        an index load on a query."""
        try:
            with self.writing(timeout=0):
                known = self.catalog.chunks(ids)
                self.scan.delete([i for i in ids if i not in known])  # type: ignore[union-attr]
        except Timeout:
            return

    def _postfilter_width(self, within: KeywordFilter, scanned: bool) -> int | None:
        """How many times ``n`` nearest vectors to check against ``within`` first; 0 to score
        every admitted vector exactly; None to go straight to Chroma's ``where``.  From the
        catalog's counts per outlet and per day (taken as independent): with a complete scan
        table (``scanned``), a filter estimated to admit less than ``postfilter_share`` of the vectors, or at
        most ``scan_rows`` of them, is scored exactly from it; otherwise one admitting at least
        ``postfilter_share`` is checked on enough of the nearest for ``POSTFILTER_MARGIN``
        times ``n`` to pass, and below that, one estimated to admit at most ``exact_max``
        vectors is read from Chroma and scored exactly."""
        total, of_outlets, of_days = self.catalog.dense_counts(within)
        if not total:
            return None
        share = of_outlets * of_days / (total * total)
        if scanned and (share < self.postfilter_share or share * total <= self.scan_rows):
            return 0
        if share < self.postfilter_share:
            return 0 if share * total <= self.exact_max else None
        wanted = math.ceil(POSTFILTER_MARGIN / share) if share else POSTFILTER_MAX_WIDTH
        return min(POSTFILTER_MAX_WIDTH, max(POSTFILTER_WIDTH, wanted))

    def _drop_strays(self, ids: list[str]) -> None:
        """Delete vectors a query met that the catalog does not list, unless a write is in
        flight (they may be its uncommitted vectors); then read Chroma afresh.  Best effort:
        a failure leaves them for the next ``reconcile`` (queries skip them meanwhile)."""
        ChromaError = chroma_error()

        try:
            with self.writing(timeout=0):
                known = self.catalog.chunks(ids)
                self._delete_vectors([i for i in ids if i not in known])
        except Timeout:
            return
        except (ChromaError, KeyError):
            pass
        self._refresh_vectors(force=True)

    def close(self) -> None:
        """Release the catalog connection (and the scan table's)."""
        self.catalog.close()
        if self.scan is not None:
            self.scan.close()


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

    catalog = PgCatalog(config)
    return Store(config, catalog=catalog, write_lock=catalog.write_lock)
