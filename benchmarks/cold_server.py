"""Cold open at archive scale with the vectors in a Chroma server (issue 16, item 4).

An embedded Chroma loads its whole HNSW index into each process that opens it, so a newsdesk
process's cold open grows linearly with the vectors (4.5 s of 6.1 s at 396k vectors).  With
``NEWSDESK_CHROMA_HOST`` the index stays loaded in a long-running `chroma run`, and a newsdesk
process (`ask`, `serve`, a worker) opens only the catalog and the keyword index.

For each archive built by ``benchmarks/scale.py`` this script, in one run:

1. copies the archive's Chroma folder (once; the archive itself is never written) and starts
   `chroma run` on the copy, on loopback; the time until the server answers its first query is
   the server's own cold start, paid once per server lifetime;
2. times ``--runs`` cold opens of a fresh newsdesk process against the server (the catalog's and
   Chroma's files evicted from the page cache first; the server keeps its index in memory), with
   the same probe as ``scale.py measure --parts cold``: start to first hybrid answer;
3. times one embedded cold open of the same archive beside them, as the peer.

Run from the repository root, under the heavy-job lock::

    python benchmarks/cold_server.py /tmp/newsdesk-scale/a30000-s7-g1 /tmp/newsdesk-scale/a100000-s7-g1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import scale_corpus as corpus
from benchmarks.scale_probe import cold_open, evict
from tests.servers import chroma


def _server_copy(folder: Path) -> Path:
    """A copy of the archive's Chroma folder for the server (made once, reused)."""
    copy = folder.parent / f"{folder.name}-chroma-server"
    if not (copy / ".complete").exists():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder / "data" / "chroma", copy)
        (copy / ".complete").touch()
    return copy


def _server_env(port: int) -> dict[str, str]:
    return {"NEWSDESK_CHROMA_HOST": "127.0.0.1", "NEWSDESK_CHROMA_PORT": str(port)}


def measure(folder: Path, runs: int) -> dict[str, Any]:
    data = folder / "data"
    built = json.loads((folder / "built.json").read_text())
    question = corpus.questions(built["seed"], 1, built["size"])[0].text
    copy = _server_copy(folder)
    out: dict[str, Any] = {"archive": folder.name, "vectors": built["dense_chunks"],
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "load_avg_start": os.getloadavg()[0]}
    evict(copy)
    started = time.perf_counter()
    with chroma(copy) as port:
        out["server_up_s"] = round(time.perf_counter() - started, 2)
        # The server loads its index on the first query: this probe pays for it, once.
        first = cold_open(data, evict_first=False, question=question, env=_server_env(port))
        out["server_first_answer_s"] = first["wall_s"]
        probes = []
        for _ in range(runs):
            evict(data)
            probes.append(cold_open(data, evict_first=True, question=question,
                                    env=_server_env(port)))
    out["with_server"] = probes
    out["with_server_wall_s"] = [p["wall_s"] for p in probes]
    out["with_server_median_s"] = statistics.median(out["with_server_wall_s"])
    out["embedded"] = cold_open(data, evict_first=True, question=question)
    out["load_avg_end"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", type=Path, nargs="+", help="archive folders of scale.py")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [measure(folder, args.runs) for folder in args.archives]
    for r in results:
        print(json.dumps(r))
    print("\n| archive | vectors | server up, s | server's first answer, s | newsdesk cold open "
          "with the server, s (runs) | embedded cold open, s |")
    print("|---|---:|---:|---:|---|---:|")
    for r in results:
        runs = ", ".join(f"{s:.2f}" for s in r["with_server_wall_s"])
        print(f"| {r['archive']} | {r['vectors']:,} | {r['server_up_s']:.2f} | "
              f"{r['server_first_answer_s']:.2f} | median {r['with_server_median_s']:.2f} "
              f"({runs}) | {r['embedded']['wall_s']:.2f} |")


if __name__ == "__main__":
    main()
