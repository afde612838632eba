"""What a process's first dense search costs at a million articles: the scan table read cold.

A new process scores its first searches from the scan table (``index.dense``), so the part of a
cold open that grows with the archive is reading the table's vectors into memory and scoring
them once.  No 1M-article archive fits this machine's disk and time, but a scan table of its
size does: this script writes tables of the given row counts through ``ScanTable.append``
(random unit vectors, 200 outlets, ten years of days; the code path of every ingest), then,
for each, drops its files from the page cache and times a fresh process opening it and
answering one unfiltered and one one-outlet search, and the same again with the files
cached.  1M articles are 2M rows at the default 2 vectors per article, 4M at the scale
archives' 4.

    python benchmarks/cold_scan.py --rows 400000,2000000,4000000 [--folder /tmp/newsdesk-coldscan]

Prints one JSON line per table and run; ``--keep`` keeps the tables (several GB) afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.scale_probe import evict

DIM = 384
PIECE = 50_000


def build(folder: Path, rows: int) -> float:
    """A complete scan table of ``rows`` random unit vectors; seconds taken."""
    import numpy as np

    from index.scan import ScanTable

    started = time.perf_counter()
    table = ScanTable(folder)
    with table.writing():
        table.start_complete()
        rng = np.random.default_rng(rows)
        for start in range(0, rows, PIECE):
            count = min(PIECE, rows - start)
            vectors = rng.standard_normal((count, DIM), dtype=np.float32)
            outlets = [f"outlet {i % 200}" for i in range(start, start + count)]
            days = (20150101 + (np.arange(start, start + count) % 3650) // 365 * 10000).tolist()
            table.append([f"a{i}#h#0" for i in range(start, start + count)], vectors,
                         outlets, days)
    table.close()
    return time.perf_counter() - started


def probe(folder: Path) -> dict[str, Any]:
    """In a fresh process: open the table, search it unfiltered, then within one outlet."""
    import numpy as np

    from index.scan import ScanTable

    started = time.perf_counter()
    table = ScanTable(folder)
    table.prefetch()
    query = np.random.default_rng(7).standard_normal(DIM).astype(np.float32).tolist()
    found = table.search(query, 100)
    first = time.perf_counter() - started
    asked = time.perf_counter()
    table.search(query, 100, outlets=("outlet 3",))
    return {"first_search_s": round(first, 3), "found": len(found),
            "outlet_search_s": round(time.perf_counter() - asked, 3)}


def measure(folder: Path, *, evicted: bool) -> dict[str, Any]:
    if evicted:
        evict(folder)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--probe", str(folder)], capture_output=True,
                          text=True, check=True, env=os.environ | {"PYTHONPATH": str(REPO)})
    return {"wall_s": round(time.perf_counter() - started, 3),
            **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="400000,2000000,4000000")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/newsdesk-coldscan"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe)))
        return
    for rows in (int(r) for r in args.rows.split(",")):
        folder = args.folder / f"rows-{rows}"
        built = None if (folder / "rows.sqlite3").exists() else build(folder, rows)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**30
        for run in range(args.runs):
            for evicted in (True, False):
                print(json.dumps({"rows": rows, "gib": round(size, 2), "built_s": built,
                                  "run": run, "cache": "evicted" if evicted else "warm",
                                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                  "load": os.getloadavg()[0],
                                  **measure(folder, evicted=evicted)}), flush=True)
        if not args.keep:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
