"""The short answer: which span of the quoted sentence answers the question.

``short_answer(question, sources, chosen, candidates)`` takes the sentence the extractive
writer chose and the spans of the asked-for kind it holds (``assistant.question.spans``), and
returns the one that answers, at article offsets:

- when the question asks for several ("which agencies"), the enumeration of them ("AFP,
  Reuters, Interfax, and AP");
- otherwise the span the other candidate sentences agree on: each span scores the summed
  probability of the candidates (the sentences allowed to answer, from every retrieved
  article) that mention it too.  Several outlets reporting one event name the same answer,
  while the other names of a sentence (where it happened, who else was there) vary;
- on a tie (a span no other sentence mentions), the span closest to the words the sentence
  shares with the question: the answer usually sits next to what the question asks about.

Against nearness alone, voting made the short answer exact more often: RealTime QA dev
0.180 → 0.193, dev-small 0.317 → 0.350, at 0.2 ms per answer (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Protocol

from assistant import question as q_analysis
from assistant.models import ShortAnswer, Source
from assistant.question import Question

Span = tuple[int, int]


class Candidate(Protocol):
    """A scored source sentence (``assistant.extractive.Candidate``): source and sentence
    index, its spans of the asked-for kind, the probability that it holds the answer."""

    i: int
    j: int
    spans: list[Span]
    probability: float


def short_answer(question: Question, sources: Sequence[Source], chosen: Candidate,
                 candidates: Sequence[Candidate] = ()) -> ShortAnswer | None:
    """The chosen sentence's answering span (see the module docstring) at article offsets;
    None when the question asks for no kind or the sentence holds no span of it."""
    if not chosen.spans or question.kind is None:
        return None
    source = sources[chosen.i]
    sentence = source.sentences[chosen.j]
    span = q_analysis.list_span(sentence.text, chosen.spans) if question.plural else None
    if span is None:
        span = agreed(question, sentence.text, chosen.spans,
                      [sources[c.i].sentences[c.j].text for c in candidates],
                      [c.probability for c in candidates])
    start, end = span
    return ShortAnswer(
        text=sentence.text[start:end], kind=question.kind, number=source.number,
        article_id=source.article_id, start=sentence.start + start, end=sentence.start + end,
    )


def agreed(question: Question, sentence: str, spans: Sequence[Span], others: Sequence[str],
           weights: Sequence[float]) -> Span:
    """The span of ``sentence`` that ``others`` (sentences with their ``weights``) mention
    most, by summed weight; ties go to the span ``nearest`` the question's words."""
    texts = [f" {_plain(t)} " for t in others]
    near = nearest(question, sentence, spans)

    def support(span: Span) -> float:
        key = f" {_plain(sentence[span[0]:span[1]])} "
        return sum(w for t, w in zip(texts, weights, strict=True) if key.strip() and key in t)

    return max(spans, key=lambda s: (round(support(s), 9), s == near))


def nearest(question: Question, sentence: str, spans: Sequence[Span]) -> Span:
    """The span closest to the words the sentence shares with the question (the first span
    when it shares none)."""
    asked = q_analysis.roots(question.text) - {q_analysis.root(w) for w in q_analysis.stop_words()}
    shared = [m.start() for m in re.finditer(r"[\w'’-]+", sentence)
              if q_analysis.root(m.group(0).lower()) in asked]
    if not shared:
        return spans[0]
    return min(spans, key=lambda s: min(abs(s[0] - p) for p in shared))


_POSSESSIVE = re.compile(r"['’]s\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def _plain(text: str) -> str:
    """Lower case, no accents, possessives or punctuation, single spaces: "Panera Bread’s"
    and "panera bread" compare as mentions of one name."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_PUNCTUATION.sub("", _POSSESSIVE.sub("", text)).split())
