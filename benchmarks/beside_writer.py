"""What a long-running process pays when another process writes into its archive: a `serve`
with Chroma's graph loaded, and a `watch` (or a one-shot `newsdesk ingest`) adding a batch.

The reader (this process) opens a scale archive (``benchmarks/scale.py``), loads Chroma's
graph and times hybrid questions.  Another process then writes 100 new articles through the
ingest pipeline, ``EDITED`` of them edited versions of archive articles: into an archive of
``DEFER_FROM`` vectors or more, without the graph loaded, it leaves their vectors pending.  The reader then times the same
number of fresh questions, noting whether it still has its graph, and how long its work on
another thread takes to end (its graph loaded again, or the pending rows given to Chroma);
and the writer's seconds, peak memory, and whether it wrote to Chroma.  The batch is removed and the edits undone at the end (``scale.restore``
removes it after an interrupted run).  PYTHONPATH decides the code compared:

    python benchmarks/beside_writer.py /work/scale/a1000000-s7-g1-v2 --questions 20

Prints one JSON object per archive.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import scale
from benchmarks import scale_corpus as corpus
from benchmarks.scale_probe import percentiles, run_on_archives

BATCH = 100
EDITED = 10
"""Of the batch's articles, how many replace an archive article (an edited story)."""


def edited(seed: int, size: int) -> list[int]:
    """The archive articles the writer edits."""
    return random.Random(f"edit:{seed}:{size}").sample(range(size), EDITED)


def chroma_log(folder: Path) -> int:
    """The sequence number of embedded Chroma's last write (read here, whatever the code)."""
    import sqlite3

    with sqlite3.connect(folder / "data" / "chroma" / "chroma.sqlite3") as db:
        return int(db.execute("SELECT max(seq_id) FROM embeddings_queue").fetchone()[0] or 0)


def write_batch(folder: Path) -> dict[str, Any]:
    """In this process (the writer): ingest the batch (new articles and edited ones); its
    seconds, whether it wrote to Chroma or loaded its graph, and its peak memory."""
    import resource

    from index.embeddings import Embedder
    from index.pipeline import ingest_articles

    built, settings, store = scale.open_archive(folder)
    size, seed = built["size"], built["seed"]
    articles = [corpus.article(seed, i).article for i in range(size, size + BATCH - EDITED)]
    for i in edited(seed, size):  # a story updated since it was read
        article = corpus.article(seed, i).article
        articles.append(article.model_copy(update={
            "text": article.text + " This article was updated with later figures."}))
    embedder = scale.recycled(folder, seed)  # has the two methods the pipeline calls
    written = chroma_log(folder)
    done = ingest_articles(articles, config=settings, store=store,
                           embedder=cast(Embedder, embedder))
    assert len(done.added) + len(done.updated) == BATCH, done.skipped[:3]
    return {"seconds": round(done.seconds, 2),
            "wrote_to_chroma": chroma_log(folder) != written,
            "opened_chroma": store.vectors.is_open,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def compare(folder: Path, n_questions: int) -> dict[str, Any]:
    from assistant.retrieve import Filters, get_retriever

    built, settings, reader = scale.open_archive(folder, serving=True)
    size, seed = built["size"], built["seed"]
    scale.restore(reader, folder, seed)
    started = time.perf_counter()
    reader.vectors.warm()
    out: dict[str, Any] = {"archive": folder.name, "vectors": built["dense_chunks"],
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "graph_load_s": round(time.perf_counter() - started, 2)}
    retriever = get_retriever("hybrid", settings=settings, store=reader,
                              embedder=scale.real_embedder())
    asked = corpus.questions(seed, 3 + 2 * n_questions, size)
    k = settings.retrieval.top_k
    for q in asked[:3]:  # warm-up, not counted
        retriever.retrieve(q.text, Filters(), k)

    def timed(questions: list[Any]) -> tuple[list[float], list[bool]]:
        seconds, kept = [], []
        for q in questions:
            began = time.perf_counter()
            retriever.retrieve(q.text, Filters(), k)
            seconds.append(time.perf_counter() - began)
            kept.append(reader.vectors.is_warm)
        return seconds, kept

    before, _ = timed(asked[3 : 3 + n_questions])
    out["before"] = percentiles(before)
    added = list(range(size, size + BATCH - EDITED))
    (folder / "measuring.json").write_text(json.dumps(
        {"added": added, "removed": [], "edited": edited(seed, size)}))
    try:
        began = time.perf_counter()
        written = subprocess.run(
            [sys.executable, __file__, "--write", str(folder)], check=True, capture_output=True,
            text=True,
        )
        out["writer_s"] = round(time.perf_counter() - began, 2)
        out["writer"] = json.loads(written.stdout.strip().splitlines()[-1])
        out["pending_after_write"] = reader.scan.pending is not None if reader.scan else None
        after, kept = timed(asked[3 + n_questions :])
        out["after"] = percentiles(after) | {"max_ms": round(max(after) * 1000, 1),
                                             "first_ms": round(after[0] * 1000, 1)}
        out["graph_kept_after_each"] = kept
        began = time.perf_counter()
        warming = reader.dense.warming()
        if warming is not None:
            warming.join()
        if not reader.vectors.is_warm:
            reader.vectors.warm()
        out["background_s"] = round(time.perf_counter() - began, 2)
    finally:
        scale.restore(reader, folder, seed)  # the batch removed, as measured archives must be
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        print(json.dumps(write_batch(Path(sys.argv[2]))))
    else:
        run_on_archives(compare, __doc__ or "", 20)
