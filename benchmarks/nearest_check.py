"""What checking a filter on the nearest vectors costs, two ways, against scanning what it admits.

A wide dense filter (the largest outlets, an as_of) is checked on the ``width * n`` vectors
nearest the question (``index.dense``).  Their outlets and days can come from Chroma, as the
metadata of its answer, or from the scan table, by chunk id, with Chroma returning ids and
distances only.  This script times both, question by question in turns (each as often first),
on a scale archive (``benchmarks/scale.py``) with Chroma's graph loaded, and times the scan of
the same filter's rows beside them.  Every search reads what a 1M-article archive's would: the
filter's share as estimated, its width as the search would choose it.

It also gives the cost of one nearest vector and of one scanned row, whose ratio is
``index.dense.SCAN_PER_NEAREST``.  The two checks must admit the same chunks; the script stops
if they do not.

    python benchmarks/nearest_check.py /tmp/newsdesk-scale/a200000-s7-g1 --questions 30

Prints one JSON object per archive.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import scale
from benchmarks import scale_corpus as corpus
from benchmarks.scale_probe import percentiles, run_on_archives


def compare(folder: Path, n_questions: int) -> dict[str, Any]:
    from assistant.retrieve import Filters
    from index.store import Store

    built = json.loads((folder / "built.json").read_text())
    size, seed = built["size"], built["seed"]
    settings = scale.settings_for(folder)
    store = Store(settings)
    table = store.scan
    if table is None or not store.scan_ready():
        raise SystemExit(f"{folder} has no complete scan table: run scale.py measure on it first")
    store.vectors.warm()
    embedder = scale.real_embedder()
    n = 2 * settings.retrieval.candidates  # what the dense retriever asks for
    dense = store.dense
    kinds = {"outlet": lambda q: Filters(outlets=[q.outlet]), "as_of": lambda q: Filters(as_of=q.as_of)}
    ways = ("metadata", "scan facets", "scan rows")
    out: dict[str, Any] = {"archive": folder.name, "vectors": built["dense_chunks"], "n": n,
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for kind, filters in kinds.items():
        seconds: dict[str, list[float]] = {w: [] for w in ways}
        nearest, rows = 0, 0
        for i, q in enumerate(corpus.questions(seed, n_questions + 3, size)):
            vector = embedder.embed_query(q.text)
            within = filters(q).keyword_filter()
            assert within is not None  # both kinds filter
            total, share = dense._share(within)
            width = dense._nearest_width(share)
            order = list(ways)[i % 3:] + list(ways)[: i % 3]
            found: dict[str, Any] = {}
            for way in order:
                store.scan = None if way == "metadata" else table
                started = time.perf_counter()
                if way == "scan rows":
                    found[way] = dense._scan(vector, n, within)
                else:
                    found[way] = dense._nearest_first(vector, n, within, width)
                if i >= 3:  # the first three warm up
                    seconds[way].append(time.perf_counter() - started)
            store.scan = table
            if found["metadata"] != found["scan facets"]:
                raise SystemExit(f"the two checks disagree on {q.text!r} ({kind})")
            if i >= 3:
                nearest += width * n
                rows += round(share * total)
        cell: dict[str, Any] = {way: percentiles(seconds[way]) for way in ways}
        asked = len(seconds["metadata"])
        for way in ("metadata", "scan facets"):
            cell[way]["us_per_nearest"] = round(
                statistics.mean(seconds[way]) / (nearest / asked) * 1e6, 1)
        cell["scan rows"]["us_per_row"] = round(
            statistics.mean(seconds["scan rows"]) / (rows / asked) * 1e6, 3)
        cell["nearest_per_search"] = round(nearest / asked)
        cell["rows_per_search"] = round(rows / asked)
        out[kind] = cell
        print(f"  {kind}: {cell}", file=sys.stderr, flush=True)
    store.close()
    return out


def main() -> None:
    run_on_archives(compare, __doc__ or "", questions=30)


if __name__ == "__main__":
    main()
