"""Scale benchmark (issue 16): what ingest, removal, queries, memory, disk and a cold start cost
as the archive grows to 10^4, 10^5 and 10^6 articles.

Archives are synthetic (``benchmarks/scale_corpus.py``: deterministic, recombined sentences of the
project's own templates, 400-900 words, 200 outlets, ten years) and kept under ``--root``
(default /tmp/newsdesk-scale, one folder per size, seed and generator version), reused across runs.
The catalog, keyword index, filters and Chroma are real: the bulk build writes through
``Store.write`` (what ingest calls), the measured operations are the user-facing ones.  The one
substitute, labelled as such in every result: document vectors come from ``RecycledEmbedder``
(real MiniLM vectors of generated sentences, recycled with seeded noise); question vectors and
token counts are the real model's.

A build is resumable: it writes 500 articles per atomic ``Store.write`` in article order, so the
catalog's article count is the progress; ``--budget`` seconds end a run cleanly (run it again).
A size of N starts from a copy of a finished smaller archive of the same seed (a prefix of it).

Run from the repository root, each step under the heavy-job lock (PYTHONPATH decides the code):

    flock /tmp/newsdesk-heavy.lock timeout 720 python benchmarks/scale.py build 10000
    flock /tmp/newsdesk-heavy.lock timeout 720 python benchmarks/scale.py measure 10000
    python benchmarks/scale.py measure 100000 --parts queries --questions 20   # one part only
    python benchmarks/scale.py measure 30000 --parts paths   # dense filter paths side by side
    python benchmarks/scale.py report          # every measured size, against the targets
    python benchmarks/scale.py report 30000 100000   # only these (say, measured together)
    python benchmarks/scale.py build 1000000 --vectors-per-article 2   # another series: -v2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import scale_corpus as corpus
from benchmarks.scale_probe import cold_open, dense_paths, disk_usage, percentiles, serve_memory
from benchmarks.scale_report import MILLION, extrapolate, report

__all__ = ["archive", "build", "extrapolate", "measure", "open_archive", "prepare", "recycled", "report",
           "restore"]

PIECE = 500  # articles per Store.write in the bulk build
POOL = 2048  # real sentence vectors the recycled embedder mixes
BATCH = 100  # articles per measured ingest or removal
DENSE_CHUNKS = 4
"""Vectors per article in an archive unless ``--vectors-per-article`` says otherwise: the default
when the first archives were built (now 2), kept so that their sizes compare like with like.
An archive of another count is a separate series (``-v2`` in its folder and results names);
``benchmarks/vector_memory.py`` and ``benchmarks/dense_chunks.py`` measure what fewer cost and
save."""


def _suffix(vectors: int) -> str:
    return "" if vectors == DENSE_CHUNKS else f"-v{vectors}"


def archive(root: Path, size: int, seed: int, vectors: int = DENSE_CHUNKS) -> Path:
    """The folder of one archive (its index is in ``data/``)."""
    return root / f"a{size}-s{seed}-g{corpus.GENERATOR_VERSION}{_suffix(vectors)}"


def results_file(root: Path, size: int, seed: int, vectors: int = DENSE_CHUNKS) -> Path:
    return root / f"results-a{size}-s{seed}{_suffix(vectors)}.json"


def vectors_of(folder: Path) -> int:
    """The vectors per article of the archive in ``folder`` (from its name)."""
    last = folder.name.rsplit("-", 1)[-1]
    return int(last[1:]) if last.startswith("v") else DENSE_CHUNKS


def settings_for(folder: Path) -> Any:
    from assistant.settings import get_settings

    return get_settings(
        data_dir=folder / "data", llm="extractive", dense_chunks_per_article=vectors_of(folder)
    )


def open_archive(folder: Path, *, serving: bool = False) -> tuple[dict[str, Any], Any, Any]:
    """A finished archive's ``built.json``, its settings and a ``Store`` over it, opened in this
    process; ``serving``: freed memory kept for reuse first, as ``serve`` runs."""
    from index.store import Store

    if serving:
        from assistant.long_running import keep_freed_memory

        keep_freed_memory()
    built = json.loads((folder / "built.json").read_text())
    settings = settings_for(folder)
    return built, settings, Store(settings)


def real_embedder() -> Any:
    from index.config import IndexConfig
    from index.embeddings import get_embedder

    return get_embedder(IndexConfig())


def recycled(folder: Path, seed: int, pool_size: int = POOL) -> corpus.RecycledEmbedder:
    """The labelled vector substitute over the archive's pool of real vectors (embedded by the
    model when the archive is started, then kept in it as ``pool.npy``)."""
    real = real_embedder()
    pool = corpus.vector_pool(real, seed, pool_size, folder / "pool.npy")
    return corpus.RecycledEmbedder(real, pool)


# --- bulk build ------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(folder: Path, seed: int, pool_size: int) -> None:
    _WORKER["embedder"] = recycled(folder, seed, pool_size)
    _WORKER["vectors"] = vectors_of(folder)


def prepare(
    seed: int, ids: range | list[int], embedder: Any, vectors: int = DENSE_CHUNKS
) -> list[Any]:
    """Articles ``ids`` chunked, dated and embedded exactly as ingest would, except that the
    generator's own sentence spans stand in for Punkt's (they agree) and vectors are recycled."""
    from index.chunking import chunk_article
    from index.config import IndexConfig
    from index.pipeline import fingerprint
    from index.store import PreparedArticle
    from index.timex import find_mentions

    config = IndexConfig(dense_chunks_per_article=vectors)
    salt = fingerprint(config)
    out = []
    for i in ids:
        made = corpus.article(seed, i)
        article = made.article
        chunks = chunk_article(
            article, max_tokens=config.chunk_tokens, count_tokens=embedder.count_tokens,
            spans=made.spans,
        )
        dense = chunks[: config.dense_chunks_per_article or len(chunks)]
        out.append(PreparedArticle(
            article, article.content_hash(salt), chunks,
            embedder.embed_documents([c.embed_text for c in dense]),
            mentions=find_mentions(article.text, article.published, sentences=made.spans),
        ))
    return out


def _prepare_in_worker(seed: int, start: int, stop: int) -> list[Any]:
    return prepare(seed, range(start, stop), _WORKER["embedder"], _WORKER["vectors"])


def build(
    root: Path, size: int, seed: int, budget: float, pool_size: int = POOL,
    vectors: int = DENSE_CHUNKS,
) -> bool:
    """Add articles to the archive until it holds ``size`` or ``budget`` seconds are spent;
    True when complete.  One worker process prepares the next piece while this one writes."""
    from index.store import Store

    started = time.perf_counter()
    folder = archive(root, size, seed, vectors)
    if (folder / "built.json").exists():
        return True
    if not folder.exists():
        _seed_from_smaller(root, folder, size, seed)
    folder.mkdir(parents=True, exist_ok=True)
    recycled(folder, seed, pool_size)  # the pool, embedded once by the real model
    settings = settings_for(folder)
    store = Store(settings)
    restore(store, folder, seed)
    done = store.count_articles()
    if done and not store.content_hashes([corpus.article(seed, done - 1).article.id]):
        raise SystemExit(f"{folder} holds {done} articles but not the first {done}: delete it")
    first = done
    print(f"{folder.name}: {done} of {size} articles", flush=True)
    # spawned, not forked: a fork of a process whose threads hold locks (ONNX Runtime's, a
    # test run's earlier stores) can leave the worker waiting on a lock forever
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=_init_worker,
                             initargs=(folder, seed, pool_size)) as pool:
        ahead: list[tuple[int, Future[list[Any]]]] = []
        next_start = done
        while done < size and time.perf_counter() - started < budget:
            while len(ahead) < 2 and next_start < size:
                stop = min(size, next_start + PIECE)
                ahead.append((stop, pool.submit(_prepare_in_worker, seed, next_start, stop)))
                next_start = stop
            stop, future = ahead.pop(0)
            store.write(future.result())
            done = stop
            rate = (done - first) / (time.perf_counter() - started)
            print(f"  {done} articles ({rate:.0f}/s this run)", flush=True)
        for _, future in ahead:
            future.cancel()
    if done < size:
        print(f"budget spent at {done} of {size}: run `build {size}` again to resume")
        return False
    store.catch_up()  # a finished archive has every vector in Chroma
    stats = store.stats()
    (folder / "built.json").write_text(json.dumps({
        "size": size, "seed": seed, "generator": corpus.GENERATOR_VERSION,
        "vectors_per_article": vectors, "chunks": stats["chunks"], "dense_chunks": stats["dense_chunks"],
    }))
    print(f"{folder.name}: complete, {stats['chunks']} chunks ({stats['dense_chunks']} with vectors)")
    return True


def _seed_from_smaller(root: Path, folder: Path, size: int, seed: int) -> None:
    """Start from a copy of the largest finished smaller archive of this seed and vectors per
    article (a prefix)."""
    smaller = [
        p for p in root.glob(f"a*-s{seed}-g{corpus.GENERATOR_VERSION}{_suffix(vectors_of(folder))}")
        if (p / "built.json").exists() and int(p.name[1:].split("-")[0]) < size
    ]
    if smaller:
        best = max(smaller, key=lambda p: int(p.name[1:].split("-")[0]))
        print(f"starting from a copy of {best.name}", flush=True)
        tmp = folder.with_name(folder.name + ".copying")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(best, tmp, ignore=shutil.ignore_patterns("built.json", "*.lock"))
        tmp.rename(folder)


# --- measuring -------------------------------------------------------------------------------


def restore(store: Any, folder: Path, seed: int) -> None:
    """Undo an interrupted measurement: remove the articles it added, put back those it
    removed or edited (listed in ``measuring.json`` before it changed anything)."""
    marker = folder / "measuring.json"
    if not marker.exists():
        return
    state = json.loads(marker.read_text())
    store.remove([corpus.article(seed, i).article.id for i in state["added"]])
    embedder = recycled(folder, seed)
    edited = state.get("edited", [])
    if edited:
        originals = prepare(seed, edited, embedder, vectors_of(folder))
        held = store.content_hashes([p.article.id for p in originals])
        store.write([p for p in originals if held.get(p.article.id) != p.content_hash])
    present = store.content_hashes([corpus.article(seed, i).article.id for i in state["removed"]])
    missing = [i for i in state["removed"] if corpus.article(seed, i).article.id not in present]
    for start in range(0, len(missing), PIECE):
        store.write(prepare(seed, missing[start : start + PIECE], embedder, vectors_of(folder)))
    store.keyword_index()
    marker.unlink()


def query_latency(
    store: Any, settings: Any, seed: int, size: int, n: int, out: dict[str, Any], save: Any
) -> None:
    """p50/p95 of each retriever with no filter, an outlet filter and as_of, ``n`` questions
    each (after 3 warm-up questions per retriever, not counted), put in ``out`` and saved
    cell by cell.  Every cell asks questions of its own, so none finds the postings of its
    terms cached by an earlier one.  Chroma's graph is loaded first (the first searches of a
    process are scored from the scan table while it is not; the cold open measures those).
    Freed memory is kept for reuse, and the keyword cache warmed with the terms earlier
    processes were asked (the ``serve`` part's), as ``serve`` does (``keep_freed_memory``,
    ``index.warm_keywords``)."""
    from assistant.long_running import keep_freed_memory
    from assistant.retrieve import Filters, get_retriever
    from index import warm_keywords

    keep_freed_memory()  # as `serve` runs, which also warms its keyword cache at start
    started = time.perf_counter()
    warmed = warm_keywords.warm(store.keyword_index(), store.config.data_dir)
    print(f"  keyword cache warmed: {warmed} terms in {time.perf_counter() - started:.1f} s",
          flush=True)
    asked = corpus.questions(seed, 3 + 9 * n, size)
    fresh = iter(range(3, len(asked), n))  # where each cell's questions start
    kinds = {
        "none": lambda q: Filters(),
        "outlet": lambda q: Filters(outlets=[q.outlet]),
        "as_of": lambda q: Filters(as_of=q.as_of),
    }
    k = settings.retrieval.top_k
    store.vectors.warm()  # a long-running process's steady state: Chroma's graph loaded
    for name in ("bm25", "dense", "hybrid"):
        retriever = get_retriever(name, settings=settings, store=store, embedder=real_embedder())
        for q in asked[:3]:
            retriever.retrieve(q.text, Filters(), k)
        for kind, filters in kinds.items():
            seconds = []
            start = next(fresh)
            for q in asked[start : start + n]:
                started = time.perf_counter()
                retriever.retrieve(q.text, filters(q), k)
                seconds.append(time.perf_counter() - started)
            out[f"{name}/{kind}"] = percentiles(seconds)
            print(f"  {name:6} {kind:6} {out[f'{name}/{kind}']}", flush=True)
            save()


def batch_costs(store: Any, settings: Any, folder: Path, seed: int, size: int) -> dict[str, Any]:
    """Seconds to ingest three batches of 100 new articles (the ingest pipeline, recycled
    vectors) into a process that has not loaded Chroma's graph (a one-shot ``newsdesk
    ingest``: in an archive of ``DEFER_FROM`` vectors or more, the vectors are left pending),
    to give Chroma what they left pending (``catch_up``), to ingest three more with the graph
    loaded (``serve``, ``watch``), and to remove three batches of 100 archive articles; the
    archive is then put back as it was."""
    from index.embeddings import Embedder
    from index.pipeline import ingest_articles

    batch = min(BATCH, size // 4)  # only a tiny test archive has fewer than 400
    added = list(range(size, size + 6 * batch))
    removed = random.Random(f"remove:{seed}:{size}").sample(range(size), 3 * batch)
    (folder / "measuring.json").write_text(json.dumps({"added": added, "removed": removed}))
    embedder = recycled(folder, seed)
    writes: list[float] = []
    real_write = store.write

    def timed_write(prepared: Any) -> None:
        started = time.perf_counter()
        real_write(prepared)
        writes.append(time.perf_counter() - started)

    store.write = timed_write  # only to split the pipeline's time; the write itself is real
    parts: dict[str, list[float]] = {}  # and the write's own time, by the store it goes to
    for name, owner, method in (("chroma", store.vectors, "add"),
                                ("scan table", store.scan, "append"),
                                ("catalog", store.catalog, "replace")):
        if owner is not None:
            setattr(owner, method, _timed(getattr(owner, method), parts.setdefault(name, [])))
    ingest, write_share, removal = [], [], []
    per_batch: dict[str, list[float]] = {}
    caught_up = [0.0, 0]
    try:
        for b in range(6):
            if b == 3:  # the next three into a process that has loaded the graph
                started = time.perf_counter()
                caught_up[1] = store.catch_up()
                store.vectors.warm()  # loaded already, unless nothing was pending
                caught_up[0] = time.perf_counter() - started
            articles = [corpus.article(seed, i).article for i in added[b * batch : (b + 1) * batch]]
            writes.clear()
            # RecycledEmbedder has the two methods the pipeline calls (count_tokens,
            # embed_documents); the pipeline's annotation names the concrete class.
            done = ingest_articles(
                articles, config=settings, store=store, embedder=cast(Embedder, embedder)
            )
            assert len(done.added) == batch, done.skipped[:3]
            ingest.append(done.seconds)
            write_share.append(sum(writes))
            for name, seconds in parts.items():
                per_batch.setdefault(name, []).append(round(sum(seconds), 3))
                seconds.clear()
    finally:
        del store.write
        for owner, method in ((store.vectors, "add"), (store.scan, "append"),
                              (store.catalog, "replace")):
            if owner is not None:
                delattr(owner, method)
    for b in range(3):
        ids = [corpus.article(seed, i).article.id for i in removed[b * batch : (b + 1) * batch]]
        started = time.perf_counter()
        gone = store.remove(ids)
        store.keyword_index()  # what Library.remove_many does after removing
        removal.append(time.perf_counter() - started)
        assert len(gone) == batch
    restore(store, folder, seed)
    return {
        "articles_per_batch": batch,
        "ingest_100_s": [round(s, 2) for s in ingest[:3]],
        "ingest_100_store_write_s": [round(s, 2) for s in write_share[:3]],
        "catch_up_s": round(caught_up[0], 2),
        "caught_up_vectors": caught_up[1],
        "ingest_100_graph_loaded_s": [round(s, 2) for s in ingest[3:]],
        "ingest_100_graph_loaded_store_write_s": [round(s, 2) for s in write_share[3:]],
        "remove_100_s": [round(s, 2) for s in removal],
        "store_write_parts_s": per_batch,
    }


def _timed(call: Any, seconds: list[float]) -> Any:
    """``call``, its time per call appended to ``seconds``."""
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)
    return timed


PARTS = ("optimize", "cold", "batches", "serve", "disk", "queries", "million-paths", "paths")
"""What ``measure`` can do, in this order; by default all but ``optimize`` (``newsdesk
optimize``, timed: the archive stays optimized), ``million-paths`` and ``paths`` (comparisons of
code paths).  ``million-paths`` measures the queries as ``queries`` does, with the dense side
choosing as in an archive of a million articles (``DenseSearch.as_if_vectors``: this archive's
vectors per article, times a million): a small archive scans searches that a large one checks
on the nearest vectors, so its figures, fitted with a large one's, would bend a projection to
1M; these do not."""
DEFAULT_PARTS = tuple(p for p in PARTS if p not in ("optimize", "million-paths", "paths"))


def measure(
    root: Path, size: int, seed: int, n_questions: int, parts: tuple[str, ...] = DEFAULT_PARTS,
    vectors: int = DENSE_CHUNKS,
) -> dict[str, Any]:
    """The figures of ``parts`` for one finished archive, merged into (and saved as)
    ``results_file``, so a long measurement can be split across runs."""
    from index.store import Store

    folder = archive(root, size, seed, vectors)
    if not (folder / "built.json").exists():
        raise SystemExit(f"build the archive first: python benchmarks/scale.py build {size}"
                         + ("" if vectors == DENSE_CHUNKS else f" --vectors-per-article {vectors}"))
    built = json.loads((folder / "built.json").read_text())
    data = folder / "data"
    saved = results_file(root, size, seed, vectors)
    result: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {}
    result |= {"size": size, "seed": seed, "vectors_per_article": vectors, "chunks": built["chunks"],
               "dense_chunks": built["dense_chunks"],
               "vectors": "RecycledEmbedder (real MiniLM sentence vectors recycled with noise); "
                          "questions embedded by MiniLM"}
    result.setdefault("runs", []).append({
        "parts": list(parts), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg_start": os.getloadavg()[0],
    })

    def save() -> None:  # after each part, so a run cut short keeps what it measured
        result["runs"][-1]["load_avg_end"] = os.getloadavg()[0]
        saved.write_text(json.dumps(result, indent=1))

    if "optimize" in parts:
        print(f"{folder.name}: newsdesk optimize", flush=True)
        result["optimize"] = Store(settings_for(folder)).optimize()
        print(f"  {result['optimize']}", flush=True)
        save()
    if "cold" in parts:
        print(f"{folder.name}: cold open (index files evicted from the page cache)", flush=True)
        first = corpus.questions(seed, 1, size)[0].text
        for key in [k for k in result if k.startswith("cold_open_")]:
            del result[key]  # an earlier run's probes, maybe of older code
        for evicted, cache in ((True, "evicted"), (False, "warm_cache")):
            for turn in range(2):  # the first search scanned, or Chroma's graph loaded for it
                for scanning in ((True, False) if turn == 0 else (False, True)):
                    key = f"cold_open_{cache}" + ("" if scanning else "_chroma_first")
                    probe = cold_open(data, evict_first=evicted, question=first,
                                      scan_while_cold=scanning)
                    result.setdefault(key + "_runs", []).append(probe)
                    result[key] = min(result[key + "_runs"],
                                      key=lambda p: p.get("first_answer_wall_s", p["wall_s"]))
                    print(f"  {key}: {probe}", flush=True)
        save()
    settings = settings_for(folder)
    store = Store(settings)
    restore(store, folder, seed)
    if not store.scan_ready():  # an archive built before the scan table: read it in once
        print("reading the archive's vectors into the scan table", flush=True)
        started = time.perf_counter()
        store.prepare_scan()
        result["scan_fill_s"] = round(time.perf_counter() - started, 1)
        print(f"  {result['scan_fill_s']} s", flush=True)
        save()
    if "batches" in parts:
        print("ingest and removal", flush=True)
        result["batches"] = batch_costs(store, settings, folder, seed, size)
        result["in_process_rss_mib"] = _rss_mib()
        save()
    if "serve" in parts:
        print("serve", flush=True)
        asked = corpus.questions(seed, 4, size)
        result["serve"] = serve_memory(data, [
            body for q in asked for body in (
                {"question": q.text},
                {"question": q.text, "outlets": [q.outlet]},
                {"question": q.text, "as_of": q.as_of.isoformat()},
            )
        ])
        print(f"  {result['serve']}", flush=True)
        save()
    if "disk" in parts:
        result["disk"] = disk_usage(data, size)
        save()
    if "queries" in parts:  # last: the longest part, saved cell by cell
        print("queries", flush=True)
        result["questions_per_cell"] = n_questions
        result["queries"] = {}
        query_latency(store, settings, seed, size, n_questions, result["queries"], save)
        save()
    if "million-paths" in parts:  # the queries again, along the paths a 1M archive takes
        print("queries along a million-article archive's paths", flush=True)
        store.dense.as_if_vectors = built["dense_chunks"] * MILLION // size
        result["queries_million_paths"] = {}
        query_latency(store, settings, seed, size, n_questions, result["queries_million_paths"],
                      save)
        store.dense.as_if_vectors = None
        save()
    if "paths" in parts:
        print("dense filter paths", flush=True)
        asked = corpus.questions(seed, n_questions + 3, size)
        result["dense_paths"] = dense_paths(store, settings, asked, real_embedder())
    store.close()
    save()
    return result


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["build", "measure", "report"])
    parser.add_argument("sizes", nargs="*", type=int)
    parser.add_argument("--root", type=Path, default=Path("/tmp/newsdesk-scale"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget", type=float, default=600, help="build seconds per run")
    parser.add_argument("--questions", type=int, default=30, help="per retriever and filter")
    parser.add_argument("--pool", type=int, default=POOL, help="real sentence vectors recycled")
    parser.add_argument("--vectors-per-article", type=int, default=DENSE_CHUNKS,
                        help="dense_chunks_per_article of the archive (a separate series)")
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                        help="what to measure, of " + ",".join(PARTS))
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    if args.step == "report":
        print(report(args.root, args.seed, args.sizes, _suffix(args.vectors_per_article)))
        return
    for size in args.sizes:
        if args.step == "build":
            if not build(args.root, size, args.seed, args.budget, args.pool,
                         args.vectors_per_article):
                raise SystemExit(3)  # not finished: run again
        else:
            parts = tuple(p for p in PARTS if p in args.parts.split(","))
            measure(args.root, size, args.seed, args.questions, parts, args.vectors_per_article)
            print(report(args.root, args.seed, series=_suffix(args.vectors_per_article)))


if __name__ == "__main__":
    main()
