"""The extractive writer's first stage: which source sentences are worth embedding.

Embedding a sentence costs about as much as the rest of answering it, so the writer embeds
only a shortlist.  ``shortlist(question, sources, limit)`` scores every sentence of the
sources with features that need no model, and returns the ``limit`` best:

- **overlap**: the share of the question's words the sentence holds, and (a second term) the
  share its sentence plus its article's title hold;
- **ask**: BM25 (bm25s, Lucene's formula) of the asking sentence's words against the
  sentences of these sources: rare words of what is asked count more than "said";
- **kind**: whether the sentence holds something of the asked-for kind, judged without the
  entity model (a date mention for "when", a quantity for "how many", a name the question
  does not use for "who/which/where");
- **rank** of its article among the sources, **position** in its article, **neighbour** (the
  best overlap of the sentences either side: answers often sit beside the sentence that
  repeats the question), **novelty** (names the question does not use) and **length**.

The weights (``FirstStage``) are those of word overlap alone (``FITTED``, see there); a
logistic model of "holds an accepted answer" over all the features is fitted on RealTime QA
dev-small by ``benchmarks/fit_extractive.py --fit`` and adopted only if the writer built on it
answers more questions correctly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant import question as q_analysis
from assistant.models import Source
from assistant.question import Question

FEATURES = ("overlap", "context", "ask", "kind", "rank", "position", "neighbour", "novelty",
            "length")


@dataclass(frozen=True)
class FirstStage:
    """Weights of the shortlist score (a logit), fitted by ``benchmarks/fit_extractive.py``."""

    overlap: float = 0.3
    context: float = 0.2
    ask: float = 0.0
    kind: float = 0.0
    rank: float = 0.0
    position: float = 0.0
    neighbour: float = 0.0
    novelty: float = 0.0
    length: float = 0.0

    @property
    def overlap_only(self) -> bool:
        """Whether only the two word-overlap features have a weight."""
        return all(getattr(self, name) == 0 for name in FEATURES[2:])

    def score(self, features: Sequence[float]) -> float:
        """Σ weight × feature, features in ``FEATURES`` order."""
        return sum(getattr(self, name) * value for name, value in zip(FEATURES, features, strict=True))


@dataclass
class Shortlisted:
    """The sentences of the sources with their first-stage features (``FEATURES`` order)."""

    cells: list[tuple[int, int]]
    """(source index, sentence index) of every sentence."""
    features: list[tuple[float, ...]]
    lexical: list[float]
    """0.3 × overlap + 0.2 × context: the word-overlap part of a sentence's relevance."""


_NAME = re.compile(r"\b[A-Z][a-zA-Z'’.-]+")


def names(text: str) -> set[str]:
    """Capitalised words of ``text``, lower-cased, leaving out stop words ("The", "It")."""
    return {w.lower() for w in _NAME.findall(text)} - q_analysis.stop_words()


def features(question: Question, sources: Sequence[Source], *, bm25: bool = True,
             overlap_only: bool = False) -> Shortlisted:
    """Every sentence of ``sources`` with its first-stage features; ``bm25=False`` leaves the
    "ask" feature 0 (no need to index the sentences), ``overlap_only`` every feature but the
    two overlaps (what word overlap alone needs: about 10 ms less per question)."""
    from index.store import KeywordIndex

    cells = [(i, j) for i, s in enumerate(sources) for j in range(len(s.sentences))]
    texts = [sources[i].sentences[j].text for i, j in cells]
    ask = q_analysis.asking(question.text)
    tokens = KeywordIndex.tokenize(texts + [s.title for s in sources] + [question.text, ask],
                                   return_ids=False)
    q_words = set(tokens[-2])
    titles = [set(t) for t in tokens[len(texts):-2]]
    ask_scores = (_bm25(tokens[: len(texts)], tokens[-1]) if bm25 and not overlap_only
                  else [0.0] * len(texts))
    asked = names(question.text)
    order = {a: n for n, a in enumerate(dict.fromkeys(s.article_id for s in sources))}
    overlap, context = [], []
    for n, (i, _) in enumerate(cells):
        words = set(tokens[n])
        overlap.append(len(q_words & words) / len(q_words) if q_words else 0.0)
        context.append(len(q_words & (words | titles[i])) / len(q_words) if q_words else 0.0)
    lexical = [0.3 * a + 0.2 * b for a, b in zip(overlap, context, strict=True)]
    if overlap_only:
        rest = (0.0,) * (len(FEATURES) - 2)
        return Shortlisted(cells=cells, features=[(a, b, *rest) for a, b in
                                                  zip(overlap, context, strict=True)],
                           lexical=lexical)
    rows: list[tuple[float, ...]] = []
    for n, (i, j) in enumerate(cells):
        sentence = sources[i].sentences[j]
        new_names = names(sentence.text) - asked
        beside = [overlap[n + d] for d in (-1, 1)
                  if 0 <= n + d < len(cells) and cells[n + d][0] == i]
        rows.append((
            overlap[n], context[n], ask_scores[n],
            float(_holds_kind(question, sentence.text, bool(sentence.dates), new_names)),
            0.5 ** order[sources[i].article_id], math.exp(-sentence.start / 1500),
            max(beside, default=0.0), min(len(new_names), 3) / 3, min(len(tokens[n]), 40) / 40,
        ))
    return Shortlisted(cells=cells, features=rows, lexical=lexical)


def shortlist(found: Shortlisted, limit: int | None, weights: FirstStage) -> list[int]:
    """Indexes into ``found.cells`` of the ``limit`` best-scored sentences (ties: earlier
    sources first), best first; all of them when ``limit`` is None."""
    scores = [weights.score(f) for f in found.features]
    best = sorted(range(len(scores)), key=lambda n: (-scores[n], n))
    return best if limit is None else best[:limit]


def _holds_kind(question: Question, text: str, dated: bool, new_names: set[str]) -> bool:
    """Whether the sentence holds something of the asked-for kind, without the entity model."""
    if question.kind == "date":
        return dated
    if question.kind == "number":
        return bool(q_analysis.number_spans(text))
    if question.kind is not None:
        return bool(new_names)
    return False


def _bm25(corpus: list[list[str]], query: list[str]) -> list[float]:
    """BM25 scores of ``query`` against each tokenised sentence (bm25s, Lucene's formula,
    the sources' own sentences as the collection)."""
    import bm25s

    if not query or not any(corpus):
        return [0.0] * len(corpus)
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(w, len(vocab)) for w in doc] for doc in corpus]
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    known = [w for w in query if w in vocab]
    if not known:
        return [0.0] * len(corpus)
    return [float(s) for s in model.get_scores(known)]


FITTED = FirstStage()
"""Word overlap alone.  ``benchmarks/fit_extractive.py --fit`` also fits every feature; the
fitted shortlist keeps an answer-bearing sentence more often (dev-small: 0.962 of questions
at 16 sentences, against 0.887), but the writer built on it answered no more dev-small
questions correctly, so the script keeps word overlap (benchmarks/RESULTS.md)."""
