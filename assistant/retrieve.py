"""Find the chunks that answer a question: dense (Chroma) and BM25 results, fused.

``retrieve(question, filters)`` is the entry point.  Filters (outlets, date range, ``as_of``) are
applied inside each store, before the top-k cut: a Chroma ``where`` clause and a BM25 weight mask.
Fusion is reciprocal rank fusion over chunk ranks.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from pydantic import BaseModel, Field, model_validator

from assistant.errors import NothingIndexed
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder, get_embedder
from index.store import IndexedChunk, Store, day_number, open_store


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

    Raises NothingIndexed when the index is empty.
    """
    settings = settings or get_settings()
    store = store or open_store(settings)
    filters = filters or Filters()
    mode = mode or settings.retriever
    k = k or settings.top_k
    if store.count_articles() == 0:
        raise NothingIndexed(settings.data_dir)
    timings: dict[str, float] = {}
    dense: list[str] = []
    keyword: list[str] = []
    if mode in ("dense", "hybrid"):
        started = time.perf_counter()
        dense = _dense(question, filters, settings.candidates, store, embedder or get_embedder(settings))
        timings["dense"] = time.perf_counter() - started
    if mode in ("bm25", "hybrid"):
        started = time.perf_counter()
        keyword = _keyword(question, filters, settings.candidates, store)
        timings["bm25"] = time.perf_counter() - started
    hits = fuse(dense, keyword, rrf_k=settings.rrf_k)
    known = store.chunks([h.chunk_id for h in hits])  # vectors of an interrupted write are not
    return Retrieval(hits=[h for h in hits if h.chunk_id in known][:k], timings=timings)


def _dense(
    question: str, filters: Filters, n: int, store: Store, embedder: Embedder
) -> list[str]:
    vector = embedder.embed_query(question)
    collection = store.collection
    result = collection.query(
        query_embeddings=[vector], n_results=n, where=filters.chroma_where(), include=[]
    )
    return list(result["ids"][0])


def _keyword(question: str, filters: Filters, n: int, store: Store) -> list[str]:
    index = store.keyword_index()
    mask = filters.mask(index.outlets, index.days) if filters.active else None
    if mask is not None and not mask.any():
        return []
    return [cid for cid, _ in index.search(question, n, mask)]


def fuse(*rankings: list[str], rrf_k: int = 60) -> list[Hit]:
    """Reciprocal rank fusion of ranked chunk-id lists (dense first, then keyword)."""
    scores: dict[str, float] = {}
    ranks: dict[str, list[int | None]] = {}
    for which, ranking in enumerate(rankings):
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            ranks.setdefault(chunk_id, [None] * len(rankings))[which] = rank
    order = sorted(scores, key=lambda c: -scores[c])
    hits = []
    for chunk_id in order:
        r = ranks[chunk_id] + [None, None]
        hits.append(
            Hit(
                chunk_id=chunk_id,
                article_id=chunk_id.rsplit("#", 2)[0],
                score=scores[chunk_id],
                dense_rank=r[0],
                keyword_rank=r[1],
            )
        )
    return hits
