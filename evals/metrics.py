"""The evaluation metrics, each a small pure function over plain values.

Per question: retrieval (hit@k, reciprocal rank over distinct articles), answers (normalised
containment of an accepted answer), citations (validity against the stored article text,
precision, recall).  Over a run: means that skip questions a metric does not apply to,
refusal accuracy, false-refusal rate and latency percentiles.

A metric that does not apply (no relevant ids, no accepted answers, no citations) is ``None``,
never 0, so it cannot drag an average down.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

EVAL_TOP_K = 20
"""Chunks retrieved per question during evaluation (the app's default top_k is 8).

hit@10 needs ten distinct articles among the answer's sources, and chunks of one article often
sit side by side, so evaluation asks for 20 chunks.  The generator sees all of them, so answers
may differ slightly from the app's at its default."""

HIT_KS = (1, 3, 5, 10)
"""The cut-offs reported for hit@k."""

MRR_CUTOFF = 10
"""Reciprocal rank counts a relevant article only within the first 10 distinct articles."""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation) | {"“", "”", "‘", "’", "–", "—", "…"}


def normalise(text: str) -> str:
    """SQuAD-style normalisation: lower case, no accents, punctuation or articles, single spaces.

    As in SQuAD, punctuation is deleted rather than spaced ("51.9%" → "519", "U.S." → "us"), so
    an answer and the text it appears in normalise the same way.
    """
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c) and c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains_answer(text: str, answers: Sequence[str]) -> bool | None:
    """True when a normalised accepted answer occurs in the normalised text as whole words.

    Whole words, so "Cameron" is not found in "Cameroon" and "20" not in "2020".  ``None`` when
    there is no accepted answer to look for.
    """
    wanted = [n for n in (normalise(a) for a in answers) if n]
    if not wanted:
        return None
    haystack = f" {normalise(text)} "
    return any(f" {answer} " in haystack for answer in wanted)


def short_answer_exact(short: str | None, answers: Sequence[str]) -> bool | None:
    """True when the short answer, normalised, equals an accepted answer; False when there is
    none or it differs; ``None`` when there is no accepted answer to compare with."""
    wanted = {n for n in (normalise(a) for a in answers) if n}
    if not wanted:
        return None
    return short is not None and normalise(short) in wanted


def distinct(ids: Iterable[str]) -> list[str]:
    """Ids in first-seen order, each once (chunks of one article count as one article)."""
    return list(dict.fromkeys(ids))


def hit_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float | None:
    """1.0 if a relevant article is among the first ``k`` of ``ranked``, else 0.0.

    ``ranked`` is a list of distinct article ids; ``None`` when nothing is relevant.
    """
    wanted = set(relevant)
    if not wanted:
        return None
    return 1.0 if wanted.intersection(ranked[:k]) else 0.0


def reciprocal_rank(
    ranked: Sequence[str], relevant: Iterable[str], cutoff: int = MRR_CUTOFF
) -> float | None:
    """1/rank of the first relevant article within ``cutoff`` (0.0: none; ``None``: no target)."""
    wanted = set(relevant)
    if not wanted:
        return None
    for rank, article_id in enumerate(ranked[:cutoff], start=1):
        if article_id in wanted:
            return 1.0 / rank
    return 0.0


class CitationLike(Protocol):
    """What the citation metrics read from ``assistant.models.Citation``."""

    article_id: str
    quote: str
    start: int
    end: int
    supported: bool


class SentenceLike(Protocol):
    """What citation recall reads from ``assistant.models.AnswerSentence``."""

    supported: bool


def citation_valid(citation: CitationLike, article_text: str | None) -> bool:
    """The quote is exactly ``article_text[start:end]`` (False when the article is unknown)."""
    if article_text is None or not 0 <= citation.start < citation.end <= len(article_text):
        return False
    return article_text[citation.start : citation.end] == citation.quote


def citation_validity(
    citations: Sequence[CitationLike], texts: Mapping[str, str | None]
) -> float | None:
    """Share of citations whose quote is verbatim in the stored article (``None``: no citations)."""
    if not citations:
        return None
    return sum(citation_valid(c, texts.get(c.article_id)) for c in citations) / len(citations)


def citation_precision(citations: Sequence[CitationLike]) -> float | None:
    """Share of citations whose span supports the sentence that cites it (ALCE precision)."""
    if not citations:
        return None
    return sum(c.supported for c in citations) / len(citations)


def citation_recall(sentences: Sequence[SentenceLike], dropped: Sequence[object] = ()) -> float | None:
    """Share of the sentences the writer wrote with at least one supporting citation (ALCE
    recall): the answer's sentences plus those the citation check removed (``dropped``), so a
    writer whose claims lose their citations scores below 1 even though its answer never shows
    them."""
    written = len(sentences) + len(dropped)
    if not written:
        return None
    return sum(s.supported for s in sentences) / written


def mean(values: Iterable[float | bool | None]) -> float | None:
    """Mean of the values that are not ``None``; ``None`` when there are none."""
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def refusal_accuracy(answerable: Sequence[bool], refused: Sequence[bool]) -> float | None:
    """Share of the unanswerable questions that were refused; ``None`` when there are none."""
    return mean(r for a, r in zip(answerable, refused, strict=True) if not a)


def false_refusal_rate(answerable: Sequence[bool], refused: Sequence[bool]) -> float | None:
    """Share of the answerable questions that were refused anyway; ``None`` when there are none."""
    return mean(r for a, r in zip(answerable, refused, strict=True) if a)


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of the values that are not ``None``; ``None`` if empty.

    Linear interpolation between the closest ranks (numpy's default method), so the 50th
    percentile is the median and the 0th and 100th are the minimum and the maximum.
    """
    data = [v for v in values if v is not None]
    if not data:
        return None
    import numpy as np  # here: `newsdesk` loads this module, and numpy adds 0.15 s to every start

    return float(np.percentile(data, q))
