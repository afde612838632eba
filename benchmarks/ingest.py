"""Ingest benchmark: newsdesk's ``index.ingest`` against llama-index + Chroma out of the box.

What is measured, per configuration, on one JSONL corpus (RealTimeQA format):

* ``newsdesk``            -- ``ingest([corpus], config=get_settings(data_dir=tmp))`` with the
  default settings (the first ``dense_chunks_per_article=4`` chunks of each article embedded,
  every chunk in the catalog and in BM25), then the same call again on the same data dir
  (the idempotent re-run: every article "unchanged", nothing embedded).
* ``newsdesk-dense-all``  -- the same with ``dense_chunks_per_article=0``: every chunk embedded.
* ``baseline``            -- llama-index ``VectorStoreIndex.from_documents`` (default
  ``SentenceSplitter``) into a fresh persistent Chroma collection, with llama-index's own local
  embedding class (``HuggingFaceEmbedding``: sentence-transformers on torch) over the same
  bundled all-MiniLM-L6-v2 weights.

For each newsdesk row the same child also embeds exactly the chunks the run embeds with the
bare model (``Embedder.encoder``, no chunking, dating or writing), once just before the ingest
and once just after: "ingest / model" is the pipeline's total time over the mean of the two, the
overhead target being at most 1.3x.  (Finding those chunks before the ingest loads the sentence
splitter, a one-time load like the model's, which the timed ingest then does not pay.)

Each configuration runs in its own freshly spawned process so that its peak RSS
(``ru_maxrss`` read in the child at its end) is its own.  In every child the libraries are
imported and the embedding model loaded *before* the clock starts (reported as "load s"), so
"seconds" is wall-clock time of the indexing call alone, model load excluded, for all rows.
The baseline's timed region includes reading the JSONL and opening Chroma, as newsdesk's does.
The re-run row's peak RSS is that of the whole child (first run and re-run).

Run from the repository root::

    python benchmarks/ingest.py                      # dev-small corpus (479 articles)
    python benchmarks/ingest.py --corpus ../shared/data/realtimeqa/dev/corpus.jsonl
    python benchmarks/ingest.py --limit 50 --only newsdesk,baseline
    python benchmarks/ingest.py --markdown           # print only the Markdown table

The corpus is internal data: it is read in place and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "realtimeqa" / "dev-small" / "corpus.jsonl"
CONFIGS = ("newsdesk", "newsdesk-dense-all", "baseline")
MODEL_WINDOW = 256  # all-MiniLM-L6-v2 reads at most this many tokens, special tokens included


@dataclass
class Row:
    """One line of the results table."""

    name: str
    articles: int
    chunks: int  # chunks written (newsdesk: catalog + BM25; baseline: Chroma)
    embedded: int  # chunk vectors in Chroma after the run
    seconds: float  # wall clock of the indexing call, model load excluded
    load_seconds: float | None  # imports + model load before the timed call (None: already loaded)
    peak_rss_mib: float
    note: str = ""
    tokens: int = 0  # model input tokens of the embedded chunks (special tokens included)
    model_seconds: float | None = None  # the bare model embedding the same chunks, same process

    @property
    def articles_per_s(self) -> float:
        return self.articles / self.seconds if self.seconds else 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_model(data_dir: Path, **overrides: int) -> tuple[Settings, float]:
    """Settings for ``data_dir``, with the libraries imported and the model loaded; load time."""
    started = time.perf_counter()
    import chromadb  # noqa: F401 - imported here so neither timed run pays for it
    import llama_index.core  # noqa: F401

    from assistant.settings import get_settings
    from index.embeddings import get_embedder

    settings = get_settings(data_dir=data_dir, **overrides)
    get_embedder(settings).encoder  # noqa: B018 - load now, outside the timed region
    return settings, time.perf_counter() - started


def _model_only(settings: Settings) -> tuple[int, float]:
    """Input tokens of the chunks the run embedded, and seconds the bare model takes for them."""
    from index import open_store
    from index.embeddings import get_embedder

    embedder = get_embedder(settings)
    store = open_store(settings)  # the chunk text lives in the catalog, not in Chroma
    texts = [c.embed_text for c in store.chunks(sorted(store.catalog.dense_chunk_ids())).values()]
    tokens = sum(min(n + 2, MODEL_WINDOW) for n in embedder.count_tokens(texts))
    return tokens, _time_model(embedder, texts)


def _time_model(embedder: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    embedder.encoder.embed(texts)
    return time.perf_counter() - started


def _texts_to_embed(corpus: str, settings: Settings) -> list[str]:
    """The texts ingest will embed, found as it finds them (split, chunked, the first
    ``dense_chunks_per_article`` of each article), so the bare model can be timed before the
    ingest as well as after it: the mean of the two is the ratio's denominator, which a load
    changing during the run biases less than one timing after."""
    from index.chunking import chunk_article
    from index.embeddings import get_embedder
    from index.models import Article
    from index.readers import read_paths

    embedder, config = get_embedder(settings), settings.index
    texts = []
    for article in read_paths([corpus]):
        if not isinstance(article, Article):
            continue  # a record the reader skips, as ingest does
        chunks = chunk_article(article, max_tokens=config.chunk_tokens,
                               count_tokens=embedder.count_tokens)
        texts += [c.embed_text for c in chunks[: config.dense_chunks_per_article or len(chunks)]]
    return texts


def run_newsdesk(name: str, corpus: str, dense_chunks_per_article: int | None) -> list[Row]:
    """Ingest the corpus twice into a fresh data dir (child process); a row for each run."""
    from index import ingest, open_store

    with tempfile.TemporaryDirectory(prefix="bench-newsdesk-") as tmp:
        overrides = {} if dense_chunks_per_article is None else {
            "dense_chunks_per_article": dense_chunks_per_article
        }
        settings, load_s = _load_model(Path(tmp) / "data", **overrides)

        from index.embeddings import get_embedder

        before_texts = _texts_to_embed(corpus, settings)
        model_before = _time_model(get_embedder(settings), before_texts)
        started = time.perf_counter()
        first = ingest([corpus], config=settings)
        first_s = time.perf_counter() - started
        embedded = open_store(settings).collection.count()
        first_rss = _peak_rss_mib()
        tokens, model_after = _model_only(settings)
        if len(before_texts) != embedded:
            raise SystemExit(f"{len(before_texts)} texts found to embed, {embedded} embedded")
        model_s = (model_before + model_after) / 2

        started = time.perf_counter()
        again = ingest([corpus], config=settings)
        again_s = time.perf_counter() - started

        skips = f"{len(first.skipped)} skipped" if first.skipped else ""
        changed = len(again.added) + len(again.updated)
        return [
            Row(name, len(first.added), first.chunks_written, embedded, first_s, load_s,
                first_rss, skips, tokens=tokens, model_seconds=model_s),
            Row(f"{name}, re-run", len(again.unchanged), again.chunks_written, 0, again_s, None,
                _peak_rss_mib(), "all unchanged" if not changed else f"{changed} re-indexed!"),
        ]


def run_baseline(name: str, corpus: str) -> list[Row]:
    """llama-index out of the box into a fresh Chroma collection (child process)."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        settings, load_s = _load_model(Path(tmp) / "unused")
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from llama_index.core import Document, StorageContext, VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.vector_stores.chroma import ChromaVectorStore

        from index.bundled_model import package_dir
        from index.embeddings import get_embedder

        embedder = get_embedder(settings)
        # llama-index's own local embedding class (sentence-transformers on torch), same weights
        hf_model = HuggingFaceEmbedding(
            model_name=str(package_dir()), device="cpu", normalize=True, show_progress_bar=False
        )
        started = time.perf_counter()
        with open(corpus, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        docs = [
            Document(
                text=r["text"],
                metadata={"title": r["title"], "outlet": r["outlet"] or "",
                          "published": r["published"] or ""},
            )
            for r in records
        ]
        # Telemetry off only so the benchmark never touches the network; storage is default.
        client = chromadb.PersistentClient(
            path=str(Path(tmp) / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        )
        collection = client.get_or_create_collection("baseline")
        vector_store = ChromaVectorStore(chroma_collection=collection)
        VectorStoreIndex.from_documents(
            docs,
            storage_context=StorageContext.from_defaults(vector_store=vector_store),
            embed_model=hf_model,
        )
        seconds = time.perf_counter() - started
        rss = _peak_rss_mib()

        count = collection.count()
        texts = collection.get(include=["documents"])["documents"] or []
        tokens = embedder.count_tokens(texts)
        over = sum(t > MODEL_WINDOW - 2 for t in tokens)
        note = f"{over}/{len(tokens)} chunks longer than the model's {MODEL_WINDOW}-token window"
        fed = sum(min(t + 2, MODEL_WINDOW) for t in tokens)
        return [Row(name, len(docs), count, count, seconds, load_s, rss, note, tokens=fed)]


def run_config(name: str, corpus: str) -> list[Row]:
    """Run one named configuration; meant to be called in a fresh child process."""
    if name == "newsdesk":
        return run_newsdesk(name, corpus, None)
    if name == "newsdesk-dense-all":
        return run_newsdesk(name, corpus, 0)
    if name == "baseline":
        return run_baseline(name, corpus)
    raise ValueError(f"unknown configuration {name!r}")


def markdown_table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        ("| configuration | articles | chunks | embedded | seconds | articles/s | chunks/s "
        "| tokens/s | bare model s (same chunks) | ingest / model | peak RSS MiB "
        "| load s (excluded) | note |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        load = "—" if r.load_seconds is None else f"{r.load_seconds:.1f}"
        chunks_per_s = f"{r.chunks_per_s:.1f}" if r.chunks else "—"
        tokens_per_s = f"{r.tokens_per_s:.0f}" if r.tokens else "—"
        model = "—" if r.model_seconds is None else f"{r.model_seconds:.2f}"
        ratio = "—" if not r.model_seconds else f"{r.seconds / r.model_seconds:.2f}x"
        lines.append(
            f"| {r.name} | {r.articles} | {r.chunks} | {r.embedded} | {r.seconds:.2f} "
            f"| {r.articles_per_s:.1f} | {chunks_per_s} | {tokens_per_s} | {model} | {ratio} "
            f"| {r.peak_rss_mib:.0f} | {load} | {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="JSONL corpus")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N articles")
    parser.add_argument("--only", default=",".join(CONFIGS),
                        help=f"comma-separated configurations (default: {','.join(CONFIGS)})")
    parser.add_argument("--markdown", action="store_true", help="print only the Markdown table")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {CONFIGS}")
    if not args.corpus.is_file():
        print(f"corpus not found: {args.corpus} (internal data, not in the repo); "
              "pass --corpus PATH to point at a RealTimeQA corpus.jsonl. Nothing to do.")
        return 0

    def say(message: str) -> None:
        if not args.markdown:
            print(message, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        corpus = args.corpus.resolve()
        if args.limit is not None:  # a temporary prefix of the corpus, outside the repo
            limited = Path(tmp) / "corpus.jsonl"
            with open(corpus, encoding="utf-8") as src, open(limited, "w", encoding="utf-8") as dst:
                for i, line in enumerate(src):
                    if i >= args.limit:
                        break
                    dst.write(line)
            corpus = limited
        say(f"corpus: {args.corpus}" + (f" (first {args.limit} articles)" if args.limit else ""))
        say("model load excluded from 'seconds' in every configuration (pre-loaded in each child)")

        rows: list[Row] = []
        spawn = mp.get_context("spawn")
        for name in names:
            say(f"running {name} ...")
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                result = pool.submit(run_config, name, str(corpus)).result()
            for r in result:
                say(f"  {r.name}: {r.articles} articles, {r.chunks} chunks ({r.embedded} embedded)"
                    f" in {r.seconds:.1f} s = {r.articles_per_s:.1f} articles/s,"
                    f" {r.chunks_per_s:.1f} chunks/s; peak RSS {r.peak_rss_mib:.0f} MiB"
                    + (f"; model load {r.load_seconds:.1f} s (excluded)"
                       if r.load_seconds is not None else "")
                    + (f"; {r.note}" if r.note else ""))
            rows.extend(result)

    say("")
    print(markdown_table(rows))
    print(repeated_ratios(rows))
    return 0


def repeated_ratios(rows: list[Row]) -> str:
    """For a configuration run more than once (``--only newsdesk,newsdesk,newsdesk``): the
    median ingest / model ratio, as one run's ratio swings with the shared machine's load."""
    ratios: dict[str, list[float]] = {}
    for r in rows:
        if r.model_seconds:
            ratios.setdefault(r.name, []).append(r.seconds / r.model_seconds)
    return "\n".join(
        f"\n{name}: ingest / model, median of {len(each)} runs: "
        f"{statistics.median(each):.2f}x ({', '.join(f'{x:.2f}x' for x in each)})"
        for name, each in ratios.items() if len(each) > 1
    )


if __name__ == "__main__":
    sys.exit(main())
