"""Fusion: many searches' scored candidates in, one ranking of chunks out.

``Fusion.fuse(signals)`` is the entry point.  A ``Signal`` is one search's scored candidates (dense
similarity over chunks, BM25 over chunks, BM25 over whole articles, ...).  Each signal's scores
are z-normalised over its own candidates and summed with the signal's weight, articles first and
then chunks within them, plus an optional recency boost (``Recency``) for questions asked as of
a day or about the present.  Normalised score fusion beat reciprocal rank fusion on RealTime QA
(benchmarks/RESULTS.md).

This module knows nothing of stores or embedders: the retrievers (``assistant.retrieve``) run
the searches and hand their signals here.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from assistant.errors import ConfigError
from assistant.settings import Settings
from index.store import day_of

Scored = list[tuple[str, float]]
"""(id, score) pairs, best first; higher scores are better."""

ANCHOR_POOL = 10
"""Articles whose newest publication day anchors an undated "latest" question."""


@dataclass(frozen=True)
class Signal:
    """One search's scored candidates, as fusion takes them.

    ``name`` picks the signal's fusion weight ("dense", "chunk_bm25", "article_bm25").
    ``level`` says what the ids are: chunk ids ('ARTICLE#HASH#N'), which can become hits, or
    article ids, which only add to their article's score.
    """

    name: str
    scored: Scored
    level: Literal["chunk", "article"] = "chunk"


class Hit(BaseModel):
    """One retrieved chunk with its fused score and the rank each retriever gave it."""

    chunk_id: str
    article_id: str
    score: float
    dense_rank: int | None = Field(None, description="1-based rank in the 'dense' signal.")
    keyword_rank: int | None = Field(None, description="1-based rank in the 'chunk_bm25' signal.")


class Recency(BaseModel):
    """A boost for articles published shortly before the anchor day, fading with age."""

    anchor: date | None = Field(
        None, description="The day asked from; None: the newest of the best-matching articles."
    )
    weight: float
    scale_days: float

    def boost(self, published: int) -> float:
        """``weight * exp(-age / scale_days)`` for a YYYYMMDD day on or before the anchor;
        0 for a later or unknown (0) day, or with no anchor."""
        if not published or self.anchor is None:
            return 0.0
        age = (self.anchor - day_of(published)).days
        return self.weight * math.exp(-age / self.scale_days) if age >= 0 else 0.0


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


def article_of(chunk_id: str) -> str:
    """The article id inside a chunk id ('ARTICLE#HASH#N')."""
    return chunk_id.rsplit("#", 2)[0]


def zscores(scores: Mapping[str, float]) -> dict[str, float]:
    """Each score as (score - mean) / population stdev over ``scores``; a stdev of 0 counts as 1,
    so equal scores all become 0.  Empty in, empty out."""
    if not scores:
        return {}
    values = list(scores.values())
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values) or 1.0
    return {key: (value - mean) / spread for key, value in scores.items()}


_Parts = list[tuple[dict[str, float], float]]  # (z-scores, weight) per signal


@dataclass(frozen=True)
class Fusion:
    """Weighted z-score fusion of signals, articles first, plus a recency boost.

    ``weights`` maps each signal name to its weight (a signal weighted 0 still proposes its
    chunks as candidates but adds nothing to any score).  ``chunk_weight`` scales a chunk's own
    score against its article's.  ``recency``, ``recency_weight`` and ``recency_days`` decide
    when and how much newer reporting is favoured (see ``recency_for``).
    """

    weights: Mapping[str, float]
    chunk_weight: float = 0.5
    recency: Literal["auto", "on", "off"] = "auto"
    recency_weight: float = 0.8
    recency_days: float = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> Fusion:
        """The fusion the retrieval settings describe."""
        r = settings.retrieval
        return cls(
            weights=dict(r.fusion_weights),
            chunk_weight=r.chunk_weight,
            recency=r.recency,
            recency_weight=r.recency_weight,
            recency_days=r.recency_days,
        )

    def recency_for(self, question: str, as_of: date | None) -> Recency | None:
        """How recency counts for this question, or None when it does not.

        A question asked ``as_of`` a day is about the news around that day: articles published
        shortly before it are favoured.  Otherwise, with ``recency="auto"``, only questions about
        the present or the recent past are (``asks_for_latest``), anchored to the newest of the
        best-matching articles.  ``recency="off"`` or a zero weight: always None.
        """
        if self.recency == "off" or not self.recency_weight:
            return None
        if not as_of and self.recency == "auto" and not asks_for_latest(question):
            return None
        return Recency(anchor=as_of, weight=self.recency_weight, scale_days=self.recency_days)

    def weight(self, signal: str) -> float:
        """The weight of the named signal. Raises ConfigError for a signal with no weight."""
        try:
            return self.weights[signal]
        except KeyError:
            raise ConfigError(
                f"no fusion weight for the signal {signal!r}",
                hint=f"give NEWSDESK_FUSION_WEIGHTS a weight for each of {sorted(self.weights)} "
                f"and {signal!r}",
            ) from None

    def fuse(
        self,
        signals: Sequence[Signal],
        *,
        recency: Recency | None = None,
        published: Mapping[str, int] | None = None,
    ) -> list[Hit]:
        """Every candidate chunk of the chunk-level signals as a hit, best first.

        Each signal's scores are z-normalised over its own candidates (an absent candidate gets
        the signal's lowest z), then summed with the signal's weight.  An article's score sums,
        over the signals: a chunk-level signal's best z among the article's chunks, an
        article-level signal's z for the article.  A chunk scores its article's score plus
        ``chunk_weight`` times its own weighted z-score over the chunk-level signals, so the best
        article's best chunk comes first; ties go to the smaller chunk id.  With ``recency``,
        each article's score gains ``recency.boost`` of its day in ``published`` (article id →
        YYYYMMDD; absent: no boost); an anchor of None becomes the newest day among the
        ``ANCHOR_POOL`` best articles.  Scores are rounded to 6 decimals.
        """
        per_article: _Parts = []
        per_chunk: _Parts = []
        ranks: dict[str, dict[str, int]] = {}
        for signal in signals:
            weight = self.weight(signal.name)
            if signal.level == "chunk":
                ranks[signal.name] = {cid: r for r, (cid, _) in enumerate(signal.scored, 1)}
            if not signal.scored or not weight:
                continue
            if signal.level == "article":
                per_article.append((zscores(dict(signal.scored)), weight))
                continue
            best: dict[str, float] = {}
            for chunk_id, value in signal.scored:
                article = article_of(chunk_id)
                best[article] = max(best.get(article, value), value)
            per_article.append((zscores(best), weight))
            per_chunk.append((zscores(dict(signal.scored)), weight))

        chunks = {cid for ranked in ranks.values() for cid in ranked}
        article_score = {a: _combined(per_article, a) for a in {article_of(c) for c in chunks}}
        if recency:
            article_score = _boosted(article_score, recency, published or {})
        scored_chunks = sorted(
            (
                (article_score[article_of(c)] + self.chunk_weight * _combined(per_chunk, c), c)
                for c in chunks
            ),
            key=lambda t: (-t[0], t[1]),
        )
        dense, keyword = ranks.get("dense", {}), ranks.get("chunk_bm25", {})
        return [
            Hit(
                chunk_id=c,
                article_id=article_of(c),
                score=round(score, 6),
                dense_rank=dense.get(c),
                keyword_rank=keyword.get(c),
            )
            for score, c in scored_chunks
        ]


def _combined(parts: _Parts, key: str) -> float:
    """Weighted sum of ``key``'s z-scores; a signal that lacks ``key`` gives its lowest z."""
    return sum(w * z.get(key, min(z.values())) for z, w in parts)


def _boosted(
    article_score: dict[str, float], recency: Recency, published: Mapping[str, int]
) -> dict[str, float]:
    if recency.anchor is None:
        leaders = sorted(article_score, key=lambda a: -article_score[a])[:ANCHOR_POOL]
        newest = max((published.get(a, 0) for a in leaders), default=0)
        recency = recency.model_copy(update={"anchor": day_of(newest) if newest else None})
    return {a: v + recency.boost(published.get(a, 0)) for a, v in article_score.items()}
