"""Retrieval ideas that were tried against the default hybrid fusion, and a check of the labels.

Runs over the index that ``benchmarks/retrieval.py --set SET`` builds (benchmarks/out/SET), for
every question of the set, with and without each question's ``as_of``.  Candidate scores are
collected once per question (the same calls ``assistant.retrieve.retrieve`` makes, with larger
candidate lists) and every variant is fused from them, so the variants differ only in fusion:

1. **default**: ``assistant.fusion.Fusion.fuse`` with the shipped settings (the reference row);
2. **pseudo-relevance feedback** (RM3-style): the query is expanded with the top terms
   (tf-idf weighted) of the first ``docs`` articles of the default ranking, interpolated with
   weight ``lam``, and the whole-article BM25 signal is recomputed from the expanded query;
3. **learned fusion**: a listwise logistic model over 11 article features (the three z-scored
   signals, recency at 60 and 7 days, reciprocal ranks, matched-chunk counts), fitted with
   L-BFGS and scored by 5-fold cross-validation over questions, regularised towards the
   default weights;
4. **sentence windows**: a fourth BM25 signal over windows of 3 sentences (2 overlapping),
   given part of the chunk-BM25 weight;
5. **label check**: ``relevant_doc_ids`` is mechanical (the article's text contains the answer
   string).  An article is *strictly* relevant when one of its sentences contains the answer and
   shares at least two content words (stemmed, stop words out) with the question; the default
   ranking is re-scored against those labels, over the questions that have any.

    python benchmarks/retrieval_ablations.py --set dev      # ~3 minutes once the index exists

Prints Markdown tables (hit@1, hit@5 over distinct articles).  The data stays in ../shared.
"""

from __future__ import annotations

import argparse
import collections
import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np

from assistant.fusion import (
    ANCHOR_POOL,
    Fusion,
    Recency,
    Signal,
    article_of,
    asks_for_latest,
    zscores,
)
from assistant.retrieve import DenseRetriever, Filters, KeywordRetriever
from assistant.settings import Settings, get_settings
from benchmarks.retrieval import indexed_set, normalise
from index.chunking import sentence_spans
from index.store import BM25_PARAMS, Store, day_number, day_of, open_store, tokenize

Scored = list[tuple[str, float]]


def collect(questions: list[dict], store: Store, settings: Settings, as_of: bool) -> list[dict]:
    """Per question: dense, chunk-BM25 and article-BM25 candidates, as retrieve() gets them."""
    from index.embeddings import get_embedder

    embedder = get_embedder(settings)
    dense_search = DenseRetriever.from_settings(settings, store=store, embedder=embedder)
    keyword_search = KeywordRetriever.from_settings(settings, store=store)
    rows = []
    for q in questions:
        day = date.fromisoformat(q["as_of"]) if as_of and q.get("as_of") else None
        filters = Filters(as_of=day)
        (dense,) = dense_search.search(q["question"], filters)
        chunk, article = keyword_search.search(q["question"], filters)
        rows.append({"q": q, "as_of": day, "dense": dense.scored, "chunk": chunk.scored,
                     "article": article.scored})
    return rows


def recency(row: dict, days: dict[str, int], settings: Settings) -> tuple[dict, Recency] | None:
    """The recency argument retrieve() would pass for this question."""
    boost = Fusion.from_settings(settings).recency_for(row["q"]["question"], row["as_of"])
    return (days, boost) if boost else None


def default_ranking(row: dict, days: dict[str, int], settings: Settings,
                    article_bm25: Scored | None = None) -> list[str]:
    """Distinct articles in the order the shipped fusion puts their chunks."""
    rec = recency(row, days, settings)
    hits = Fusion.from_settings(settings).fuse(
        [Signal("dense", row["dense"]), Signal("chunk_bm25", row["chunk"]),
         Signal("article_bm25", row["article"] if article_bm25 is None else article_bm25,
                level="article")],
        recency=rec[1] if rec else None, published=days)
    return list(dict.fromkeys(h.article_id for h in hits))


def hits(rankings: Sequence[Sequence[str]], relevant: Sequence[set[str]]) -> tuple[float, float]:
    """hit@1 and hit@5 over distinct-article rankings."""
    first = [next((i for i, a in enumerate(r) if a in rel), 10**6)
             for r, rel in zip(rankings, relevant, strict=True)]
    return (sum(f == 0 for f in first) / len(first), sum(f < 5 for f in first) / len(first))


