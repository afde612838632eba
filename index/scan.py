"""Every vector beside its outlet and day, for exact search: ``ScanTable(folder)``.

Chroma answers a filtered query in two steps that both grow with the archive: SQL over its
metadata table finds the ids the filter admits, then its HNSW graph is walked with that list,
passing over the vectors it does not admit (at 396k vectors, one outlet of 2% cost 90-110 ms;
benchmarks/RESULTS.md, "One outlet at scale").  The scan table keeps a second copy of each
vector in the data folder, in row order, with each row's outlet code and day in an array
beside it.  A filter admitting a small share of the archive (one outlet, a short date range)
is then one mask over those arrays and one matrix product over the rows it admits: exact,
with no SQL and no graph walk, at a cost that follows what the filter admits.  It also
answers a process's first searches while Chroma's graph is not loaded (``index.dense``): one
pass over every row costs tens of milliseconds where loading the graph costs seconds.

Files in ``DATA_DIR/scan/``:

- ``vectors.f32``: the rows' unit vectors, float32, ``dim`` per row;
- ``facets.i32``: per row, the outlet's code and the publication day (YYYYMMDD, 0: undated);
- ``alive.u8``: per row, 1 until its chunk's vector is deleted;
- ``rows.sqlite3``: which chunk each row holds, the outlets' codes, the committed row count
  and the files' generation (``index.scan_rows``).  Rows past that count are the remains of an append a kill
  interrupted: the next append cuts them off, and readers never look at them.

Rows of chunks since replaced or removed are marked dead, and dropped when they have grown to
a share of the table by a rewrite into files of the next generation (``vectors.1.f32``, ...;
``index.scan_compact``).  A search looks its rows' chunks up under the generation it read
them from, and reads the table again if a rewrite has switched it meanwhile.

The catalog stays the source of truth: a row may outlive its chunk (a kill between the
catalog's commit and the row's deletion) or belong to a write that never committed, and
``Store`` checks the chunks of the rows it returns against the catalog, as it does Chroma's.
The table is written under the data folder's write lock, in ``Store.write`` beside Chroma's
upsert.  It is used only once it holds every vector (``complete``): it is created complete
on an empty index, and an index built before it existed is read into it from Chroma once
(``fill``), by the next write.
"""

from __future__ import annotations

import mmap
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

from index.dates import day_number
from index.errors import StoreError
from index.mapped import map_file, read_ahead
from index.scan_rows import ScanRows

BLOCK = 2048
"""Rows scored per matrix product (``ScanTable._scores``): 3 MB of a thread's buffer, reused."""

FILES = ("vectors.f32", "facets.i32", "alive.u8")
"""The table's files of generation 0; a rewrite's generation is named before the suffix."""


