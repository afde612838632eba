"""What one write batch costs the index as the archive grows: the keyword index's share.

Times ``Store.write`` of 100 new articles, then ``Store.remove`` of them, each followed by
``store.keyword_index()`` (what ingest and remove call so the next question is ready), in an
empty folder and in a copy of a larger index (default: the realtimeqa/dev index that
``benchmarks/retrieval.py --set dev`` builds, 2,428 articles).  The articles' vectors are random
unit vectors (labelled substitute: the model's time is the same at any archive size and is
measured in benchmarks/ingest.py); chunking, catalog, keyword index and Chroma are real.

Run from the repository root; PYTHONPATH decides which code is measured:

    python benchmarks/keywords.py --archive benchmarks/out/dev/newsdesk
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def batch(n: int, seed: int = 7) -> list:
    """``n`` articles of about 600 words, prepared as ingest would, with random vectors."""
    from index.chunking import chunk_article
    from index.models import Article
    from index.store import PreparedArticle

    rng = random.Random(seed)
    words = [f"topic{k}" for k in range(3000)]  # a vocabulary, drawn Zipf-like below
    prepared = []
    for i in range(n):
        text = " ".join(
            " ".join(words[min(int(rng.paretovariate(1.1)), 2999)] for _ in range(14)).capitalize() + "."
            for _ in range(40)
        )
        article = Article(id=f"bench-{seed}-{i}", title=f"Bench {i}", text=text,
                          outlet="Bench Post", published="2021-05-01")
        chunks = chunk_article(article, max_tokens=200, count_tokens=lambda texts: [len(t.split()) for t in texts])
        vectors = []
        for _ in chunks[:4]:
            v = [rng.gauss(0, 1) for _ in range(384)]
            norm = sum(x * x for x in v) ** 0.5
            vectors.append([x / norm for x in v])
        prepared.append(PreparedArticle(article, f"h{seed}{i}", chunks, vectors))
    return prepared


def measure(data_dir: Path, n: int) -> dict:
    from assistant.settings import get_settings
    from index.store import Store

    store = Store(get_settings(data_dir=data_dir))
    before = store.count_articles()
    store.keyword_index()
    prepared = batch(n)
    started = time.perf_counter()
    store.write(prepared)
    store.keyword_index()
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    store.remove([p.article.id for p in prepared])
    store.keyword_index()
    removed = time.perf_counter() - started
    return {"archive_articles": before, "write_s": round(wrote, 2), "remove_s": round(removed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=REPO / "benchmarks/out/dev/newsdesk")
    parser.add_argument("--articles", type=int, default=100)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="newsdesk-kw-") as folder:
        rows.append(measure(Path(folder) / "empty", args.articles))
        if (args.archive / "catalog.sqlite3").exists():
            copy = Path(folder) / "archive"
            shutil.copytree(args.archive, copy)
            measure(copy, 1)  # a catalog that predates the keyword tables builds them once
            rows.append(measure(copy, args.articles))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