# --- 2. pseudo-relevance feedback ----------------------------------------------------------


class Feedback:
    """RM3-style query expansion over the whole-article BM25 index."""

    def __init__(self, store: Store) -> None:
        level = store.keyword_index().articles
        self.level = level
        texts = {a.id: f"{a.title}\n{a.text}" for a in map(store.get_article, level.ids)}
        tokens = tokenize([texts[i] for i in level.ids], return_ids=False)
        self.tf = [collections.Counter(t) for t in tokens]
        self.length = [max(1, len(t)) for t in tokens]
        self.df = collections.Counter(w for t in tokens for w in set(t))
        self.position = {a: i for i, a in enumerate(level.ids)}
        self.cache: dict[str, Any] = {}

    def scores(self, row: dict, first: list[str], docs: int, terms: int, lam: float) -> Scored:
        vocab = self.level.retriever.vocab_dict
        asked = [t for t in tokenize([row["q"]["question"]], return_ids=False)[0] if t in vocab]
        weights: collections.defaultdict[str, float] = collections.defaultdict(float)
        for article in first[:docs]:
            i = self.position[article]
            for t, c in self.tf[i].items():
                weights[t] += c / self.length[i] * math.log(len(self.tf) / self.df[t])
        heaviest = sorted(weights.items(), key=lambda kv: -kv[1])[:terms]
        expansion = {t: v for t, v in heaviest if t in vocab}
        total = sum(expansion.values()) or 1.0
        query: collections.defaultdict[str, float] = collections.defaultdict(float)
        for t in asked:
            query[t] += (1 - lam) / len(asked)
        for t, v in expansion.items():
            query[t] += lam * v / total
        score = np.zeros(len(self.level.ids), dtype=np.float32)
        for t, v in query.items():
            if t not in self.cache:
                self.cache[t] = self.level.retriever.get_scores([t])
            score += v * self.cache[t]
        if row["as_of"]:
            score = np.where(Filters(as_of=row["as_of"]).mask(self.level.outlets, self.level.days),
                             score, 0)
        top = np.argsort(-score)[:100]
        return [(self.level.ids[i], float(score[i])) for i in top if score[i] > 0]


# --- 3. learned fusion ---------------------------------------------------------------------


def features(row: dict, days: dict[str, int]) -> tuple[list[str], Any]:
    """Candidate articles and their 11 features."""
    best: list[dict[str, float]] = [{}, {}]
    count: list[collections.Counter[str]] = [collections.Counter(), collections.Counter()]
    rank: list[dict[str, int]] = [{}, {}]
    for n, scored in enumerate((row["dense"], row["chunk"])):
        for r, (cid, v) in enumerate(scored):
            a = article_of(cid)
            best[n][a] = max(best[n].get(a, v), v)
            count[n][a] += 1
            rank[n].setdefault(a, r)
    whole = dict(row["article"])
    rank_whole = {a: r for r, (a, _) in enumerate(row["article"])}
    z = [zscores(best[0]), zscores(best[1]), zscores(whole)]
    floor = [min(s.values()) if s else 0.0 for s in z]
    candidates = sorted(set(best[0]) | set(best[1]))
    anchor = row["as_of"]
    if anchor is None and asks_for_latest(row["q"]["question"]):
        base = {a: 0.3 * z[0].get(a, floor[0]) + 0.2 * z[1].get(a, floor[1])
                + 0.5 * z[2].get(a, floor[2]) for a in candidates}
        newest = max((days.get(a, 0) for a in sorted(base, key=lambda a: -base[a])[:ANCHOR_POOL]),
                     default=0)
        anchor = day_of(newest) if newest else None
    matrix = []
    for a in candidates:
        age = (anchor - day_of(days[a])).days if anchor and days.get(a) else -1
        matrix.append([
            z[0].get(a, floor[0]), z[1].get(a, floor[1]), z[2].get(a, floor[2]),
            math.exp(-age / 60) if age >= 0 else 0.0, math.exp(-age / 7) if age >= 0 else 0.0,
            1 / (1 + rank[0].get(a, 300)), 1 / (1 + rank[1].get(a, 300)),
            1 / (1 + rank_whole.get(a, 300)),
            math.log1p(count[0][a]), math.log1p(count[1][a]), float(a in whole),
        ])
    return candidates, np.array(matrix)


DEFAULT_WEIGHTS = np.array([0.3, 0.2, 0.5, 0.8, 0, 0, 0, 0, 0, 0, 0], dtype=float)


