"""What a process that answers for a long time (``serve``, ``chat``) sets up:
``long_running(settings)``.

Two things: freed memory kept for reuse (``keep_freed_memory``), and the keyword cache warmed
on a thread with the terms earlier processes were asked (``index.warm_keywords``).

A search makes arrays of tens of megabytes (a common term's postings and their BM25 shares,
scratch sums) and lets them go.  glibc's malloc hands each such array back to the system when
it is freed (one above its mmap threshold, or a heap top above its trim threshold), so the
next search gets fresh pages, zeroed and faulted in one by one: on this project's machine the
first pass over fresh memory cost several times the next (benchmarks/RESULTS.md, "Keyword
search at a million articles").  ``serve``, ``chat`` and ``watch`` therefore ask malloc to
serve arrays up to its largest mmap threshold (32 MiB) from its heap and to keep up to
``KEPT`` of freed heap for the next search.  Elsewhere (another C library) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.settings import Settings

KEPT = 512 << 20
"""Freed heap memory a process keeps rather than gives back (M_TRIM_THRESHOLD)."""

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's cap on 64-bit systems


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory for reuse; False where there is no glibc."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX), (_M_TRIM_THRESHOLD, KEPT),
        (_M_TOP_PAD, 64 << 20)))


def long_running(settings: Settings) -> None:
    """Set up this process to answer for a long time over ``settings``' index: freed memory
    kept, and its store's keyword cache warmed on a thread (and what it holds written down
    for the next process)."""
    from index.store import open_store
    from index.warm_keywords import keep_warm

    keep_freed_memory()
    keep_warm(open_store(settings))
