"""The bounded keyword search (MaxScore over the question's terms): the same top k as adding
up every posting, to the last bit of every score and the order of every tie, while adding up
only the postings of the terms that can bring a document into the top k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from index import maxscore


@dataclass
class Postings:
    docs: Any
    unit: Any
    top: float

    def at(self, positions: Any) -> Any:
        return self.unit[positions]


def term(rng: np.random.Generator, n_docs: int, df: int, shares: Any) -> Postings:
    """``df`` random documents of ``n_docs``, each with a share drawn from ``shares`` (a
    handful of values, so that many documents tie)."""
    docs = np.sort(rng.choice(n_docs, df, replace=False)).astype(np.int32)
    unit = rng.choice(shares, df)
    return Postings(docs, unit, float(unit.max()))


def add_up(asked: Any) -> tuple[Any, Any]:
    """Every posting added, term after term: what ``KeywordCache.sum_by_document`` does."""
    docs = np.unique(np.concatenate([p.docs for _, p in asked]))
    sums = np.zeros(len(docs))
    for weight, p in asked:
        sums[np.searchsorted(docs, p.docs)] += weight * p.unit
    return docs, sums


def ranked(docs: Any, scores: Any, k: int) -> list[tuple[float, int]]:
    """The k best (score, document), ties to the lower document, as the search orders them."""
    return [(-s, d) for s, d in sorted(zip((-scores).tolist(), docs.tolist(), strict=True))[:k]]


SHARES = np.array([0.35, 0.47, 0.52, 0.61, 0.7, 0.84, 0.9])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("k", "admitted"), [(1, 1.0), (20, 1.0), (200, 1.0), (20, 0.3), (50, 0.02)])
def test_the_top_k_equals_the_exhaustive_sums(seed: int, k: int, admitted: float) -> None:
    rng = np.random.default_rng(seed)
    n_docs = 200_000
    dfs = [int(x) for x in rng.choice([40, 900, 6_000, 30_000, 90_000], size=rng.integers(2, 6))]
    asked = [(float(np.log(1 + (n_docs - df + 0.5) / (df + 0.5))) * rng.integers(1, 3),
              term(rng, n_docs, df, SHARES)) for df in dfs]
    live = rng.random(n_docs) < admitted

    def admits(docs: Any) -> Any:
        return live[docs]

    docs, scores = add_up(asked)
    expected = ranked(docs[admits(docs)], scores[admits(docs)], k)
    got_docs, got_scores = maxscore.candidates(asked, k, admits, add_up)
    assert admits(got_docs).all()
    assert ranked(got_docs, got_scores, k) == expected  # floats compared exactly


def test_common_terms_are_only_looked_up_for_the_documents_within_reach() -> None:
    rng = np.random.default_rng(7)
    n_docs = 500_000
    rare = term(rng, n_docs, 300, SHARES)
    common = [term(rng, n_docs, df, SHARES) for df in (150_000, 200_000, 250_000)]
    asked = [(0.9, common[0]), (7.5, rare), (0.7, common[1]), (0.5, common[2])]
    summed: list[int] = []

    def spy(part: Any) -> tuple[Any, Any]:
        summed.append(sum(len(p.docs) for _, p in part))
        return add_up(part)

    def admits(docs: Any) -> Any:
        return np.ones(len(docs), dtype=bool)

    docs, scores = maxscore.candidates(asked, 100, admits, spy)
    assert summed == [300]  # the rare term's postings alone were added up
    assert len(docs) <= 300
    every = add_up(asked)
    assert ranked(docs, scores, 100) == ranked(*every, 100)


def test_a_narrow_filter_is_applied_to_the_postings_before_they_are_added_up() -> None:
    rng = np.random.default_rng(3)
    n_docs = 300_000
    asked = [(2.0, term(rng, n_docs, df, SHARES)) for df in (50_000, 80_000)]
    summed: list[list[Any]] = []

    def spy(part: Any) -> tuple[Any, Any]:
        summed.append([p.docs for _, p in part])
        return add_up(part)

    def admits(docs: Any) -> Any:
        return docs % 1000 == 0  # 0.1% of the archive: an outlet of its own

    docs, scores = maxscore.candidates(asked, 200, admits, spy)
    assert len(summed) == 1
    assert [len(d) for d in summed[0]] == [int(admits(p.docs).sum()) for _, p in asked]
    every, sums = add_up(asked)
    assert ranked(docs, scores, 200) == ranked(every[admits(every)], sums[admits(every)], 200)
