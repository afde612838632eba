"""Find the chunks that answer a question: dense (Chroma) and BM25 results, fused.

``retrieve(question, filters)`` is the entry point.  Filters (outlets, date range, ``as_of``) are
applied inside each store, before the top-k cut: Chroma searches only the admitted chunk ids, BM25
takes a weight mask.  Fusion (``fuse``) z-normalises each signal's scores and sums them with the
configured weights, articles first and then chunks within them, plus a recency boost for
questions asked as of a day or about the present.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from datetime import date
from typing import Any

from pydantic import BaseModel, Field, model_validator

from assistant.errors import NothingIndexed
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder, get_embedder
from index.store import IndexedChunk, Store, day_number, day_of, open_store


class Filters(BaseModel):
    """Which articles a question may draw on."""

    outlets: list[str] | None = Field(None, description="Only these outlets.")
    since: date | None = Field(None, description="Only articles published on or after this day.")
    until: date | None = Field(None, description="Only articles published on or before this day.")
    as_of: date | None = Field(
        None, description="Answer as of this day: only articles published on or before it."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Filters:
        if self.since and self.latest and self.since > self.latest:
            raise ValueError("'since' is after 'until'/'as_of': no article can match")
        return self

    @property
    def latest(self) -> date | None:
        """The effective upper bound on publication day."""
        bounds = [d for d in (self.until, self.as_of) if d]
        return min(bounds) if bounds else None

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return bool(self.outlets or self.since or self.latest)

    def chroma_where(self) -> dict[str, Any] | None:
        """The filters as a Chroma ``where`` clause. Undated articles fail any date bound."""
        terms: list[dict[str, Any]] = []
        if self.outlets:
            terms.append({"outlet": {"$in": list(self.outlets)}})
        if self.since:
            terms.append({"published": {"$gte": day_number(self.since)}})
        if self.latest:
            terms.append({"published": {"$lte": day_number(self.latest)}})
            terms.append({"published": {"$gt": 0}})
        if not terms:
            return None
        return terms[0] if len(terms) == 1 else {"$and": terms}

    def mask(self, outlets: Any, days: Any) -> Any:
        """The filters as a boolean mask over aligned outlet/day arrays (for BM25)."""
        import numpy as np

        keep = np.ones(len(days), dtype=bool)
        if self.outlets:
            keep &= np.isin(outlets, list(self.outlets))
        if self.since:
            keep &= days >= day_number(self.since)
        if self.latest:
            keep &= (days <= day_number(self.latest)) & (days > 0)
        return keep


class Hit(BaseModel):
    """One retrieved chunk with its fused score and the rank each retriever gave it."""

    chunk_id: str
    article_id: str
    score: float
    dense_rank: int | None = None
    keyword_rank: int | None = None


class Retrieval(BaseModel):
    """Fused hits plus how long each part took."""

    hits: list[Hit]
    timings: dict[str, float]

    def chunks(self, store: Store) -> list[tuple[Hit, IndexedChunk]]:
        """The hits with their catalog rows, in rank order."""
        rows = store.chunks([h.chunk_id for h in self.hits])
        return [(h, rows[h.chunk_id]) for h in self.hits if h.chunk_id in rows]


Scored = list[tuple[str, float]]


def retrieve(
    question: str,
    filters: Filters | None = None,
    *,
    mode: str | None = None,
    k: int | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
) -> Retrieval:
    """The ``k`` chunks most likely to answer ``question`` within ``filters``.

    ``mode`` is "dense" (Chroma only), "bm25" (keyword signals only) or "hybrid" (both).
    Raises NothingIndexed when the index is empty.
    """
    settings = settings or get_settings()
    store = store or open_store(settings)
    filters = filters or Filters()
    mode = mode or settings.retrieval.retriever
    k = k or settings.retrieval.top_k
    if store.count_articles() == 0:
        raise NothingIndexed(settings.index.data_dir)
    timings: dict[str, float] = {}
    dense: Scored = []
    chunk_bm25: Scored = []
    article_bm25: Scored = []
    if mode in ("dense", "hybrid"):
        started = time.perf_counter()
        dense = _dense(
            question, filters, 2 * settings.retrieval.candidates, store, embedder or get_embedder(settings)
        )
        timings["dense"] = time.perf_counter() - started
    if mode in ("bm25", "hybrid"):
        started = time.perf_counter()
        chunk_bm25, article_bm25 = _keyword(question, filters, settings.retrieval.candidates, store)
        timings["bm25"] = time.perf_counter() - started
    weights = settings.retrieval.fusion_weights
    recency_arg = None
    recency = recency_for(question, filters, settings)
    if recency is not None:
        days = store.keyword_index().articles.published_days()
        recency_arg = (days, recency)
    hits = fuse(
        dense=(dense, weights["dense"]),
        chunk_bm25=(chunk_bm25, weights["chunk_bm25"]),
        article_bm25=(article_bm25, weights["article_bm25"]),
        recency=recency_arg,
        chunk_weight=settings.retrieval.chunk_weight,
    )
    known = store.chunks([h.chunk_id for h in hits[: 4 * k]])  # skip vectors of an interrupted write
    return Retrieval(hits=[h for h in hits if h.chunk_id in known][:k], timings=timings)


def _dense(question: str, filters: Filters, n: int, store: Store, embedder: Embedder) -> Scored:
    """The ``n`` chunks nearest the question among those the filters admit.

    Filters reach Chroma as the list of admitted chunk ids, computed from the catalog facets
    the keyword index holds: Chroma searches only those.  That is several times faster than
    a metadata ``where`` clause, whose cost grows with the chunks it admits (30-40 ms for
    7,500 of the dev index's 9,150 vectors, against 4-6 ms); the clause remains the fallback.
    """
    vector = embedder.embed_query(question)
    query: dict[str, Any] = {}
    if filters.active:
        level = store.keyword_index().chunks
        admitted = level.select(filters.mask(level.outlets, level.days), dense=True)
        if not admitted:
            return []
        query["ids"] = admitted
    try:
        result = store.collection.query(
            query_embeddings=[vector], n_results=n, include=["distances"], **query
        )
    except Exception:  # e.g. an admitted vector gone missing since the catalog was read
        if not filters.active:
            raise
        result = store.collection.query(
            query_embeddings=[vector], n_results=n, where=filters.chroma_where(),
            include=["distances"],
        )
    return [(cid, 1.0 - dist) for cid, dist in zip(result["ids"][0], result["distances"][0], strict=True)]


def _keyword(question: str, filters: Filters, n: int, store: Store) -> tuple[Scored, Scored]:
    index = store.keyword_index()
    out: list[Scored] = []
    for level, size in ((index.chunks, 4 * n), (index.articles, 2 * n)):
        mask = filters.mask(level.outlets, level.days) if filters.active else None
        out.append([] if mask is not None and not mask.any() else level.search(question, size, mask))
    return out[0], out[1]


_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_LATEST = re.compile(
    r"\b(?:current(?:ly)?|latest|newest|most recent(?:ly)?|now|nowadays|still|so far|to date|"
    r"these days|at present|presently|incumbent|recent(?:ly)?|today|tonight|yesterday|"
    r"(?:this|last|past) (?:week(?:end)?|month|year)|(?:on|last|this) " + _DAY + r"|" + _DAY
    + r"'s)\b",
    re.IGNORECASE,
)


def asks_for_latest(question: str) -> bool:
    """True for questions about the present or the recent past ('the current ...', 'latest',
    'this week', 'on Monday'): their answer is in the newest reporting."""
    return bool(_LATEST.search(question))


def recency_for(question: str, filters: Filters, settings: Settings) -> Recency | None:
    """How recency counts for this question, or None when it does not.

    A question asked ``as_of`` a day is about the news around that day: articles published
    shortly before it are favoured.  Otherwise, with ``recency="auto"``, only questions about
    the present or the recent past are, anchored to the newest of the best-matching articles.
    """
    if settings.retrieval.recency == "off" or not settings.retrieval.recency_weight:
        return None
    if not filters.as_of and settings.retrieval.recency == "auto" and not asks_for_latest(question):
        return None
    return Recency(
        anchor=filters.as_of, weight=settings.retrieval.recency_weight, scale_days=settings.retrieval.recency_days
    )


ANCHOR_POOL = 10  # articles whose newest publication day anchors an undated "latest" question


class Recency(BaseModel):
    """A boost for articles published shortly before the anchor day, fading with age."""

    anchor: date | None = Field(
        None, description="The day asked from; None: the newest of the best-matching articles."
    )
    weight: float
    scale_days: float

    def boost(self, published: int) -> float:
        """``weight * exp(-age / scale_days)`` for a YYYYMMDD day on or before the anchor, else 0."""
        if not published or self.anchor is None:
            return 0.0
        age = (self.anchor - day_of(published)).days
        return self.weight * math.exp(-age / self.scale_days) if age >= 0 else 0.0


def article_of(chunk_id: str) -> str:
    """The article id inside a chunk id ('ARTICLE#HASH#N')."""
    return chunk_id.rsplit("#", 2)[0]


def _zscores(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    values = list(scores.values())
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values) or 1.0
    return {key: (value - mean) / spread for key, value in scores.items()}


def fuse(
    *,
    dense: tuple[Scored, float],
    chunk_bm25: tuple[Scored, float],
    article_bm25: tuple[Scored, float],
    recency: tuple[dict[str, int], Recency] | None = None,
    chunk_weight: float = 0.5,
) -> list[Hit]:
    """Score fusion at two levels: articles first, then chunks within that order.

    Each signal's scores are z-normalised over its own candidates (an absent candidate gets
    the signal's lowest z), then combined with the given weights.  An article's score is its
    weighted sum of: best dense chunk similarity, best BM25 chunk score, whole-article BM25.
    A chunk scores its article's score plus ``chunk_weight`` times its own weighted z-score,
    so the best article's best chunk comes first.  Normalised score fusion beat reciprocal
    rank fusion on RealTime QA (benchmarks/RESULTS.md).  ``recency`` (article id → YYYYMMDD,
    and the boost) adds to each article's score a boost that fades with its age at the anchor.
    """
    signals = {"dense": dense, "chunk": chunk_bm25}
    per_article: list[tuple[dict[str, float], float]] = []
    per_chunk: list[tuple[dict[str, float], float]] = []
    for scored, weight in signals.values():
        if not scored or not weight:
            continue
        best: dict[str, float] = {}
        for chunk_id, value in scored:
            article = article_of(chunk_id)
            best[article] = max(best.get(article, value), value)
        per_article.append((_zscores(best), weight))
        per_chunk.append((_zscores(dict(scored)), weight))
    if article_bm25[0] and article_bm25[1]:
        per_article.append((_zscores(dict(article_bm25[0])), article_bm25[1]))

    def combined(parts: list[tuple[dict[str, float], float]], key: str) -> float:
        return sum(w * z.get(key, min(z.values())) for z, w in parts)

    ranks = {name: {cid: r for r, (cid, _) in enumerate(scored, 1)} for name, (scored, _) in signals.items()}
    chunks = set(ranks["dense"]) | set(ranks["chunk"])
    candidates = {article_of(c) for c in chunks}
    article_score = {a: combined(per_article, a) for a in candidates}
    if recency:
        days, boost = recency
        if boost.anchor is None:
            leaders = sorted(article_score, key=lambda a: -article_score[a])[:ANCHOR_POOL]
            newest = max((days.get(a, 0) for a in leaders), default=0)
            boost = boost.model_copy(update={"anchor": day_of(newest) if newest else None})
        article_score = {a: v + boost.boost(days.get(a, 0)) for a, v in article_score.items()}
    scored_chunks = sorted(
        ((article_score[article_of(c)] + chunk_weight * combined(per_chunk, c), c) for c in chunks),
        key=lambda t: (-t[0], t[1]),
    )
    return [
        Hit(
            chunk_id=c,
            article_id=article_of(c),
            score=round(score, 6),
            dense_rank=ranks["dense"].get(c),
            keyword_rank=ranks["chunk"].get(c),
        )
        for score, c in scored_chunks
    ]
