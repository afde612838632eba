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
After step 3, still holding it, the scan table drops its dead rows once they are due
(``index.scan_compact``).

Chroma catches up.  Embedded Chroma loads its whole graph into a process before its first
write there: seconds per hundred thousand vectors, which a one-shot ``newsdesk ingest`` into a
large archive would pay for every batch of news.  So a process whose graph is not loaded, writing
into an archive of at least ``DEFER_FROM`` vectors, leaves step 1's Chroma part out: the batch
is committed with its vectors in the scan table only, as rows Chroma does not hold yet
(``ScanTable.pending``), and dense search scores those rows exactly beside what Chroma finds
(``index.dense``).  Such a process leaves step 3's Chroma part out too (an edited or removed
article's previous vectors): their ids stay journaled, and queries skip those vectors as any
the catalog does not list.  The first write that finds the graph loaded, or more than
``PENDING_MAX`` vectors pending, gives Chroma every pending row and the journaled deletions
first (``catch_up``), as does a long-running process that has loaded the graph for its searches
whenever it finds rows pending.  A kill during a catch-up leaves the rows pending and the
deletions journaled; giving them again is an upsert of the same ids, and a delete of the same.

Several processes may share the folder.  The catalog (SQLite, WAL) shows every process each
committed batch; embedded Chroma does not, so ``search_vectors`` reopens this process's view of
it when Chroma's own write log shows that another process has written to it
(``ChromaVectors.written``), and when Chroma reports the view out of date mid-query.  A batch
whose vectors were left pending writes nothing to Chroma: a long-running process keeps its
loaded graph across such commits (a ``watch`` beside a ``serve``) and finds their rows in the
scan table.  The keyword index lives in the catalog, written in the
commit point's transaction, so every process sees it exactly as committed.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from filelock import FileLock, Timeout

