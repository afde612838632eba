"""The exact top k of a BM25 sum without adding up every posting: MaxScore over the terms.

A question's common words ("said", a large city) hold postings in a fixed share of the archive,
so adding up every posting of every term costs in proportion to the archive.  Yet a document
enters the top k only if its score reaches the k-th best, and no term adds more to a score
than its weight times its largest share (its *bound*).  MaxScore (Turtle and Flood, 1995)
splits the terms: the lowest-bound ones whose bounds sum below a lower estimate of the k-th
best score cannot bring a document into the top k by themselves, so only documents holding one
of the other (*essential*) terms are candidates, and the *optional* terms are looked up for
the candidates still within reach, highest bound first.

The estimate is the k-th best exact score of a sample: the admitted documents holding the
highest-bound terms, those with the largest shares of them first.  The documents returned then
include every document of the exhaustive top k, with the same scores to the last bit: a
document's shares are added in the order of ``asked``, as ``KeywordCache.sum_by_document``
adds them.  When the estimate leaves most postings essential (a narrow filter, only common
words) the exhaustive sum is cheaper, and it is what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

SLACK = 1e-9
"""Relative margin on every comparison with the estimate, far above float rounding."""

SAMPLE = 8
"""Documents exactly scored for the estimate: this many times k (at least 2,048)."""

ESSENTIAL_AT_MOST = 0.5
"""Past this share of all postings in essential terms, the exhaustive sum runs instead."""

NARROW = 0.1
"""A filter admitting less than this share of the highest-bound term's postings is applied to
every term's postings first (a look-up per posting, cheaper than adding it up)."""

EXHAUSTIVE_BELOW = 50_000
"""Postings under which the exhaustive sum runs: it takes about a millisecond there, less than
the estimate (measured on the RealTime QA dev index, benchmarks/RESULTS.md)."""


class Postings(Protocol):
    """One term's postings: ascending document ids, each posting's share (``unit``, or
    ``at`` some positions: a term only looked up never has all its shares computed), and a
    bound no share exceeds (``top``)."""

    docs: Any

    @property
    def unit(self) -> Any: ...

    @property
    def top(self) -> float: ...

    def at(self, positions: Any) -> Any: ...


class _Admitted:
    """The postings of one term that a filter admits."""

    def __init__(self, postings: Postings, admits: Callable[[Any], Any]) -> None:
        import numpy as np

        kept = np.flatnonzero(admits(postings.docs))
        self.docs, self.unit = postings.docs[kept], postings.at(kept)
        self.top = float(self.unit.max()) if len(self.unit) else 0.0

    def at(self, positions: Any) -> Any:
        return self.unit[positions]


Asked = Sequence[tuple[float, Any]]
"""The question's terms: (weight, ``Postings``), in the order their shares are added."""


def candidates(
    asked: Asked, k: int, admits: Callable[[Any], Any],
    add_up: Callable[[Asked], tuple[Any, Any]],
) -> tuple[Any, Any]:
    """Admitted documents with their exact scores, among them every one of the k best.

    ``admits(docs)`` is the filter as a mask; ``add_up(asked)`` is the exhaustive sum
    (documents holding any of the terms, ascending, and their summed shares).
    """
    total = sum(len(p.docs) for _, p in asked)
    if total >= EXHAUSTIVE_BELOW:
        _, first = max(asked, key=lambda a: a[0] * a[1].top)
        if len(first.docs) and admits(first.docs).mean() < NARROW:
            asked = [(w, _Admitted(p, admits)) for w, p in asked]
            total = sum(len(p.docs) for _, p in asked)
    floor = (_estimate(asked, k, admits, add_up, budget=total // 4)
             if total >= EXHAUSTIVE_BELOW else 0.0)
    bounds = [w * p.top for w, p in asked]
    by_bound = sorted(range(len(asked)), key=lambda i: bounds[i])
    reach, split = 0.0, 0
    while split < len(by_bound) and (reach + bounds[by_bound[split]]) * (1 + SLACK) < floor:
        reach += bounds[by_bound[split]]
        split += 1
    essential = [asked[i] for i in sorted(by_bound[split:])]
    if not split or sum(len(p.docs) for _, p in essential) > total * ESSENTIAL_AT_MOST:
        docs, scores = add_up(asked)
        keep = admits(docs)
        return docs[keep], scores[keep]
    docs, partial = add_up(essential)
    keep = admits(docs)
    docs, partial = docs[keep], partial[keep]
    for left in range(split, -1, -1):  # then each optional term, highest bound first
        if left < split:
            weight, postings = asked[by_bound[left]]
            partial = partial + weight * _shares(postings, docs)
        reach = sum(bounds[i] for i in by_bound[:left])
        floor = max(floor, _kth(partial, k))  # a partial sum is a score's lower bound
        keep = (partial + reach) * (1 + SLACK) >= floor
        docs, partial = docs[keep], partial[keep]
    return docs, exact(asked, docs)


def _kth(values: Any, k: int) -> float:
    """The k-th largest value (0 if there are fewer), lowered by the slack."""
    import numpy as np

    if len(values) < k:
        return 0.0
    return float(np.partition(values, len(values) - k)[len(values) - k]) * (1 - SLACK)


def exact(asked: Asked, docs: Any) -> Any:
    """The scores of these documents (ascending ids), each term's share added in turn."""
    import numpy as np

    scores = np.zeros(len(docs))
    for weight, postings in asked:
        scores += weight * _shares(postings, docs)
    return scores


def _estimate(
    asked: Asked, k: int, admits: Callable[[Any], Any],
    add_up: Callable[[Asked], tuple[Any, Any]], budget: int,
) -> float:
    """A score no higher than the k-th best admitted one (0 when none is found cheaply): the
    k-th best exact score of a sample of admitted documents holding the highest-bound terms,
    taken in turn (and added up by ``add_up``) until k are admitted or their postings pass
    ``budget``."""
    import numpy as np

    order = sorted(range(len(asked)), key=lambda i: -asked[i][0] * asked[i][1].top)
    taken: list[int] = []
    docs = np.zeros(0, np.int64)
    for i in order:
        if sum(len(asked[j][1].docs) for j in taken) + len(asked[i][1].docs) > budget:
            return 0.0
        taken.append(i)
        if len(taken) == 1:  # a term's documents are distinct and ascending
            docs, partial = asked[i][1].docs, asked[i][0] * asked[i][1].unit
        else:
            docs, partial = add_up([asked[j] for j in taken])
        keep = admits(docs)
        if keep.sum() >= k:
            docs, partial = docs[keep], partial[keep]
            break
    else:
        return 0.0
    size = max(SAMPLE * k, 2048)
    if len(docs) > size:
        docs = np.sort(docs[np.argpartition(-partial, size - 1)[:size]])
    return _kth(exact(asked, docs), k)


def _shares(postings: Postings, docs: Any) -> Any:
    """The term's share of each of these documents (ascending ids), 0 where it is absent."""
    import numpy as np

    if not len(postings.docs):
        return np.zeros(len(docs))
    docs = docs.astype(postings.docs.dtype, copy=False)  # mixed types would copy the postings
    at = np.searchsorted(postings.docs, docs)
    np.minimum(at, len(postings.docs) - 1, out=at)
    found = postings.docs[at] == docs
    shares = np.zeros(len(docs))
    shares[found] = postings.at(at[found])
    return shares