def fit(data: list[tuple[list[str], Any, Any]], l2: float) -> Any:
    """Listwise softmax regression, regularised towards the default weights."""
    from scipy.optimize import minimize

    def loss(w: Any) -> tuple[float, Any]:
        total, grad = 0.0, np.zeros_like(w)
        for _, x, y in data:
            if not y.any():
                continue
            s = x @ w
            s = s - s.max()
            p = np.exp(s)
            p /= p.sum()
            t = y / y.sum()
            total -= float(t @ (s - math.log(np.exp(s).sum())))
            grad += x.T @ (p - t)
        d = w - DEFAULT_WEIGHTS
        return total / len(data) + 0.5 * l2 * d @ d, grad / len(data) + l2 * d

    return minimize(loss, DEFAULT_WEIGHTS, jac=True, method="L-BFGS-B").x


def learned(rows: list[dict], days: dict[str, int], l2: float, folds: int = 5) -> tuple[float, float]:
    """Cross-validated hit@1/hit@5 of the learned fusion."""
    data = []
    for row in rows:
        candidates, x = features(row, days)
        rel = set(row["q"]["relevant_doc_ids"])
        data.append((candidates, x, np.array([a in rel for a in candidates], dtype=float)))
    order = np.random.default_rng(0).permutation(len(data))
    rankings: dict[int, list[str]] = {}
    for k, test in enumerate(np.array_split(order, folds)):
        train = [data[i] for f, part in enumerate(np.array_split(order, folds)) if f != k
                 for i in part]
        w = fit(train, l2)
        for i in test:
            candidates, x, _ = data[i]
            rankings[int(i)] = [candidates[j] for j in np.argsort(-(x @ w), kind="stable")]
    return hits([rankings[i] for i in range(len(rows))],
                [set(r["q"]["relevant_doc_ids"]) for r in rows])


# --- 4. sentence windows -------------------------------------------------------------------


class Windows:
    """BM25 over windows of 3 sentences of every article (stride 2)."""

    def __init__(self, store: Store) -> None:
        import bm25s

        self.ids: list[str] = []
        texts, days = [], []
        for summary in store.list_articles():
            article = store.get_article(summary.id)
            spans = sentence_spans(article.text)
            for i in range(0, len(spans), 2):
                part = spans[i:i + 3]
                self.ids.append(f"{article.id}#w#{i}")
                texts.append(f"{article.title}. {article.text[part[0][0]:part[-1][1]]}")
                days.append(day_number(article.published))
        self.days = np.array(days)
        self.bm25 = bm25s.BM25(**BM25_PARAMS)
        self.bm25.index(tokenize(texts), show_progress=False)

    def search(self, row: dict, k: int = 400) -> Scored:
        vocab = self.bm25.vocab_dict
        words = [w for w in tokenize([row["q"]["question"]], return_ids=False)[0] if w in vocab]
        if not words:
            return []
        mask = None
        if row["as_of"]:
            mask = ((self.days <= day_number(row["as_of"])) & (self.days > 0)).astype(np.float32)
        docs, scores = self.bm25.retrieve([words], k=k, show_progress=False, weight_mask=mask,
                                          n_threads=1)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


def windows_ranking(row: dict, window: Scored, days: dict[str, int], settings: Settings,
                    weights: tuple[float, float, float, float]) -> list[str]:
    """Article ranking from four signals (dense, chunk, article, window), z-scored and summed."""
    parts, candidates = [], set()
    for scored, weight, chunk_level in ((row["dense"], weights[0], True),
                                        (row["chunk"], weights[1], True),
                                        (row["article"], weights[2], False),
                                        (window, weights[3], True)):
        if not scored or not weight:
            continue
        best: dict[str, float] = {}
        for key, v in scored:
            a = article_of(key) if chunk_level else key
            best[a] = max(best.get(a, v), v)
        if chunk_level:
            candidates |= set(best)
        z = zscores(best)
        parts.append((z, weight, min(z.values())))
    score = {a: sum(w * z.get(a, lo) for z, w, lo in parts) for a in candidates}
    rec = recency(row, days, settings)
    if rec:
        boost = rec[1]
        if boost.anchor is None:
            lead = sorted(score, key=lambda a: -score[a])[:ANCHOR_POOL]
            newest = max((days.get(a, 0) for a in lead), default=0)
            boost = boost.model_copy(update={"anchor": day_of(newest) if newest else None})
        score = {a: v + boost.boost(days.get(a, 0)) for a, v in score.items()}
    return sorted(score, key=lambda a: (-score[a], a))


