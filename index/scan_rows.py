"""The scan table's book, ``rows.sqlite3``: ``ScanRows(folder)``.

It holds which chunk each row of the scan table (``index.scan``) holds, the outlets' codes, and
the table's state: the committed row count, the vectors' dimension, whether the table holds
every vector of the index, the generation of its files (``index.scan_compact``), and the first
row whose vector Chroma does not hold yet (``pending``, absent when it holds them all).  A write
commits its rows by recording the new count in the same transaction as their chunks; a
lookup of rows reads the generation in the same transaction as the rows, so both come from
one commit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rows_by_chunk ON rows (chunk_id);
CREATE TABLE IF NOT EXISTS outlets (code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

PART = 500
"""Ids per ``IN (...)`` list."""


class ScanRows:
    """``rows.sqlite3`` of one scan table; safe to share between threads."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "rows.sqlite3"
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, the book created on first use (writers only: readers ask
        ``states`` first, which creates nothing)."""
        with self._lock:
            if self._db is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                     timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
                self._db = db
            return self._db

    def states(self) -> dict[str, int]:
        """Every state value (rows, dim, complete, generation), read together: one statement
        sees one commit, so the row count and the generation belong to the same files."""
        with self._lock:
            if self._db is None and not self.path.exists():
                return {}  # no table yet (readers never create one)
            return {k: int(v) for k, v in self.db.execute("SELECT key, value FROM state")}

    def state(self, key: str) -> int:
        return self.states().get(key, 0)

    def record(self, **values: int) -> None:
        with self._lock:
            self.db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                                list(values.items()))

    def forget(self, key: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM state WHERE key = ?", (key,))

    def codes(self, outlets: Iterable[str]) -> list[int]:
        """The codes of these outlets; [-1] (no row has it) when none has one."""
        names = list(outlets)
        with self._lock:
            found = self.db.execute(
                f"SELECT code FROM outlets WHERE name IN ({','.join('?' * len(names))})", names
            ).fetchall() if names else []
        return [int(c) for (c,) in found] or [-1]

    def outlet_names(self) -> dict[int, str]:
        """Every outlet by its code."""
        with self._lock:
            return {int(c): n for c, n in self.db.execute("SELECT code, name FROM outlets")}

    def assign_codes(self, outlets: Iterable[str]) -> dict[str, int]:
        """The code of each of these outlets, new ones given the next codes."""
        names = sorted(set(outlets))
        with self._lock:
            self.db.executemany("INSERT OR IGNORE INTO outlets (name) VALUES (?)",
                                [(n,) for n in names])
            found = self.db.execute(
                f"SELECT name, code FROM outlets WHERE name IN ({','.join('?' * len(names))})",
                names).fetchall()
        return {name: int(code) for name, code in found}

    def where(self, column: str, values: Sequence[Any],
              generation: int) -> list[tuple[int, str]] | None:
        """(row, chunk id) of the rows of ``generation`` whose ``column`` (row or chunk_id) is
        one of ``values``; None if the table has been rewritten since."""
        with self._lock:
            self.db.execute("BEGIN")
            try:
                if self.state("generation") != generation:
                    return None
                found = self._where(column, values)
            finally:
                self.db.execute("COMMIT")
        return found

    def rows_of(self, chunk_ids: Sequence[str]) -> list[int]:
        """Every row these chunks have had, committed or not (writers, under the write
        lock)."""
        with self._lock:
            return [r for r, _ in self._where("chunk_id", chunk_ids)]

    def _where(self, column: str, values: Sequence[Any]) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for i in range(0, len(values), PART):
            part = list(values[i : i + PART])
            found += [(int(r), c) for r, c in self.db.execute(
                f"SELECT row, chunk_id FROM rows WHERE {column} IN ({','.join('?' * len(part))})",
                part)]
        return found

    def commit(self, start: int, chunk_ids: Sequence[str], dim: int, *,
               pending: bool = False) -> None:
        """Record rows ``start``... as these chunks', and commit them (one transaction); with
        ``pending``, as rows whose vectors Chroma does not hold yet."""
        with self._lock, self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO rows (row, chunk_id) VALUES (?, ?)",
                                zip(range(start, start + len(chunk_ids)), chunk_ids, strict=True))
            self.record(rows=start + len(chunk_ids), dim=dim)
            if pending and "pending" not in self.states():
                self.record(pending=start)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
