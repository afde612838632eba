"""What one vector costs in the resident memory of a process that searches Chroma, and what
Chroma's own HNSW settings change about it.

Embedded Chroma loads a collection's whole HNSW index (vectors and graph) into the memory of each
process that queries it, and this is what dominates ``newsdesk serve`` on a large archive
(``benchmarks/scale.py``).  Each measurement is a fresh process that opens a collection, reads its
resident memory (Linux ``VmRSS``) before opening the collection and after its first query (which
loads the index): the difference over the vector count is the resident cost per vector; with
two archives, the difference between them is printed too.

- ``--folders``: existing newsdesk data folders (the scale benchmark's archives), as built.
- ``--vectors N --max-neighbors 16,8``: fresh collections of ``N`` seeded random unit vectors
  (384 dimensions, cosine), one per ``max_neighbors`` value (HNSW's M; Chroma's other per-
  collection settings, ``ef_*``, ``batch_size``, ``sync_threshold``, ``num_threads`` and
  ``resize_factor``, change search effort and write buffering, not what each vector keeps).
  The vectors are random, not text; an HNSW index stores the same bytes per vector whatever
  they hold.

Run from the repository root, under the heavy-job lock:

    python benchmarks/vector_memory.py --folders /tmp/newsdesk-scale/a30000-s7-g1/data
    python benchmarks/vector_memory.py --vectors 100000 --max-neighbors 16,8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DIMENSIONS = 384


def probe(chroma_path: Path, collection: str) -> dict[str, Any]:
    """In this (fresh) process: resident memory before and after the collection's first query."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings as ChromaSettings

    from benchmarks.scale_probe import _status

    client = chromadb.PersistentClient(
        path=str(chroma_path), settings=ChromaSettings(anonymized_telemetry=False)
    )
    before = _status()  # opening the collection may already load its index
    found = client.get_collection(collection)
    count = found.count()
    query = np.random.default_rng(0).standard_normal(DIMENSIONS).astype(np.float32)
    started = time.perf_counter()
    found.query(query_embeddings=[query.tolist()], n_results=10, include=["distances"])
    loaded_s = time.perf_counter() - started
    after = _status()
    return {
        "vectors": count,
        "configuration": {k: v for k, v in (found.configuration_json.get("hnsw") or {}).items()},
        "first_query_s": round(loaded_s, 2),
        "rss_before_mib": before["VmRSS"],
        "rss_after_mib": after["VmRSS"],
        "anon_after_mib": after["RssAnon"],
        "bytes_per_vector": round((after["VmRSS"] - before["VmRSS"]) * 2**20 / max(count, 1)),
    }


def measure(chroma_path: Path, collection: str) -> dict[str, Any]:
    """``probe`` in a fresh process (nothing of this one's imports or caches counted)."""
    done = subprocess.run(
        [sys.executable, __file__, "--probe", str(chroma_path), collection],
        capture_output=True, text=True, check=False, env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    if done.returncode != 0:
        raise SystemExit(f"probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fresh_collection(folder: Path, n: int, max_neighbors: int) -> float:
    """A collection of ``n`` seeded random unit vectors with this ``max_neighbors``, written in
    batches as newsdesk writes (metadata of the same shape); seconds taken."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(
        path=str(folder), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection(
        "memory", configuration={"hnsw": {"space": "cosine", "max_neighbors": max_neighbors}}
    )
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    for start in range(0, n, 2000):
        rows = min(2000, n - start)
        vectors = rng.standard_normal((rows, DIMENSIONS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"article-{i // 4:07d}#hash#{i % 4}" for i in range(start, start + rows)]
        collection.upsert(
            ids=ids, embeddings=vectors,
            metadatas=[{"article_id": i.split("#")[0], "content_hash": "hash", "chunk": 0,
                        "outlet": "Outlet", "published": 20200101} for i in ids],
        )
    return time.perf_counter() - started


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        print(json.dumps(probe(Path(sys.argv[2]), sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", type=Path, nargs="*", default=[],
                        help="newsdesk data folders (collection 'newsdesk')")
    parser.add_argument("--vectors", type=int, default=0, help="fresh collections of N vectors")
    parser.add_argument("--max-neighbors", default="16,8", help="HNSW M values to compare")
    args = parser.parse_args()
    rows = []
    for folder in args.folders:
        rows.append({"collection": str(folder), **measure(folder / "chroma", "newsdesk")})
        print(json.dumps(rows[-1]), flush=True)
    if args.vectors:
        for m in [int(v) for v in args.max_neighbors.split(",")]:
            with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
                seconds = fresh_collection(Path(tmp), args.vectors, m)
                rows.append({"collection": f"fresh, max_neighbors={m}",
                             "upsert_s": round(seconds, 1), **measure(Path(tmp), "memory")})
                print(json.dumps(rows[-1]), flush=True)
    if len(args.folders) >= 2:  # what the vectors add between archives (a difference of RSS)
        small, large = rows[0], rows[len(args.folders) - 1]
        slope = (large["rss_after_mib"] - small["rss_after_mib"]) * 2**20 / (
            large["vectors"] - small["vectors"])
        print(f"between the first and last folder: {slope:,.0f} bytes of RSS per vector")
    print("\n| collection | vectors | settings | RSS before / after first query, MiB "
          "| bytes per vector |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["configuration"].items()
                             if k in {"space", "max_neighbors", "ef_construction", "ef_search"})
        print(f"| {r['collection']} | {r['vectors']:,} | {settings} | {r['rss_before_mib']} / "
              f"{r['rss_after_mib']} | {r['bytes_per_vector']:,} |")


if __name__ == "__main__":
    main()