# --- 5. label check ------------------------------------------------------------------------


def strictly_relevant(q: dict, store: Store) -> set[str]:
    """Relevant articles with a sentence holding the answer and two of the question's words."""
    answers = [normalise(a) for a in q["answers"] if normalise(a)]
    asked = set(tokenize([q["question"]], return_ids=False)[0])
    for a in q["answers"]:
        asked -= set(tokenize([a], return_ids=False)[0])
    keep = set()
    for article_id in q["relevant_doc_ids"]:
        article = store.get_article(article_id)
        text = f"{article.title}. {article.text}"
        for s, e in sentence_spans(text):
            sentence = normalise(text[s:e])
            if any(re.search(rf"\b{re.escape(a)}\b", sentence) for a in answers) and \
                    len(asked & set(tokenize([text[s:e]], return_ids=False)[0])) >= 2:
                keep.add(article_id)
                break
    return keep


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="dev", choices=["dev-small", "dev"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    found = indexed_set(args.set, args.out)
    if found is None:
        return
    data_dir, questions = found
    settings = get_settings(data_dir=data_dir)
    store = open_store(settings)
    days = store.keyword_index().articles.published_days()
    feedback, windows = Feedback(store), Windows(store)
    print(f"{args.set}: {len(questions)} questions over {store.count_articles()} articles\n")
    print("| variant | hit@1 | hit@5 | hit@1, as_of | hit@5, as_of |\n|---|---|---|---|---|")
    rows_by = {flag: collect(questions, store, settings, flag) for flag in (False, True)}
    relevant = [set(q["relevant_doc_ids"]) for q in questions]

    def line(name: str, rank: Callable[[dict], list[str]] | None = None,
             scores: dict[bool, tuple[float, float]] | None = None) -> None:
        cells = []
        for flag in (False, True):
            h = scores[flag] if scores else hits([rank(r) for r in rows_by[flag]], relevant)  # type: ignore[misc]
            cells += [f"{h[0]:.3f}", f"{h[1]:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)

    line("default fusion", lambda r: default_ranking(r, days, settings))
    for docs, terms, lam in ((3, 20, 0.3), (5, 20, 0.3), (10, 20, 0.3), (10, 40, 0.3), (10, 20, 0.5)):
        def expanded(r: dict, d: int = docs, t: int = terms, la: float = lam) -> list[str]:
            first = default_ranking(r, days, settings)
            return default_ranking(r, days, settings, feedback.scores(r, first, d, t, la))

        line(f"feedback: {docs} articles, {terms} terms, weight {lam}", expanded)
    for l2 in (0.01, 0.1, 1.0):
        line(f"learned fusion, 5-fold CV, l2 {l2}",
             scores={flag: learned(rows_by[flag], days, l2) for flag in (False, True)})
    window_scores = {flag: [windows.search(r) for r in rows_by[flag]] for flag in (False, True)}
    for weights in ((0.3, 0.0, 0.5, 0.2), (0.3, 0.1, 0.5, 0.1), (0.3, 0.2, 0.5, 0.2)):
        scores = {flag: hits([windows_ranking(r, w, days, settings, weights)
                              for r, w in zip(rows_by[flag], window_scores[flag], strict=True)],
                             relevant) for flag in (False, True)}
        line(f"sentence windows, weights (dense, chunk, article, window) {weights}", scores=scores)

    strict = [strictly_relevant(q, store) for q in questions]
    keep = [i for i, s in enumerate(strict) if s]
    print(f"\nlabel check: {len(keep)} of {len(questions)} questions have a strictly relevant "
          "article (a sentence with the answer and two of the question's words)")
    print("| labels | questions | hit@1 | hit@5 | hit@1, as_of | hit@5, as_of |\n|---|---|---|---|---|---|")
    for name, labels, subset in (("relevant_doc_ids", relevant, range(len(questions))),
                                 ("relevant_doc_ids, those questions", relevant, keep),
                                 ("strictly relevant", strict, keep)):
        cells = []
        for flag in (False, True):
            ranked = [default_ranking(rows_by[flag][i], days, settings) for i in subset]
            h = hits(ranked, [labels[i] for i in subset])
            cells += [f"{h[0]:.3f}", f"{h[1]:.3f}"]
        print(f"| {name} | {len(subset)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
