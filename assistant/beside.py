"""The sentence of the chosen one's article that names what the question asks for.

A news sentence often repeats the question's words while naming the answer only by reference:
"Team owner Arte Moreno announced Tuesday that he has 'initiated a formal process' that could
result in selling the franchise" answers "Which MLB team's owner ...?" with "the franchise";
the name is in the sentence before ("The Los Angeles Angels may soon be up for sale.").  When
the extractive writer's best sentence holds no span of the asked-for kind, ``beside`` finds a
sentence of the same article that does, looking as far as its ``reach``:

- ``"neighbour"``: the sentence before (what "the team", "he" or "the company" usually refer
  back to), then the one after, in the same retrieved passage;
- ``"chunk"``: any sentence of the same retrieved passage, nearest first (before on a tie);
- ``"article"``: any sentence of the article's retrieved passages, nearest first by offset;
- ``"lead"``: the article's earliest retrieved sentence with such a span (a story names its
  subject in its first lines: "Acetaminophen ..." before "a growing body of research");
- ``"best"``: the article's sentence the writer's own evidence model finds most probable
  (``found_for``: every retrieved sentence of the article embedded and scored).

The writer quotes it beside the best sentence and takes the short answer from it.  Entities
are read a few sentences at a time, in the order tried, so a near hit costs a few sentences
(each cached like every other); its effect on RealTime QA is in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol, get_args

from assistant import question as q_analysis
from assistant.models import Source
from assistant.question import Question

Spans = list[tuple[int, int]]
Cell = tuple[int, int]
"""(source index, sentence index)."""
Reach = Literal["neighbour", "chunk", "article", "lead", "best"]
REACHES: tuple[Reach, ...] = get_args(Reach)
BATCH = 4
"""Sentences whose entities are read at once: most hits are among the first few tried."""


class Candidate(Protocol):
    """A scored sentence (``assistant.extractive.Candidate``): source and sentence index, its
    spans of the asked-for kind; candidates come most probable first."""

    i: int
    j: int
    spans: Spans


class Writer(Protocol):
    """The extractive writer (``assistant.extractive.ExtractiveWriter``): its ``Weights`` (a
    dataclass with ``beside`` and ``topic``) and its candidates, most probable first."""

    weights: Any

    def candidates(self, question: Question, sources: Sequence[Source], *,
                   limit: int | None = None) -> Sequence[Candidate]: ...


def around(sources: Sequence[Source], i: int, j: int, reach: Reach) -> list[Cell]:
    """The sentences ``beside`` tries for sentence ``j`` of source ``i``, in the order tried
    (each sentence of the article once, never the chosen one; ``"best"``: the ``"article"``
    order, which the writer re-orders)."""
    if reach == "neighbour":
        return [(i, k) for k in (j - 1, j + 1) if 0 <= k < len(sources[i].sentences)]
    if reach == "chunk":
        others = [k for k in range(len(sources[i].sentences)) if k != j]
        return [(i, k) for k in sorted(others, key=lambda k: (abs(k - j), k))]
    chosen = sources[i].sentences[j]
    seen = {chosen.start}
    cells = []
    for a, source in enumerate(sources):
        if source.article_id != sources[i].article_id:
            continue
        for b, sentence in enumerate(source.sentences):
            if sentence.start not in seen:  # passages of one article may overlap
                seen.add(sentence.start)
                cells.append((a, b))
    start = {c: sources[c[0]].sentences[c[1]].start for c in cells}
    if reach == "lead":
        return sorted(cells, key=lambda c: start[c])
    return sorted(cells, key=lambda c: (abs(start[c] - chosen.start), start[c]))


def beside(question: Question, sources: Sequence[Source], i: int, j: int, *,
           reach: Reach = "neighbour", order: Sequence[Cell] | None = None
           ) -> tuple[int, int, Spans] | None:
    """(source index, sentence index, spans) of the first sentence ``around`` sentence ``j``
    of source ``i`` (or of ``order``, when given) holding a span of the kind ``question``
    asks for that it does not name; None when none does, or when the question asks for no
    kind or for what someone said."""
    if question.kind is None or question.speaker:
        return None
    cells = list(order) if order is not None else around(sources, i, j, reach)
    for start in range(0, len(cells), BATCH):
        batch = cells[start : start + BATCH]
        texts = [sources[a].sentences[b].text for a, b in batch]
        ents: list[tuple[tuple[int, int, str], ...]] = [()] * len(texts)
        if question.needs_entities:
            from assistant.entities import entities

            ents = entities(texts)
        for (a, b), text, found in zip(batch, texts, ents, strict=True):
            sentence = sources[a].sentences[b]
            spans = q_analysis.spans(question, text, sentence_start=sentence.start,
                                     dates=sentence.dates, ents=found)
            if spans:
                return a, b, spans
    return None


def found_for(writer: Writer, question: Question, sources: Sequence[Source],
              best: Candidate) -> tuple[int, int, Spans] | None:
    """``beside`` for the writer's best sentence at its ``Weights.beside`` reach; for
    ``"best"``, the article's sentences (``around``) in the order of the writer's evidence
    model, each embedded and scored as a candidate with no topic gate."""
    reach: Reach = writer.weights.beside or "neighbour"
    if reach != "best":
        return beside(question, sources, best.i, best.j, reach=reach)
    cells = around(sources, best.i, best.j, "article")
    if question.kind is None or question.speaker or not cells:
        return None
    article = sorted({a for a, _ in cells})
    loose = copy.copy(writer)
    loose.weights = replace(writer.weights, topic=0.0)
    keep = set(cells)
    for c in loose.candidates(question, [sources[a] for a in article], limit=len(cells) + 1):
        if (article[c.i], c.j) in keep and c.spans:  # most probable first
            return article[c.i], c.j, c.spans
    return None
