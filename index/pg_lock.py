"""Writers' turns across machines: a PostgreSQL advisory lock, ``PgWriteLock``.

It has the shape of the data folder's ``filelock.FileLock`` that ``index.store.Store`` holds while
it writes (``with lock.acquire(timeout=...)``, ``filelock.Timeout`` when the wait runs out), so
the store's write protocol is the same in both modes.  The lock is a session-level advisory lock
held by one dedicated connection; a process that dies loses its connection, and PostgreSQL
releases the lock at once.  While a thread holds it, ``connection`` is that session, so the
catalog commits its write transactions there: a writer whose session was lost cannot commit.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from filelock import Timeout


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class _Held:
    """What ``acquire`` returns: leaving the ``with`` block releases the lock once."""

    def __init__(self, lock: PgWriteLock) -> None:
        self.lock = lock

    def __enter__(self) -> PgWriteLock:
        return self.lock

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class PgWriteLock:
    """A PostgreSQL advisory lock on ``key``, re-entrant per thread; threads of one process take
    turns on a local lock first, so only one of them holds the session at a time."""

    def __init__(self, connect: Callable[[], Any], key: int, name: str) -> None:
        self.connect = connect
        self.key = key
        self.lock_file = name  # what filelock.Timeout and messages name
        self._local = threading.RLock()
        self._depth = 0
        self._owner: int | None = None
        self._session: Any = None

    @property
    def connection(self) -> Any:
        """The session holding the lock, if the calling thread holds it; else None."""
        return self._session if self._owner == threading.get_ident() else None

    @property
    def is_locked(self) -> bool:
        """True while some thread of this process holds the lock."""
        return self._depth > 0

    def acquire(self, timeout: float = -1) -> _Held:
        """Take the lock, waiting at most ``timeout`` seconds (negative: forever); raises
        ``filelock.Timeout`` when the wait runs out.  Use as ``with lock.acquire(): ...``."""
        deadline = None if timeout < 0 else time.monotonic() + timeout
        if not self._local.acquire(timeout=-1 if deadline is None else max(timeout, 0)):
            raise Timeout(self.lock_file)
        try:
            if self._depth == 0:
                self._take(deadline)
                self._owner = threading.get_ident()
            self._depth += 1
        except BaseException:
            self._local.release()
            raise
        return _Held(self)

    def _take(self, deadline: float | None) -> None:
        if self._session is None or self._session.closed or self._session.broken:
            self._session = self.connect()
        if deadline is None:
            self._session.execute("SELECT pg_advisory_lock(%s)", (self.key,))
            return
        while not self._session.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                raise Timeout(self.lock_file)
            time.sleep(0.05)

    def release(self) -> None:
        """Release one hold; the last one unlocks the session (a lost session holds nothing)."""
        try:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                session, healthy = self._session, self._session and not self._session.broken
                if healthy:
                    try:
                        session.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                    except Exception:  # noqa: BLE001 - the server drops a lost session's locks
                        session.close()
        finally:
            self._local.release()

    def close(self) -> None:
        """Close the lock's session (releasing the lock if held)."""
        if self._session is not None:
            self._session.close()
            self._session = None
