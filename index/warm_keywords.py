"""A new process's keyword cache warmed with the terms earlier processes were asked:
``keep_warm(store)``.

A process pays to decode a term's postings the first time it is asked for that term. At a
million articles a question word ("what", "when", "about") is in 0.9-2.5M chunks, so a fresh
``serve``'s first questions are its slowest (benchmarks/RESULTS.md, "Keyword search at a
million articles"). PostgreSQL's autoprewarm records the buffers it holds and reads them back
at start. In the same way, a long-running process here does two things:

- ``remember``: it writes down the terms it holds decoded, in the data folder;
- ``warm``: the next process decodes them on a thread as it starts, the most recently asked
  first, up to half of its cache.

Searches go on meanwhile. A keyword index on a PostgreSQL server keeps no postings in the
process, so there it does nothing.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

from index.keywords import KeywordIndex

FILE = "keywords-asked.txt"
"""In the data folder: one ``LEVEL<TAB>TERM`` per line, the most recently asked first."""

KEPT = 5000
"""Terms written down at most."""


def remember(index: Any, folder: Path) -> int:
    """Write down the terms ``index`` holds decoded (replacing what was written); how many."""
    if not isinstance(index, KeywordIndex):
        return 0
    asked = index.asked()[:KEPT]
    if asked:
        path = folder / FILE
        partial = path.with_name(FILE + ".partial")
        partial.write_text("".join(f"{level}\t{term}\n" for level, term in asked))
        partial.replace(path)
    return len(asked)


def warm(index: Any, folder: Path) -> int:
    """Decode the terms written down in ``folder`` into ``index``'s cache; how many."""
    path = folder / FILE
    if not isinstance(index, KeywordIndex) or not path.exists():
        return 0
    terms = []
    for line in path.read_text().splitlines():
        level, _, term = line.partition("\t")
        if level.isdigit() and term:
            terms.append((int(level), term))
    return index.prefetch(terms)


def keep_warm(store: Any, every: float = 10.0) -> threading.Event:
    """For a long-running process (``serve``, ``chat``): on a thread, ``warm`` the store's
    keyword cache, then ``remember`` what it holds whenever that changed, looking every
    ``every`` seconds and at a normal exit, until the returned event is set.  (A server
    stopped by a signal, as uvicorn re-raises it, skips the exit's: what it asked in its last
    seconds goes unwritten.)  Best effort: a folder that cannot be written only goes unwarmed
    next time."""
    folder = store.config.data_dir
    written: list[Any] = [None]

    def write_down() -> None:
        try:
            index = store.keyword_index()
            if not isinstance(index, KeywordIndex):
                return
            asked = index.asked()
            if (asked[:1], len(asked)) != written[0]:  # the last asked, and how many
                remember(index, folder)
                written[0] = (asked[:1], len(asked))
        except Exception:  # noqa: BLE001, S110 - a read-only folder, a closed catalog
            pass

    def run() -> None:
        try:
            warm(store.keyword_index(), folder)
        except Exception:  # noqa: BLE001, S110 - searches decode what they need anyway
            pass
        while not stop.wait(every):
            write_down()

    stop = threading.Event()
    atexit.register(write_down)
    atexit.register(stop.set)  # run last-registered first: the thread stops, then one write
    threading.Thread(target=run, name="newsdesk-warm-keywords", daemon=True).start()
    return stop
