"""Files mapped read-only, and read into memory ahead of use: ``map_file``, ``read_ahead``.

The scan table (``index.scan``) reads its vectors through such maps: shared with the page
cache, so rows another process marks dead are seen at once, and clean memory the system can
take back.  A newly mapped file is read in by a few threads at once, with large reads, rather
than a page fault at a time by the first search that touches it.
"""

from __future__ import annotations

import mmap
import threading
from pathlib import Path

READERS = 4
"""Threads reading a newly mapped file, each its own part: a cold file comes in at 1.1 GB/s by
one reader and 1.5 GiB/s by four on this machine's disk (benchmarks/cold_scan.py)."""


def map_file(path: Path, length: int) -> mmap.mmap:
    """The first ``length`` bytes of ``path``, mapped read-only and shared."""
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ)


def read_ahead(mapped: mmap.mmap) -> list[threading.Thread]:
    """Start ``READERS`` threads reading the map's parts into memory; join them to wait."""
    page = mmap.PAGESIZE
    part = -(-len(mapped) // READERS // page) * page
    threads = [threading.Thread(target=_read, daemon=True, name="newsdesk-read-ahead",
                                args=(mapped, start, min(part, len(mapped) - start)))
               for start in range(0, len(mapped), part)]
    for thread in threads:
        thread.start()
    return threads


def _read(mapped: mmap.mmap, start: int, length: int) -> None:
    """Map part of ``mapped`` into this process (Linux's MADV_POPULATE_READ; where the kernel
    lacks it, only a hint to read ahead), so the searches that follow do not pay a page fault
    per page they touch (measured: a large outlet's first search took 2-4x its later ones).
    Best effort."""
    for advice in (22, mmap.MADV_WILLNEED):  # 22: MADV_POPULATE_READ (Linux 5.14)
        try:
            mapped.madvise(advice, start, length)
            return
        except (OSError, ValueError):  # an old kernel; a map closed meanwhile
            continue
