"""What dropping the scan table's dead rows costs, and what it gives back: ``compact`` timed.

Writes a table of ``--rows`` random unit vectors through ``ScanTable.append`` (200 outlets,
ten years of days; the code path of every ingest, as ``benchmarks/cold_scan.py`` does), marks
``--dead`` of its rows dead through ``ScanTable.delete`` (as replaced and removed articles
are), and times ``index.scan_compact.compact``, step by step (reading the row -> chunk map,
copying the live rows to new files flushed to the disk, switching in one transaction).  Then,
``--rounds`` times over, appends as many new rows as were dropped, marks as many dead, and
compacts again: an archive whose articles are edited at a steady rate.

Each round is compared, in the same run, with the writes it pays for (the appends of the rows
it drops), with the check every write makes when nothing is due, and with a search over every
row before and after it (the cost the dead rows add to each full scan).

    python benchmarks/scan_compact.py --rows 400000 --dead 0.25 [--folder /tmp/newsdesk-compact]

Prints one JSON line per round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.cold_scan import DIM, PIECE

OUTLETS = 200


def append(table: Any, start: int, count: int) -> float:
    """Append rows ``a{start}``.. ``a{start+count-1}``; seconds taken."""
    import numpy as np

    begun = time.perf_counter()
    rng = np.random.default_rng(start)
    for first in range(start, start + count, PIECE):
        n = min(PIECE, start + count - first)
        ids = range(first, first + n)
        table.append([f"a{i}#h#0" for i in ids], rng.standard_normal((n, DIM), dtype=np.float32),
                     [f"outlet {i % OUTLETS}" for i in ids],
                     [20150101 + (i % 3650) // 365 * 10000 for i in ids])
    return time.perf_counter() - begun


def kill(table: Any, alive: list[int], count: int, seed: int) -> tuple[list[int], float]:
    """Mark ``count`` of the ``alive`` rows' chunks dead, chosen at random; (the rest, seconds)."""
    import numpy as np

    chosen = set(np.random.default_rng(seed).choice(len(alive), count, replace=False).tolist())
    begun = time.perf_counter()
    table.delete([f"a{alive[i]}#h#0" for i in sorted(chosen)])
    return [a for i, a in enumerate(alive) if i not in chosen], time.perf_counter() - begun


def full_scan_ms(table: Any, repeats: int = 9) -> float:
    """Median milliseconds of an unfiltered search, which scores every row."""
    import numpy as np

    query = np.random.default_rng(7).standard_normal(DIM).astype(np.float32).tolist()
    table.search(query, 100)  # mapped and read in
    times = []
    for _ in range(repeats):
        begun = time.perf_counter()
        table.search(query, 100)
        times.append(time.perf_counter() - begun)
    return round(1000 * statistics.median(times), 1)


def timed_steps() -> dict[str, float]:
    """Time each step of ``compact`` into the returned dict (seconds), by wrapping them."""
    from index import scan_compact

    spent: dict[str, float] = {}

    def wrap(name: str, step: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                spent[name] = round(spent.get(name, 0.0) + time.perf_counter() - begun, 3)
        return run

    for name in ("_live", "_copy", "_switch"):
        setattr(scan_compact, name, wrap(name, getattr(scan_compact, name)))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--dead", type=float, default=0.25, help="share of the rows killed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/newsdesk-compact"))
    args = parser.parse_args()

    from index.scan import ScanTable
    from index.scan_compact import compact

    shutil.rmtree(args.folder, ignore_errors=True)
    table = ScanTable(args.folder)
    table.start_complete()
    dropped = int(args.rows * args.dead)
    appended, appended_s = args.rows, append(table, 0, args.rows)
    alive, next_id = list(range(args.rows)), args.rows
    spent = timed_steps()
    for round_ in range(args.rounds):
        if round_:  # as many new rows as the last round dropped, back to --rows
            appended, appended_s = dropped, append(table, next_id, dropped)
            alive += range(next_id, next_id + dropped)
            next_id += dropped
        checks = []
        for _ in range(5):  # what each write pays when nothing is due (here: nothing dead)
            begun = time.perf_counter()
            assert compact(table) == 0
            checks.append(time.perf_counter() - begun)
        alive, killed_s = kill(table, alive, dropped, round_)
        size = sum(p.stat().st_size for p in args.folder.iterdir()) / 2**20
        reader = ScanTable(args.folder)  # as a searching process: its own maps
        before_ms = full_scan_ms(reader)
        spent.clear()
        begun = time.perf_counter()
        gone = compact(table, always=True)  # due at 400k rows; small test runs too
        compact_s = time.perf_counter() - begun
        assert gone == dropped, (gone, dropped)
        after_ms = full_scan_ms(reader)
        reader.close()
        print(json.dumps({
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load": os.getloadavg()[0], "round": round_, "rows": args.rows, "dead": dropped,
            "mib_before": round(size, 1),
            "mib_after": round(sum(p.stat().st_size for p in args.folder.iterdir()) / 2**20, 1),
            "compact_s": round(compact_s, 3), "steps_s": dict(spent),
            "appended_rows": appended, "append_s": round(appended_s, 3),
            "delete_s": round(killed_s, 3),
            "not_due_ms": round(1000 * statistics.median(checks), 2),
            "full_scan_ms_before": before_ms, "full_scan_ms_after": after_ms,
        }), flush=True)
    table.close()
    shutil.rmtree(args.folder)


if __name__ == "__main__":
    main()
