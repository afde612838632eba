"""What storing the chunk text in Chroma costs: upsert time and disk, with and without it.

newsdesk keeps chunk text in its catalog and gives Chroma only vectors and the metadata its
filters read (``index.vectors.ChromaVectors.add``).  This script shows why: the same vectors and
metadata are upserted into fresh embedded collections with and without ``documents`` (the
sample articles' chunk texts, repeated to the count asked), alternating, and the wall time of
the upserts and the collection's disk are reported for each.  Vectors are seeded random unit
vectors (Chroma's cost does not depend on their values).

    python benchmarks/chroma_text.py                 # 6,000 chunks, 2 rounds
    python benchmarks/chroma_text.py --chunks 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BATCH = 500


def sample_texts(size: int = 1000) -> list[str]:
    """The bundled sample articles cut into pieces of about a chunk's length (a full chunk is
    at most 256 model tokens, about 1,000 characters)."""
    texts: list[str] = []
    for line in (REPO / "index" / "samples" / "articles.jsonl").read_text().splitlines():
        text = json.loads(line)["text"]
        texts.extend(text[i : i + size] for i in range(0, len(text), size))
    return texts


def upsert(folder: Path, vectors: np.ndarray, texts: list[str] | None) -> tuple[float, float]:
    """Seconds to upsert everything in batches, and the collection's disk in MB."""
    import chromadb

    client = chromadb.PersistentClient(
        path=str(folder), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    collection = client.create_collection("chunks", metadata={"hnsw:space": "cosine"})
    started = time.perf_counter()
    for i in range(0, len(vectors), BATCH):
        part = range(i, min(i + BATCH, len(vectors)))
        collection.upsert(
            ids=[f"a{j // 4}#{j % 4}" for j in part],
            embeddings=vectors[part.start : part.stop].tolist(),
            metadatas=[{"article_id": f"a{j // 4}", "outlet": f"outlet {j % 200}",
                        "published": 16_000 + j % 3650} for j in part],
            documents=[texts[j % len(texts)] for j in part] if texts else None,
        )
    seconds = time.perf_counter() - started
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    return seconds, disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    texts = sample_texts()
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(args.chunks, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    results: dict[str, list[tuple[float, float]]] = {"with the text": [], "vectors and metadata only": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, docs in (("with the text", texts), ("vectors and metadata only", None)):
                results[name].append(upsert(Path(tmp) / f"{r}-{len(docs or [])}", vectors, docs))
    print(f"{args.chunks} chunks ({len(texts)} distinct sample texts of about 1,000 characters), {args.rounds} rounds")
    print("| Chroma holds | upsert s (median) | per 1k chunks, s | disk MB | disk per 1k chunks, MB |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        disk = statistics.median(d for _, d in runs)
        per = 1000 / args.chunks
        print(f"| {name} | {seconds:.2f} | {seconds * per:.3f} | {disk:.1f} | {disk * per:.2f} |")


if __name__ == "__main__":
    main()
