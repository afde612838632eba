"""What searching at once gains: a question's searches (dense and keyword, the two keyword levels)
run together, against the same searches run in turn.

``FusedRetriever.retrieve`` runs a hybrid's keyword search on a thread beside its dense search,
and ``KeywordRetriever.search`` its article level beside its chunk level; keyword search adds up
its postings outside the catalog's lock.  This script asks the same questions both ways, in
turns (each way as often first), in one process on a scale archive (``benchmarks/scale.py``)
with Chroma's graph loaded.  "In turn" runs each submitted search on the calling thread, as
before the change.  Every question is asked once, untimed, before it is timed, so both ways
find its postings decoded: what is compared is the searching, not the reading.

    python benchmarks/search_overlap.py /tmp/newsdesk-scale/a1000000-s7-g1-v2 --questions 40

Prints one JSON object per archive: p50 / p95 ms per retriever and way, and how often the
two ways found the same hits (they must, always).
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import scale
from benchmarks import scale_corpus as corpus
from benchmarks.scale_probe import percentiles, run_on_archives


class InTurn:
    """An executor that runs what is submitted at once, on the calling thread."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(fn(*args))
        return done


def compare(folder: Path, n_questions: int) -> dict[str, Any]:
    from assistant import retrieve
    from assistant.retrieve import Filters, get_retriever

    built, settings, store = scale.open_archive(folder, serving=True)
    size, seed = built["size"], built["seed"]
    store.vectors.warm()  # a long-running process's steady state: Chroma's graph loaded
    embedder = scale.real_embedder()
    at_once: dict[str, Any] = {"_SEARCHES": retrieve._SEARCHES, "_LEVELS": retrieve._LEVELS}
    ways: dict[str, dict[str, Any]] = {"at once": at_once,
                                       "in turn": dict.fromkeys(at_once, InTurn())}
    k = settings.retrieval.top_k
    out: dict[str, Any] = {"archive": folder.name, "articles": size,
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    questions = corpus.questions(seed + 1, n_questions + 3, size)  # not scale.py's questions
    for name in ("bm25", "hybrid"):
        retriever = get_retriever(name, settings=settings, store=store, embedder=embedder)
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        same = 0
        for i, q in enumerate(questions):
            retriever.retrieve(q.text, Filters(), k)  # its postings decoded, for both ways
            order = list(ways) if i % 2 else list(reversed(ways))
            found = {}
            for way in order:
                for attribute, executor in ways[way].items():
                    setattr(retrieve, attribute, executor)
                started = time.perf_counter()
                found[way] = [h.chunk_id for h in retriever.retrieve(q.text, Filters(), k).hits]
                if i >= 3:  # the first three warm up
                    seconds[way].append(time.perf_counter() - started)
            same += found["at once"] == found["in turn"]
        for attribute, executor in at_once.items():
            setattr(retrieve, attribute, executor)
        out[name] = {way: percentiles(s) for way, s in seconds.items()}
        out[name]["same_hits"] = f"{same}/{len(questions)}"
        print(f"  {name}: {out[name]}", file=sys.stderr, flush=True)
    store.close()
    return out


def main() -> None:
    run_on_archives(compare, __doc__ or "", questions=40)


if __name__ == "__main__":
    main()