class ScanTable:
    """The vectors of one data folder in row order, with their outlets and days."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self.book = ScanRows(folder)
        self._view: tuple[int, int, Any, Any, Any] | None = None  # generation, rows, arrays
        self._maps: list[mmap.mmap] = []
        self._buffers = threading.local()
        self._warmers: list[threading.Thread] = []  # reading the current map's vectors in

    # -- reading -------------------------------------------------------------------------

    def state(self) -> dict[str, int]:
        """The committed state: ``rows``, ``dim``, ``complete``, ``generation`` (0 if absent)."""
        return {"rows": 0, "dim": 0, "complete": 0, "generation": 0, **self.book.states()}

    @property
    def rows(self) -> int:
        """Rows committed."""
        return self.book.state("rows")

    @property
    def dead(self) -> int:
        """Committed rows marked dead (their chunks were replaced or removed)."""
        import numpy as np

        for _ in range(3):  # a rewrite in another process may delete the files just read of
            state = self.state()
            if not state["rows"]:
                return 0
            try:
                alive = np.fromfile(self.path("alive.u8", state["generation"]), np.uint8,
                                    count=state["rows"])
            except FileNotFoundError:
                continue
            return state["rows"] - int(np.count_nonzero(alive))
        raise StoreError(f"the scan table in {self.folder} keeps changing under its reader",
                         hint="retry")

    @property
    def complete(self) -> bool:
        """Whether every vector of the index has its row (else the table must not be used)."""
        return bool(self.book.state("complete"))

    @property
    def pending(self) -> int | None:
        """The first row whose vector Chroma does not hold yet (every later row's neither);
        None when it holds them all."""
        return self.book.states().get("pending")

    def search(
        self,
        vector: Sequence[float],
        n: int,
        *,
        outlets: Sequence[str] | None = None,
        first_day: int | None = None,
        last_day: int | None = None,
        since: int = 0,
    ) -> list[tuple[str, float]]:
        """The ``n`` live rows nearest ``vector`` (cosine similarity) among those of these
        outlets and days (an undated row fails any day bound), as (chunk id, similarity),
        best first; only rows ``since`` on, if given (those ``pending``)."""
        while True:
            generation, rows, vectors, facets, alive = self._current()
            if rows <= since:
                return []
            ranked = [(since + r, score) for r, score in self._ranked(
                vectors[since:], facets[since:], alive[since:], vector, n, outlets, first_day,
                last_day, whole=not since)]
            found = self.book.where("row", [r for r, _ in ranked], generation)
            if found is not None:  # else a rewrite renumbered the rows meanwhile: read again
                names = dict(found)
                return [(names[r], score) for r, score in ranked if r in names]

    def _ranked(self, vectors: Any, facets: Any, alive: Any, vector: Sequence[float], n: int,
                outlets: Sequence[str] | None, first_day: int | None,
                last_day: int | None, *, whole: bool = True) -> list[tuple[int, float]]:
        """The ``n`` best rows the filter admits, as (row, similarity), best first."""
        import numpy as np

        rows = len(alive)
        admitted = np.flatnonzero(self._keep(facets, alive, outlets, first_day, last_day))
        if not len(admitted):
            return []
        query = np.asarray(vector, dtype=np.float32)
        query /= np.linalg.norm(query) or 1.0
        if 2 * len(admitted) > rows:  # most rows: score them all in place, no gathering
            if whole:  # the pending rows alone are not worth the wait
                self._wait_for_warming()
            scores = self._scores_all(vectors, query)[admitted]
        else:
            scores = self._scores(vectors, admitted, query)
        if len(admitted) > n:
            top = np.argpartition(-scores, n - 1)[:n]
        else:
            top = np.arange(len(admitted))
        top = top[np.lexsort((admitted[top], -scores[top]))]  # best first; ties by row
        return [(int(admitted[t]), float(scores[t])) for t in top]

    def _keep(self, facets: Any, alive: Any, outlets: Sequence[str] | None,
              first_day: int | None, last_day: int | None) -> Any:
        """Which of these rows (their facets and alive flags) are live and admitted."""
        import numpy as np

        outlet, day = facets[:, 0], facets[:, 1]
        keep = alive.astype(bool)
        if outlets:  # None or none named: every outlet
            codes = self.book.codes(outlets)
            keep &= np.isin(outlet, codes) if len(codes) != 1 else outlet == codes[0]
        if first_day:
            keep &= day >= first_day
        if last_day:
            keep &= (day <= last_day) & (day > 0)
        return keep

    def admitted(
        self,
        chunk_ids: Sequence[str],
        *,
        outlets: Sequence[str] | None = None,
        first_day: int | None = None,
        last_day: int | None = None,
    ) -> set[str]:
        """Those of ``chunk_ids`` with a live row among these outlets and days: a filter
        checked on chunks found elsewhere (the nearest vectors, which Chroma returns far
        faster without their metadata: at 792k vectors, 1,500 of them in about 20 ms against
        140 ms or more with it)."""
        import numpy as np

        while chunk_ids:
            generation, rows, _, facets, alive = self._current()
            found = self.book.where("chunk_id", chunk_ids, generation)
            if found is None:  # a rewrite renumbered the rows meanwhile: read again
                continue
            found = [(r, c) for r, c in found if r < rows]  # past ``rows``: uncommitted
            at = np.fromiter((r for r, _ in found), np.int64, len(found))
            keep = self._keep(facets[at], alive[at], outlets, first_day, last_day)
            return {c for (_, c), kept in zip(found, keep, strict=True) if kept}
        return set()

    def _scores(self, vectors: Any, rows: Any, query: Any) -> Any:
        """``vectors[rows] @ query``, a block of rows at a time through this thread's buffer:
        gathering them all at once into new memory costs a page fault per page of it, on a
        virtual machine the larger part of a large outlet's time (benchmarks/RESULTS.md)."""
        import numpy as np

        buffer = getattr(self._buffers, "rows", None)
        if buffer is None or buffer.shape != (BLOCK, vectors.shape[1]):
            buffer = self._buffers.rows = np.empty((BLOCK, vectors.shape[1]), np.float32)
        scores = np.empty(len(rows), np.float32)
        for start in range(0, len(rows), BLOCK):
            part = rows[start : start + BLOCK]
            block = buffer[: len(part)]
            np.take(vectors, part, axis=0, out=block)
            np.matmul(block, query, out=scores[start : start + len(part)])
        return scores

    @staticmethod
    def _scores_all(vectors: Any, query: Any) -> Any:
        """``vectors @ query`` a block of rows at a time, read in place from the map."""
        import numpy as np

        scores = np.empty(len(vectors), np.float32)
        for start in range(0, len(vectors), 4 * BLOCK):
            np.matmul(vectors[start : start + 4 * BLOCK], query,
                      out=scores[start : start + 4 * BLOCK])
        return scores

    def prefetch(self) -> None:
        """Map the committed rows in now, and start reading them into memory on other threads
        (``index.mapped.read_ahead``), so a search that follows finds them there."""
        self._current()

    def _wait_for_warming(self) -> None:
        """Let the reading of the vectors finish (a scan of most rows reads them all anyway,
        and faulting them in one page at a time is slower than the readers' large reads)."""
        for thread in self._warmers:
            thread.join()

    def _current(self) -> tuple[int, int, Any, Any, Any]:
        """(generation, rows, vectors, facets, alive): the committed rows, mapped read-only;
        mapped again when more have been committed or the table was rewritten."""
        import numpy as np

        with self._lock:
            for attempt in range(3):
                state = self.book.states()
                generation, rows, dim = (state.get(k, 0) for k in ("generation", "rows", "dim"))
                if self._view is not None and self._view[:2] == (generation, rows):
                    break
                if not rows:
                    self._view = (generation, 0, None, None, None)
                    break
                try:
                    self._maps = [map_file(self.path(name, generation), rows * width)
                                  for name, width in zip(FILES, (4 * dim, 8, 1), strict=True)]
                except FileNotFoundError:  # deleted by a rewrite just committed: read it anew
                    if attempt == 2:
                        raise
                    continue
                self._warmers = read_ahead(self._maps[0])
                self._view = (
                    generation, rows,
                    np.frombuffer(self._maps[0], np.float32, rows * dim).reshape(rows, dim),
                    np.frombuffer(self._maps[1], np.int32, 2 * rows).reshape(rows, 2),
                    np.frombuffer(self._maps[2], np.uint8, rows),
                )
                break
            return self._view  # type: ignore[return-value]

    def path(self, name: str, generation: int) -> Path:
        """Where one of ``FILES`` of this generation is (generation 0: the plain name)."""
        stem, suffix = name.split(".")
        return self.folder / (f"{stem}.{generation}.{suffix}" if generation else name)

    def _file(self, name: str) -> Path:
        """One of ``FILES`` of the committed generation (holding the lock)."""
        return self.path(name, self.book.state("generation"))

    # -- writing (under the data folder's write lock) ---------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Turn a failed write of the table's files (a full disk, a read-only folder) into a
        StoreError that says where and what to do; the batch is then not committed."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"writing the scan table in {self.folder} failed: {exc}",
                hint="free disk space or make the folder writable, then ingest again "
                "(nothing of the batch was committed)",
            ) from exc

    def start_complete(self) -> None:
        """Mark a new, empty table as holding every vector (the index has none yet)."""
        with self._lock:
            if not self.book.state("rows"):
                self.book.record(complete=1)

    def append(self, chunk_ids: Sequence[str], vectors: ArrayLike,
               outlets: Sequence[str], days: Sequence[int], *, pending: bool = False) -> None:
        """Add rows, replacing any these chunks already have (as Chroma's upsert does: a batch
        written again after a kill has the same ids); committed (visible to readers) only once
        all of them are written.  ``pending``: Chroma is not given these vectors now (see
        ``pending_rows``)."""
        import numpy as np

        if not chunk_ids:
            return
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(chunk_ids), -1)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.where(norms > 0, norms, 1.0)
        with self._lock:
            start, dim = self.book.state("rows"), self.book.state("dim")
            if start and matrix.shape[1] != dim:
                raise ValueError(f"vectors of {matrix.shape[1]} dimensions in a table of {dim}")
            self._kill(chunk_ids)
            codes = self.book.assign_codes(outlets)
            facets = np.column_stack([[codes[o] for o in outlets], days]).astype(np.int32)
            arrays: list[Any] = [matrix, facets, np.ones(len(chunk_ids), dtype=np.uint8)]
            for path, data in zip(map(self._file, FILES), arrays, strict=True):
                with open(path, "r+b" if path.exists() else "wb") as f:
                    f.truncate(start * data[0].nbytes)  # drop what an interrupted append left
                    f.seek(0, 2)
                    f.write(np.ascontiguousarray(data).tobytes())
            self.book.commit(start, chunk_ids, matrix.shape[1], pending=pending)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Mark these chunks' rows dead (ids without a row are ignored)."""
        if chunk_ids:
            with self._lock:
                self._kill(chunk_ids)

    def _kill(self, chunk_ids: Sequence[str]) -> None:
        """Mark the committed rows of these chunks dead (holding the lock)."""
        committed = self.book.state("rows")
        if not (rows := sorted(r for r in self.book.rows_of(chunk_ids) if r < committed)):
            return
        with open(self._file("alive.u8"), "r+b") as f:
            for r in rows:
                f.seek(r)
                f.write(b"\0")

    def pending_rows(self, page: int = 2000) -> Iterator[tuple[list[str], Any, list[str],
                                                                list[int]]]:
        """(chunk ids, unit vectors, outlets, days) of the live rows from ``pending`` on, a
        page at a time, for Chroma to be given them (under the data folder's write lock, so
        no rows are added or renumbered meanwhile)."""
        import numpy as np

        start = self.pending
        generation, rows, vectors, facets, alive = self._current()
        if start is None or rows <= start:
            return
        names = self.book.outlet_names()
        for first in range(start, rows, page):
            live = first + np.flatnonzero(alive[first : first + page])
            found = dict(self.book.where("row", live.tolist(), generation) or [])
            live = np.asarray([r for r in live.tolist() if r in found], dtype=np.int64)
            if len(live):
                yield ([found[r] for r in live.tolist()], np.asarray(vectors[live]),
                       [names.get(int(c), "") for c in facets[live, 0]],
                       [int(d) for d in facets[live, 1]])

    def caught_up(self) -> None:
        """Record that Chroma holds every row's vector (once given ``pending_rows``)."""
        with self._lock:
            self.book.forget("pending")

    def fill(self, vectors: Any, page: int = 5000) -> int:
        """Read every vector of ``vectors`` (``index.vectors.ChromaVectors``) into an empty
        table and mark it complete; return how many.  Rows already present are dropped first
        (a fill a kill interrupted starts again)."""
        with self._lock:
            self.book.record(rows=0, complete=0)
        offset = 0
        while True:
            got = vectors.collection.get(include=["embeddings", "metadatas"], limit=page,
                                         offset=offset)
            ids = list(got["ids"])
            if ids:
                metas = [m or {} for m in got["metadatas"]]
                self.append(ids, got["embeddings"], [str(m.get("outlet") or "") for m in metas],
                            [int(m.get("published") or 0) for m in metas])
            offset += len(ids)
            if len(ids) < page:
                break
        with self._lock:
            self.book.record(complete=1)
        return offset

    def close(self) -> None:
        with self._lock:
            self._view, self._maps = None, []
            self.book.close()


def rows_of(batch: Sequence[Any]) -> tuple[list[str], list[list[float]], list[str], list[int]]:
    """(chunk ids, vectors, outlets, days) of a write batch's embedded chunks
    (``index.catalog.PreparedArticle``), in the order ``ChromaVectors.add`` writes them."""
    ids: list[str] = []
    vectors: list[list[float]] = []
    outlets: list[str] = []
    days: list[int] = []
    for prepared in batch:
        for chunk_id, _, vector in prepared.embedded():
            ids.append(chunk_id)
            vectors.append(vector)
            outlets.append(prepared.article.outlet or "")
            days.append(day_number(prepared.article.published))
    return ids, vectors, outlets, days
