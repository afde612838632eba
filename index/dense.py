"""Dense search of one data folder, by the cheapest exact-enough path: ``DenseSearch(store)``.

A ``Store`` holds its vectors twice: in Chroma (an HNSW graph, loaded whole into each process
that queries it) and, embedded, in the scan table (``index.scan``: the vectors in row order
beside their outlets and days, read through the page cache).  ``DenseSearch.nearest`` chooses
per query, from the share of the vectors the filter is estimated to admit (the catalog's
counts per outlet and per day, ``Catalog.dense_counts``, taken as independent):

- **the scan table**, scored exactly, when it holds every vector and
  - the filter admits less than ``postfilter_share`` of them (one outlet, a short date range),
    or at most ``scan_rows`` (a small archive, unfiltered or not), or fewer than
    ``SCAN_PER_NEAREST`` times the nearest vectors it would be checked on;
  - or Chroma's graph is not loaded in this process yet.  Loading it costs seconds per
    hundred thousand vectors (3 s at 396k, warm page cache), once per process and again after
    another process commits, while a scan of every row costs tens of milliseconds.  A process
    that searches more than ``WARM_AFTER`` times meanwhile (``serve``, an evaluation) loads it
    on another thread and turns to it once loaded; a one-shot ``ask`` never loads it;
- **the nearest vectors first**: a wide filter (an ``as_of`` admits nearly everything) is
  checked on the ``POSTFILTER_WIDTH``-``POSTFILTER_MAX_WIDTH`` times ``n`` nearest, as
  Chroma's ``where`` costs grow with what it admits (their outlets and days read from the
  scan table when complete, else Chroma's metadata of them); if fewer than ``n`` pass,
  the admitted rows are scored from the scan table after all (without one, Chroma's
  ``where`` query runs: at 100k articles 0.4-0.5 s for an outlet of a tenth of the archive,
  and up to 2-3 s for an as_of);
- without a complete scan table (vectors on a Chroma server, or an older index not yet written
  to): a filter admitting at most ``exact_max`` vectors has them read from Chroma and scored
  exactly, and any other goes to Chroma's ``where``.

Rows whose vectors Chroma does not hold yet (left pending by a process whose graph was not
loaded, ``index.store``) are scored from the scan table beside every path that asks Chroma.

Every path gives the ``n`` nearest admitted chunks the catalog lists; the estimate only decides
the cost.  Rows and vectors the catalog does not list (left by an interrupted write) are
skipped and the search widened past them; when no write is in flight they are deleted.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from index.catalog import Catalog
from index.config import IndexConfig
from index.errors import StoreError
from index.keywords import KeywordFilter
from index.scan import ScanTable
from index.vectors import ChromaVectors, admits, chroma_error, where_clause


class Vectors(Protocol):
    """What dense search needs of its store (``index.store.Store``)."""

    config: IndexConfig
    catalog: Catalog
    vectors: ChromaVectors
    scan: ScanTable | None

    def scan_ready(self) -> bool: ...
    def catch_up(self, timeout: float = -1) -> int: ...
    def refresh_vectors(self, *, force: bool = False) -> None: ...
    def delete_vectors(self, ids: Sequence[str], *, later: bool = False) -> bool: ...
    def writing(self, timeout: float = -1) -> AbstractContextManager[None]: ...

POSTFILTER_WIDTH = 3
"""The fewest times ``n`` nearest vectors a filtered dense search checks before it asks Chroma
for a ``where`` query."""

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
"""Without a complete scan table, the most vectors a narrower filter may be estimated to admit
for dense search to read them from Chroma and score them exactly
(``ChromaVectors.nearest_exactly``) instead of asking Chroma for a ``where`` query, whose walk
of the HNSW graph among few admitted vectors costs the more the fewer they are (at 396k
vectors: 85-143 ms among an outlet's 900-1,100, against 33-47 ms to read and score them; the
two cross near 1,500; benchmarks/RESULTS.md, "One outlet at scale").  Embedded Chroma only: a
server would send every vector over HTTP."""

SCAN_ROWS = 50_000
"""With a complete scan table, the most vectors a search may be estimated to admit and still be
scored exactly from it once Chroma's graph is loaded, when it admits a tenth of the archive or
more (below a tenth it always is): about 14 ms at 0.28 µs a row.  Checking the nearest vectors
first cost 74-135 ms for outlets just over a tenth of the 100k-article archive (40k vectors),
but 15-40 ms for most as_of filters, which a scan of 80k-150k rows did not beat
(benchmarks/RESULTS.md, "One outlet at scale, scored exactly")."""

SCAN_PER_NEAREST = 70
"""Rows the scan table scores for the cost of checking one nearest vector Chroma returns
(about 22 µs with its outlet and day read from the scan table, against about 0.3 µs a gathered
row; measured at 200k articles, benchmarks/nearest_check.py): a wide filter is scanned when its
admitted rows cost less than the nearest vectors it would be checked on (``width * n`` of
them), e.g. an outlet just over a tenth of the archive (width 15: 1,500 vectors, 32 ms at 200k
articles) while it admits at most 105k vectors with ``n`` 100."""


WARM_AFTER = 1
"""Searches scored from the scan table because Chroma's graph was not loaded, after which the
next one starts loading it on another thread: a one-shot ``ask`` (one search) never loads
it."""


class DenseSearch:
    """The dense side of one ``Store``; its knobs are the choice's thresholds, which tests and
    benchmarks change to force a path."""

    def __init__(self, store: Vectors) -> None:
        self.store = store
        self.postfilter_share = POSTFILTER_SHARE  # benchmarks compare 0 (always) and 2 (never)
        self.exact_max = 0 if store.config.chroma_host else EXACT_MAX  # and 0 (never)
        self.scan_rows = SCAN_ROWS
        self.scan_per_nearest = SCAN_PER_NEAREST
        self.scan_while_cold = True  # benchmarks compare False (always load Chroma's graph)
        self.catch_up_behind = True  # tests turn it off to search with rows pending
        self.as_if_vectors: int | None = None  # choose as in an archive of this many vectors
        self._cold_scans = 0
        self._warmer: threading.Thread | None = None
        self._lock = threading.Lock()

    def nearest(
        self, vector: list[float], n: int, within: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` nearest committed chunks to ``vector`` that ``within`` admits, as (chunk
        id, cosine similarity), best first (see the module notes for the path taken).  Raises
        StoreError if Chroma keeps failing after its view is reopened."""
        store = self.store
        # read before the view is refreshed: a catch-up writes to Chroma before it records
        # none pending (``Store.catch_up``)
        pending = store.scan.pending if store.scan_ready() else None  # type: ignore[union-attr]
        store.refresh_vectors()
        if pending is not None and store.vectors.is_warm and self.catch_up_behind:
            self._in_background(self._catch_up_quietly)  # costs it no more than a write
        total, share = self._share(within)  # one estimate serves every choice below
        if self._scans(total, share, n, wide=bool(where_clause(within))):
            return self._scan(vector, n, within or KeywordFilter())
        if pending is None:
            return self._from_chroma(vector, n, within, total, share)
        # Chroma lacks the rows from ``pending`` on: they are scored beside what it finds
        beside = self._scan(vector, n, within or KeywordFilter(), since=pending)
        best: dict[str, float] = {}
        for chunk_id, score in sorted(self._from_chroma(vector, n, within, total, share) + beside,
                                      key=lambda hit: -hit[1]):
            best.setdefault(chunk_id, score)  # a fallback's scan finds the pending rows too
        return list(best.items())[:n]

    def _from_chroma(
        self, vector: list[float], n: int, within: KeywordFilter | None, total: int, share: float
    ) -> list[tuple[str, float]]:
        """The ``n`` nearest by Chroma's paths (the module notes)."""
        store = self.store
        where = where_clause(within)
        width = self._width(total, share) if within is not None and where else None
        if where and width == 0:  # few enough to score every one of them exactly
            found = self._read_exactly(vector, where)
            if found is not None:
                known = store.catalog.chunks([c for c, _ in found[:n]])
                if len(known) < min(n, len(found)):  # strays among the first n
                    known = store.catalog.chunks([c for c, _ in found])
                return [(c, score) for c, score in found if c in known][:n]
        if within is not None and width:
            hits = self._nearest_first(vector, n, within, width)
            if len(hits) >= n:
                return hits[:n]
            if store.scan_ready():  # its cost follows what it admits; a ``where``'s, the archive
                return self._scan(vector, n, within)
        return self._query(vector, n, where)

    # -- choosing ------------------------------------------------------------------------

    def _share(self, within: KeywordFilter | None) -> tuple[int, float]:
        """The vectors indexed (``as_if_vectors``, when set), and the share ``within`` is
        estimated to admit."""
        total, of_outlets, of_days = self.store.catalog.dense_counts(within or KeywordFilter())
        share = of_outlets * of_days / (total * total) if total else 0.0
        return ((self.as_if_vectors or total) if total else 0), share

    def cold(self) -> bool:
        """Whether searches are scored from the scan table because Chroma's graph is not
        loaded in this process (the table holds every vector)."""
        return (self.scan_while_cold and self.store.scan_ready()
                and not self.store.vectors.is_warm)

    def _scans(self, total: int, share: float, n: int, *, wide: bool) -> bool:
        """Whether this search is scored from the scan table: a narrow filter always; one
        whose admitted rows cost less to score than the nearest vectors it would otherwise be
        checked on; any while Chroma's graph is not loaded.  Counts the searches scanned only
        for that, and starts loading it after ``WARM_AFTER`` of them."""
        if not total or not self.store.scan_ready():
            return False
        limit = self.scan_rows  # without a filter, Chroma's own query costs a few ms
        if wide:
            limit = max(limit, self.scan_per_nearest * self._nearest_width(share) * n)
        if share < self.postfilter_share or share * total <= limit:
            return True
        if not self.cold():
            return False
        with self._lock:
            self._cold_scans += 1
            warm = self._cold_scans > WARM_AFTER
        if warm:
            self._in_background(self._warm_quietly)
        return True

    def _in_background(self, work: Any) -> None:
        """Run ``work`` on a thread of its own, unless the last one started is still running."""
        with self._lock:
            if self._warmer and self._warmer.is_alive():
                return
            self._warmer = threading.Thread(
                target=work, name="newsdesk-warm-vectors", daemon=True)
            self._warmer.start()

    def _warm_quietly(self) -> None:
        """Load Chroma's graph, then give it what is pending (``_catch_up_quietly``)."""
        try:
            self.store.vectors.warm()
        except Exception:  # noqa: BLE001 - searches keep scanning; the next one retries
            return
        self._catch_up_quietly()

    def _catch_up_quietly(self) -> None:
        """Give Chroma the vectors left pending and the deletions left journaled (if no other
        process is writing), which a process that has loaded its graph does at no more cost
        than a write (``Store.catch_up``)."""
        try:
            self.store.catch_up(timeout=0)
        except Exception:  # noqa: BLE001, S110 - searches score them from the scan table
            pass

    def warming(self) -> threading.Thread | None:
        """The thread loading Chroma's graph or catching it up, if one was started (tests and
        benchmarks join it)."""
        return self._warmer

    def _width(self, total: int, share: float) -> int | None:
        """How many times ``n`` nearest vectors to check against a filter admitting ``share``
        of ``total`` vectors first; 0 to read every admitted vector from Chroma and score it
        exactly; None to go straight to Chroma's ``where``."""
        if not total:
            return None
        if share < self.postfilter_share:
            return 0 if share * total <= self.exact_max else None
        return self._nearest_width(share)

    @staticmethod
    def _nearest_width(share: float) -> int:
        """How many times ``n`` nearest vectors to check for ``POSTFILTER_MARGIN`` times ``n``
        of them to be expected to pass a filter admitting ``share`` of the vectors."""
        wanted = math.ceil(POSTFILTER_MARGIN / share) if share else POSTFILTER_MAX_WIDTH
        return min(POSTFILTER_MAX_WIDTH, max(POSTFILTER_WIDTH, wanted))

    # -- the paths -----------------------------------------------------------------------

    def _scan(
        self, vector: list[float], n: int, within: KeywordFilter, since: int = 0
    ) -> list[tuple[str, float]]:
        """From the scan table (its rows ``since`` on); rows whose chunk the catalog does not
        list are skipped (and marked dead when no write is in flight), the search widened
        past them."""
        store, wanted = self.store, n
        while True:
            found = store.scan.search(  # type: ignore[union-attr]
                vector, wanted, outlets=within.outlets, first_day=within.first_day,
                last_day=within.last_day, since=since)
            known = store.catalog.chunks([c for c, _ in found])
            hits = [(c, score) for c, score in found if c in known]
            if len(hits) >= n or len(found) < wanted:
                if len(hits) < len(found):
                    self._drop_scan_strays([c for c, _ in found if c not in known])
                return hits[:n]
            wanted *= 4

    def _read_exactly(self, vector: list[float], where: dict[str, Any]) -> Any:
        """Every vector ``where`` admits, read from Chroma and scored; None on an old view
        (the ``where`` path reopens it and retries)."""
        try:
            return self.store.vectors.nearest_exactly(vector, where)
        except (chroma_error(), KeyError):
            return None

    def _nearest_first(
        self, vector: list[float], n: int, within: KeywordFilter, width: int
    ) -> list[tuple[str, float]]:
        """The admitted, catalogued chunks among the ``width * n`` nearest vectors, checked
        against the scan table's outlets and days when it is complete (Chroma returns the
        nearest far faster without their metadata), else against their metadata."""
        store = self.store
        facets = store.scan if store.scan_ready() else None
        try:
            if facets is not None:
                found = store.vectors.query(vector, width * n)
                kept = facets.admitted([c for c, _ in found], outlets=within.outlets,
                                       first_day=within.first_day, last_day=within.last_day)
                found = [(c, score) for c, score in found if c in kept]
            else:
                found = store.vectors.query(vector, width * n,
                                            admit=lambda meta: admits(within, meta))
        except (chroma_error(), KeyError):
            found = []  # an old view: the ``where`` path reopens and retries
        known = store.catalog.chunks([c for c, _ in found[:n]])
        if len(known) < n:  # strays among the first n: look further down
            known = store.catalog.chunks([c for c, _ in found])
        return [(c, score) for c, score in found if c in known]

    def _query(
        self, vector: list[float], n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        """Chroma's own (``where``) query, widened past strays, its view reopened when old."""
        store, ChromaError = self.store, chroma_error()
        wanted, failures, hits = n, 0, []
        for _ in range(8):
            try:
                found = store.vectors.query(vector, wanted, where=where)
            except (ChromaError, KeyError) as exc:  # an old view of the folder: read it again
                failures += 1
                if failures > 3:
                    raise StoreError(
                        f"the vector store in {store.vectors.location} keeps failing: {exc}",
                        hint="retry; if it persists, restart the process",
                    ) from exc
                store.refresh_vectors(force=True)
                continue
            known = store.catalog.chunks([c for c, _ in found])
            hits = [(c, score) for c, score in found if c in known]
            strays = [c for c, _ in found if c not in known]
            if strays:
                self._drop_strays(strays)
            if len(hits) >= n or len(found) < wanted:
                break
            wanted += len(strays)
        return hits[:n]

    # -- strays --------------------------------------------------------------------------

    def _drop_scan_strays(self, ids: list[str]) -> None:
        """Mark dead the scan table's rows of chunks the catalog does not list, unless a write
        is in flight (they may be its uncommitted rows).  Chroma is left alone: its strays are
        its own paths' and ``reconcile``'s to delete, and reloading its view here would put
        an index load on a query."""
        from filelock import Timeout

        store = self.store
        try:
            with store.writing(timeout=0):
                known = store.catalog.chunks(ids)
                store.scan.delete([i for i in ids if i not in known])  # type: ignore[union-attr]
        except Timeout:
            return

    def _drop_strays(self, ids: list[str]) -> None:
        """Delete vectors a query met that the catalog does not list, unless a write is in
        flight (they may be its uncommitted vectors); this process's view stays current.
        Best effort: a failure leaves them for the next ``reconcile`` or catch-up (queries
        skip them meanwhile), and has Chroma read afresh."""
        from filelock import Timeout

        store = self.store
        try:
            with store.writing(timeout=0):
                known = store.catalog.chunks(ids)
                store.delete_vectors([i for i in ids if i not in known])
        except Timeout:
            return
        except (chroma_error(), KeyError):
            store.refresh_vectors(force=True)