from index.catalog import Catalog, IndexedChunk, KeywordSearch, PreparedArticle
from index.config import IndexConfig, index_config
from index.dates import day_number, day_of
from index.dense import DenseSearch
from index.errors import StoreError
from index.keywords import BM25_PARAMS, KeywordFilter, KeywordIndex, tokenize
from index.pending import DEFER_FROM, PENDING_MAX, defers, give_pending
from index.scan import ScanTable, rows_of
from index.scan_compact import compact
from index.sqlite_catalog import SqliteCatalog, bytes_on_disk
from index.timex import Mention, find_mentions
from index.vectors import ChromaVectors

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
        self._vectors_seen: tuple[str, int] | None = None  # what the Chroma view reflects
        self._writes_here = 0  # threads of this process holding ``writing()``
        self._write_lock = write_lock or FileLock(self.config.data_dir / "write.lock")
        # the vectors again, beside their outlets and days, for exact filtered search; a
        # Chroma server's vectors stay on the server (benchmarks set None to compare)
        self.scan: ScanTable | None = (
            None if self.config.chroma_host else ScanTable(self.config.data_dir / "scan"))
        self.dense = DenseSearch(self)
        self.defer_from, self.pending_max = DEFER_FROM, PENDING_MAX  # tests lower them

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
        rows, pending = self.scan.rows, self.scan.pending
        waiting = "" if pending is None else (
            f"; the last {rows - pending} not yet in Chroma (searched here meanwhile; a running "
            "`serve` gives them to it, as does the first write that loads its graph)")
        journaled = len(self.catalog.pending_vectors())
        if journaled:
            waiting += (f"; {journaled} old vectors left in Chroma, no longer searched, to delete "
                        "at its next catch-up")
        return f"complete, {rows} rows ({self.scan.dead} dead){waiting}"

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
            with self._view_lock:
                before = self._vectors_mark()
                self._writes_here += 1
            try:
                yield
            finally:  # this process's own writes leave a view that was current still current
                with self._view_lock:
                    self._writes_here -= 1
                    if self._vectors_seen == before:
                        self._vectors_seen = self._vectors_mark()

    def write(self, batch: Sequence[PreparedArticle]) -> None:
        """Add or replace these articles atomically (each is either fully indexed or absent)."""
        if not batch:
            return
        with self.writing():
            scanned = self._scan_kept()  # before the batch's vectors are in Chroma
            rows = rows_of(batch)
            pending = scanned and defers(self, len(rows[0]))
            if not pending:
                self._catch_up()  # before the batch is journaled: it settles the journal
            self.catalog.intend([chunk_id for p in batch for chunk_id, _, _ in p.embedded()])
            if not pending:
                self.vectors.add(batch)
            if scanned:
                with self.scan.writing():  # type: ignore[union-attr]
                    self.scan.append(*rows, pending=pending)  # type: ignore[union-attr]
            stale = self.catalog.replace(batch)
            if stale and self.delete_vectors(stale, later=pending):
                self.catalog.settle(stale)
            if scanned:
                self._compact_scan()

    def catch_up(self, timeout: float = -1) -> int:
        """Give Chroma the vectors left pending, and the deletions left journaled (see the
        module notes); return how many vectors were given.
        Waits up to ``timeout`` seconds for another process's write (negative: for ever),
        then gives up (0)."""
        try:
            with self.writing(timeout):
                return self._catch_up()
        except Timeout:
            return 0

    def _catch_up(self) -> int:
        """``catch_up`` holding ``writing()``: the pending rows given, then the vectors whose
        deletion was left for Chroma deleted (``delete_vectors``)."""
        if self.scan is None:
            return 0
        given = 0
        if self.scan.pending is not None:
            given = give_pending(self.scan, self.catalog, self.vectors)
            self.catalog.touch()  # the vectors have changed: derived caches look again
            with self.scan.writing():
                self.scan.caught_up()
        self._recover(later=False)
        return given

    def remove(self, article_ids: Sequence[str]) -> list[str]:
        """Remove articles and all their chunks; return the ids that were present."""
        with self.writing():
            self._recover()
            present = list(self.catalog.content_hashes(article_ids))
            if not present:
                return []
            stale = self.catalog.delete(present)
            if stale and self.delete_vectors(stale, later=self._defers_deletes()):
                self.catalog.settle(stale)
            self._compact_scan()
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
                return self._recover(full=full, later=self._defers_deletes() and not full)
        except Timeout:
            return 0

    def _recover(self, *, full: bool = False, later: bool | None = None) -> int:
        """Delete journaled (and with ``full``, all) uncommitted vectors, or with ``later``
        (by default, as ``_defers_deletes``) leave Chroma's part journaled; hold
        ``writing()``."""
        pending = self.catalog.pending_vectors()
        if not pending and not full:
            return 0
        known = set(self.catalog.chunks(pending))
        stray = [i for i in pending if i not in known]
        if full:
            dense = self.catalog.dense_chunk_ids()
            stray += [i for i in self.vectors.ids() if i not in dense and i not in set(stray)]
        later = self._defers_deletes() if later is None else later
        if stray and not self.delete_vectors(stray, later=later):
            pending = [i for i in pending if i in known]  # the strays wait for Chroma
        if pending:
            self.catalog.settle(pending)
        return len(stray)

    def delete_vectors(self, ids: Sequence[str], *, later: bool = False) -> bool:
        """Delete these chunks' rows from the scan table, and their vectors from Chroma unless
        ``later``; whether Chroma was given the deletion.  A process whose Chroma graph is not
        loaded leaves it for the next catch-up (``_defers_deletes``): the ids stay journaled,
        and dense search skips such vectors meanwhile, as any the catalog does not list."""
        if self.scan is not None and self.scan.rows:
            self.scan.delete(ids)
        if later:
            return False
        self.vectors.delete(ids)
        return True

    def _defers_deletes(self) -> bool:
        """Whether this process leaves Chroma's deletions for later (holding ``writing()``):
        as it would a write's vectors (``index.pending.defers``), since Chroma loads its whole
        graph into a process before it deletes anything."""
        return self.scan_ready() and defers(self, 0)

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

    def _compact_scan(self) -> None:
        """Drop the scan table's dead rows if due, and what an interrupted compaction left
        (``index.scan_compact``; holding ``writing()``, once the batch has committed).  A
        failure (a full disk) leaves the table as it was, still complete, so it is a warning:
        the batch is in."""
        if self.scan is None or not self.scan.complete or self.scan.pending is not None:
            return  # rows pending: compacted after Chroma has caught up (it renumbers them)
        try:
            compact(self.scan)
        except StoreError as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=3)

    def prepare_scan(self) -> bool:
        """Bring the scan table up to date now (reading an older index's vectors into it, a
        minute or so per million; giving Chroma the vectors left pending; dropping its dead
        rows if due) rather than in the next write; False when there is none (the vectors are on a Chroma server).  Raises
        StoreError when its files cannot be written."""
        with self.writing():
            if not self._scan_kept():
                return False
            self._catch_up()  # compaction renumbers rows: none may be pending
            compact(self.scan)  # type: ignore[arg-type]
            return True

    def optimize(self) -> dict[str, Any]:
        """Bring every part up to date and lay it out for reading, holding the write lock:
        Chroma given any vectors left pending and the scan table's dead rows dropped
        (``prepare_scan``), then the catalog's storage rewritten (``Catalog.optimize``: an
        archive built batch by batch has each keyword term's postings spread among the
        articles' text).  Returns what it did: seconds, and the catalog file's bytes before
        and after (its write-ahead log included) when it is a file.  Raises StoreError,
        saying what to do, when it cannot."""
        started = time.perf_counter()
        scan = self.prepare_scan()
        with self.writing():
            path = self.config.catalog_path if self.config.catalog_url is None else None
            before = bytes_on_disk(path) if path is not None else None
            self.catalog.optimize()
        return {
            "seconds": round(time.perf_counter() - started, 1),
            "scan_table": "up to date" if scan else "none (vectors on a Chroma server)",
            "catalog": str(path) if path is not None else "PostgreSQL: vacuumed and analysed",
            "catalog_bytes_before": before,
            "catalog_bytes_after": bytes_on_disk(path) if path is not None else None,
        }

    def scan_ready(self) -> bool:
        """Whether filtered dense search may use the scan table (it holds every vector)."""
        return self.scan is not None and self.scan.complete

    def _vectors_mark(self) -> tuple[str, int]:
        """What a current view of the vectors reflects: Chroma's write log where it can be
        read, else the catalog's generation (every commit)."""
        written = self.vectors.written()
        return ("chroma", written) if written is not None else ("catalog", self.catalog.generation)

    def read_scan_ahead(self) -> bool:
        """Whether this process's next dense search will be scored from the scan table
        (``index.dense``: it holds every vector, and Chroma's graph is not loaded here); if
        so, its vectors start coming into memory now, on other threads, while the caller
        loads the model and embeds the question."""
        if not self.dense.cold():
            return False
        self.scan.prefetch()  # type: ignore[union-attr]
        return True

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
            self.refresh_vectors()
            self.vectors.collection  # noqa: B018 - opens it
        except Exception:  # noqa: BLE001, S110 - the next use opens it again and says why
            pass

    def refresh_vectors(self, *, force: bool = False) -> None:
        """Reopen this process's Chroma view if another process has written to Chroma since
        (or if ``force``); the mark is read first, so the view is at least that new."""
        mark = self._vectors_mark()
        with self._view_lock:
            if self._writes_here and not force:
                return  # no other process writes meanwhile: what moves the mark is ours
            if force or mark != self._vectors_seen:
                if self._vectors_seen is not None or force:
                    self.vectors.reopen()
                self._vectors_seen = mark

    def search_vectors(
        self, vector: list[float], n: int, *, within: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` nearest committed chunks to ``vector`` among those ``within`` admits
        (outlets, publication days), as (chunk id, cosine similarity), best first, from the
        scan table or Chroma, whichever the filter and this process's state make cheaper
        (``index.dense``).  Sees every batch any process has committed (see the module
        notes).  Raises StoreError if Chroma keeps failing after its view is reopened."""
        return self.dense.nearest(vector, n, within)

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
