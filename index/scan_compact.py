"""Dropping the scan table's dead rows: ``compact(table)``.

A row of the scan table (``index.scan``) whose chunk is replaced or removed stays in its files,
marked dead: 1.5 KB at 384 dimensions.  An archive whose articles are edited or removed often
(a feed watcher updates edited articles; users remove sources) would grow without bound, and
every full scan would read the dead rows too.  ``compact`` rewrites the table with its live
rows once the dead ones are at least ``DEAD_SHARE`` of it and ``MIN_DEAD``; ``Store`` calls it
after each write and removal, so its cost, a copy of the live rows, is paid over the writes
that killed the rows (at a quarter, three live rows copied per dead one).

Under the data folder's write lock, in steps:

1. ``_sweep``: the files of any generation but the committed one, which an interrupted rewrite
   left (before or after its switch), are deleted;
2. ``_copy``: the live rows, in order, are written to files of the next generation
   (``vectors.1.f32``, ...) and flushed to the disk;
3. ``_switch``: one SQLite transaction in ``rows.sqlite3`` renumbers the row -> chunk map and
   records the new generation and row count (``_record``).  This is the commit point: a kill
   before it leaves the old table committed and in use, the new files unread leftovers; a
   kill after it, the new table, the old files leftovers;
4. ``_sweep`` again: the old generation's files are deleted.

Readers in other processes keep the old files mapped (Linux keeps a deleted file's pages for
as long as they are mapped), see the new generation at their next search and map its files
(``ScanTable._current``); a search that ranked the old generation's rows looks their chunks up
under that generation, and reads the table again if it has changed (``ScanTable._chunk_ids``).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from index.errors import StoreError
from index.scan import FILES, ScanTable

DEAD_SHARE = 0.25
"""The least share of the table's rows dead for a rewrite to be due."""

MIN_DEAD = 20_000
"""The fewest dead rows for a rewrite to be due (30 MB at 384 dimensions): a small table is
not rewritten for a few replaced articles."""

PIECE = 32_768
"""Rows copied at a time (48 MB of 384-dimensional vectors)."""

ROW_OVERHEAD = 128
"""Bytes per row a rewrite may also take in ``rows.sqlite3`` and its journal, while both the
old map and the new one are there."""


def compact(table: ScanTable, *, always: bool = False) -> int:
    """Rewrite ``table`` with its live rows only, if its dead rows are due (``due``), or, with
    ``always``, if it has any; return how many rows were dropped (0: none).  First deletes
    what an interrupted rewrite left.  Hold the data folder's write lock.

    Raises StoreError when the new files cannot be written (a full disk): the table is then
    left as it was, complete and in use, and nothing of the rewrite stays on the disk."""
    try:
        return _compact(table, always=always)
    except (OSError, sqlite3.Error) as exc:
        with suppress(OSError, sqlite3.Error):
            _sweep(table, table.state()["generation"])
        raise StoreError(
            f"compacting the scan table in {table.folder} failed: {exc}",
            hint="free disk space; the table stays as it was, complete with its dead rows, "
            "and the next write compacts it",
        ) from exc


def _compact(table: ScanTable, *, always: bool) -> int:
    import numpy as np

    state = table.state()
    old, rows = state["generation"], state["rows"]
    _sweep(table, old)
    if not rows or not state["complete"]:
        return 0  # empty, or being filled (which starts again from no rows)
    alive = np.fromfile(table.path("alive.u8", old), np.uint8, count=rows)
    dead = rows - int(np.count_nonzero(alive))
    if not dead or not (always or due(dead, rows)):
        return 0
    db = sqlite3.connect(table.folder / "rows.sqlite3", isolation_level=None, timeout=30)
    try:
        live, chunk_ids = _live(db, alive)
        _check_space(table.folder, len(live) * (4 * state["dim"] + 9 + ROW_OVERHEAD))
        _copy(table, state, live, old + 1)
        _switch(db, chunk_ids, old + 1)
    finally:
        db.close()
    _sweep(table, old + 1)
    return rows - len(live)


def due(dead: int, rows: int) -> bool:
    """Whether a table of ``rows`` rows, ``dead`` of them dead, is to be rewritten."""
    return dead >= MIN_DEAD and dead >= DEAD_SHARE * rows


def _live(db: sqlite3.Connection, alive: Any) -> tuple[Any, list[str]]:
    """The live rows, in order, and their chunks (a row without one is dropped with the dead:
    no search could name it)."""
    import numpy as np

    found = db.execute("SELECT row, chunk_id FROM rows WHERE row < ? ORDER BY row",
                       (len(alive),)).fetchall()
    live = np.flatnonzero(alive).tolist()
    if len(found) == len(alive):  # every row has its chunk: found[r] is row r's
        return np.asarray(live, dtype=np.int64), [found[r][1] for r in live]
    chunk_of = dict(found)
    live = [r for r in live if r in chunk_of]
    return np.asarray(live, dtype=np.int64), [chunk_of[r] for r in live]


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(f"it needs {needed / 2**20:.0f} MiB free on the disk, "
                      f"{free / 2**20:.0f} MiB are")


def _copy(table: ScanTable, state: dict[str, int], live: Any, new: int) -> None:
    """Write the ``live`` rows of the committed files into the files of generation ``new``."""
    import numpy as np

    rows, dim, old = state["rows"], state["dim"], state["generation"]
    vectors = np.memmap(table.path("vectors.f32", old), np.float32, "r", shape=(rows, dim))
    facets = np.fromfile(table.path("facets.i32", old), np.int32, count=2 * rows)
    _write_file(table.path("vectors.f32", new),
                (np.take(vectors, live[i : i + PIECE], axis=0)
                 for i in range(0, len(live), PIECE)))
    _write_file(table.path("facets.i32", new), [facets.reshape(rows, 2)[live]])
    _write_file(table.path("alive.u8", new), [np.ones(len(live), dtype=np.uint8)])
    folder = os.open(table.folder, os.O_RDONLY)  # the new names on the disk too
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _write_file(path: Path, parts: Iterable[Any]) -> None:
    """Write these arrays one after another into a new file, and flush it to the disk: once
    the switch commits, the old rows are deleted, and a crash must find the new ones."""
    import numpy as np

    with open(path, "wb") as f:
        f.writelines(np.ascontiguousarray(part).data for part in parts)
        f.flush()
        os.fsync(f.fileno())


def _switch(db: sqlite3.Connection, chunk_ids: list[str], new: int) -> None:
    """The commit point: the rows renumbered and generation ``new`` recorded, in one
    transaction."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("DROP INDEX IF EXISTS rows_by_chunk")  # built again at once: half the time
        db.execute("DELETE FROM rows")
        db.executemany("INSERT INTO rows (row, chunk_id) VALUES (?, ?)", enumerate(chunk_ids))
        db.execute("CREATE INDEX rows_by_chunk ON rows (chunk_id)")  # as index.scan_rows.SCHEMA's
        _record(db, generation=new, rows=len(chunk_ids))


def _record(db: sqlite3.Connection, **values: int) -> None:
    db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                   list(values.items()))


_TABLE_FILE = re.compile("|".join(
    rf"{re.escape(stem)}(\.\d+)?\.{re.escape(suffix)}"
    for stem, suffix in (name.split(".") for name in FILES)))


def _sweep(table: ScanTable, generation: int) -> None:
    """Delete the table's files of every generation but ``generation``."""
    if not table.folder.is_dir():
        return
    keep = {table.path(name, generation).name for name in FILES}
    for path in table.folder.iterdir():
        if path.name not in keep and _TABLE_FILE.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
