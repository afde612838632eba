"""The extractive writer: answers with the source sentence that holds what the question asks for.

No model writes: it quotes source sentences and cites them.  The default when no LLM is
configured, and the fallback when the LLM fails.  Chosen through ``assistant.llm.WRITERS``.

How a sentence is chosen (``ExtractiveWriter.candidates``, then ``answer``):

1. **Question analysis** (``assistant.question.analyse``): what kind of answer is asked for (a
   date, a number, a person, an organisation, a place, a named thing, or none in particular),
   what the question already names, and for "what did X say", the speaker X.
2. **Relevance**, as before: embedding similarity of question and sentence, and how many of the
   question's content words the sentence (or its article's title) holds.  Only a shortlist is
   embedded (``assistant.shortlist``: a score needing no model, by default the words shared
   with the question): its first 8, then up to
   ``candidates`` (16) when none of those is likely enough; each model call takes sentences
   of similar length.
3. **Evidence**: whether the sentence holds a span of the asked-for kind that the question does
   not name (``assistant.question.spans``; entities from ``assistant.entities`` are computed
   once per sentence and cached), where the sentence sits in its article, and its source's
   rank.  The four combine into one calibrated probability that the sentence holds the answer
   (``Weights``, a logistic model fitted by ``benchmarks/fit_extractive.py`` on RealTime QA
   dev-small).
4. **Refusal** (``choose``): a sentence may answer only when it is on topic (relevance at least
   ``Weights.topic`` × ``threshold``), its passage shares one of the question's own words
   (not only names), and for a date question it repeats the question's event (an asked word
   beyond its article's title: "wake up", not the landing).  A question of a
   ``Weights.strict`` kind is refused when no such sentence holds a span of that kind ("how
   many" with no count of the thing counted; "who" with no new person, or organisation when
   the question names no person's role), "what did X say" when X is never reported speaking,
   and any question whose best probability is below ``Weights.floor`` (unless it asks for
   several and a sentence lists several spans of the kind).  A question placing its event
   in the last days ("this week", "on Tuesday") may be answered only from articles at most
   ``Weights.recent`` days older than the day it is asked on (``write``'s ``as_of``; off as
   fitted).
5. **The short answer** (``assistant.short_answer``): the asked-for span of the chosen sentence
   (the enumeration, when the question asks for several; else the span the other candidates
   mention most, weighted by their probability), as ``Answer.short_answer`` with article
   offsets.  With ``Weights.beside`` (off as fitted), when the chosen sentence holds none, a
   sentence of its article that does (``assistant.beside``: its neighbour, its passage, the
   article's nearest, earliest or most probable) is quoted next and gives it.

A "when" answer keeps its derived-date lead ("Around October 20 (two days before ...)") and the
sentence that dates it.  Further sentences allowed to answer by themselves (step 4), from any
article, are quoted best first while their probability is at least ``second_ratio`` of the
first's, up to ``max_sentences`` (3) in all: on RealTime QA dev the first sentence holds an
accepted answer for 0.37 of questions, the three for 0.49 (benchmarks/RESULTS.md).  Source text is quoted with any "[2]" inside it
turned into "［2］", so quoted text can never be read as a citation marker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Literal

from assistant import question as q_analysis
from assistant import shortlist
from assistant.beside import Reach, beside, found_for
from assistant.chat_model import ChatEvent, ChatModel, TextDelta
from assistant.citations import MARKER
from assistant.models import CANNOT_ANSWER, ShortAnswer, Source
from assistant.question import Question
from assistant.short_answer import short_answer
from assistant.when import EXPLICIT_DATE, when_lead, when_mention
from index.timex import Mention

if TYPE_CHECKING:
    from index.embeddings import Embedder


@dataclass(frozen=True)
class Weights:
    """The evidence model: logit = bias + Σ weight × feature; fitted on RealTime QA dev-small
    by ``benchmarks/fit_extractive.py`` (which prints these values)."""

    bias: float = -4.486
    relevance: float = 4.263
    span: float = 0.213
    position: float = 0.426
    rank: float = 0.0
    novelty: float = 0.853
    focus: float = 0.0
    topic: float = 0.7
    """A sentence is on topic when its relevance is at least ``topic`` × ``threshold``."""
    floor: float = 0.15
    """Least probability for an answer; below it the writer refuses."""
    event: frozenset[str] = frozenset({"date"})
    """Kinds whose answer must repeat the question's event: a sentence may answer only if it
    holds one of the asked words its article's title does not (``question.event_words``).
    A date is the date of something; "when did the lander wake up" is not answered by the
    date it landed."""
    recent: int | None = None
    """For a question placing its event in the last days (``Question.recent``: "this week",
    "on Tuesday"), the most days an answering article may be older than the question's
    ``as_of``; None: no such rule.  Chosen on dev-small by ``benchmarks/fit_extractive.py``
    among None, 30, 14 and 7 days: each raised near-topic refusals (0.6 to 0.8) but also
    false refusals (0.05 to 0.15, above the 0.08 allowed), so the rule is off."""
    strict: frozenset[str] = frozenset({"number", "person"})
    """Kinds refused when no on-topic sentence holds a span of the kind ("how many" with no
    count of the thing, "who" with no new name: a person, or an organisation when the
    question names no person's role).  Refusing the other kinds too cost dev-small correct
    answers: NER misses some names, and "thing" answers are often not names at all."""
    beside: Reach | None = None
    """How far to look for a sentence naming the asked-for kind when the chosen sentence names
    none (``assistant.beside``: the neighbours, the passage, the article's retrieved passages,
    its lead, or its most probable sentence), which is quoted beside it and gives the short
    answer; None: no such sentence is quoted.  Off as fitted: each reach was replayed on
    dev-small by ``benchmarks/fit_extractive.py`` and none answered more than one more question
    (the script's rule for adopting one); see benchmarks/RESULTS.md."""
    beside_adds: bool = False
    """With ``beside``: the sentence found is quoted in addition to the ``max_sentences``
    (False: it takes the place of the last further sentence)."""
    nearby: frozenset[str] = frozenset()
    """With ``beside``: kinds refused when no on-topic sentence holds a span of the kind either
    by itself or in the sentence ``beside`` finds for it.  None as fitted (``beside`` is off)."""


FITTED = Weights()


@dataclass
class Candidate:
    """A source sentence considered for the answer, with its evidence features."""

    i: int
    """Source index."""
    j: int
    """Sentence index in the source."""
    relevance: float
    rank: float
    """0.5 ** (the article's rank among the sources): 1 for the first article."""
    position: float
    """exp(-offset / 1500): 1 at the top of the article."""
    spans: list[tuple[int, int]]
    """Spans of the asked-for kind the question does not name (sentence offsets)."""
    holds: bool
    """Holds what the question asks for: such a span, or for "what did X say", X speaking."""
    novelty: float
    """Names (capitalised words) the question does not use, up to three, over three."""
    focus: float
    """The share of the question's own (non-name) words the sentence repeats."""
    covers: bool = True
    """Holds one of the question's event words, or the question has none beyond the title's."""
    context: bool = True
    """Its article (title or the retrieved passage) uses one of the question's own words, or
    the question has none: a passage sharing only names is about something else."""
    probability: float = 0.0

    def logit(self, w: Weights) -> float:
        """The evidence model's log-odds that this sentence holds the answer."""
        return (w.bias + w.relevance * self.relevance + w.span * self.holds
                + w.position * self.position + w.rank * self.rank + w.novelty * self.novelty
                + w.focus * self.focus)


@dataclass(frozen=True)
class ExtractiveText(TextDelta):
    """The extractive answer's text, with the short answer it quotes (None without one)."""

    short_answer: ShortAnswer | None = None
    pieces: tuple[str, ...] = ()  # the text's sentences, so enforcement need not split it


class ExtractiveWriter:
    """Answers with the source sentences that best answer the question, each cited."""

    name = "extractive"
    mode: Literal["llm", "extractive"] = "extractive"
    chat_model: ChatModel | None = None

    def __init__(
        self,
        embedder: Embedder,
        *,
        threshold: float,
        max_sentences: int = 3,
        source_prior: float = 0.4,
        novelty_bonus: float = 0.2,
        second_ratio: float = 0.85,
        weights: Weights = FITTED,
        first_stage: shortlist.FirstStage = shortlist.FITTED,
        candidates: int = 16,
        first: int = 8,
        settle: float = 0.3,
    ) -> None:
        """``threshold``: least relevance of a sentence to count as on topic.  ``source_prior``
        and ``novelty_bonus`` are kept for old callers; ``weights`` now rank the sentences.
        ``candidates``: most sentences embedded per question; ``first``: how many are scored
        before the rest, which are embedded only when no allowed one reaches ``settle``
        (on dev-small the same answers as scoring all 16, with a quarter less embedding)."""
        self.embedder = embedder
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.source_prior = source_prior
        self.novelty_bonus = novelty_bonus
        self.second_ratio = second_ratio
        self.weights = weights
        self.first_stage = first_stage
        self.limit = candidates
        self.first = min(first, candidates)
        self.settle = settle

    def rank(
        self, question: str, sources: Sequence[Source], *, limit: int | None = None
    ) -> list[tuple[float, int, int]]:
        """(relevance, source index, sentence index) of source sentences, best first.

        With ``limit``, only that many sentences, the best by the first-stage score
        (``assistant.shortlist``, no model; by default the words they share with the
        question, ties: earlier sources), are embedded and returned; the rest never scored.
        """
        found = shortlist.features(q_analysis.analyse(question), sources,
                                   bm25=self.first_stage.ask != 0,
                                   overlap_only=self.first_stage.overlap_only)
        if not found.cells:
            return []
        picked = shortlist.shortlist(found, limit, self.first_stage)
        texts = [sources[i].sentences[j].text for i, j in (found.cells[n] for n in picked)]
        vectors = _embed_by_length(self.embedder, [question, *texts])
        q = vectors[0]
        scored = []
        for n, vec in zip(picked, vectors[1:], strict=True):
            cosine = sum(a * b for a, b in zip(q, vec, strict=True))
            scored.append((0.5 * cosine + found.lexical[n], *found.cells[n]))
        scored.sort(key=lambda t: -t[0])
        return scored

    def candidates(
        self, question: Question, sources: Sequence[Source], *, limit: int | None = None
    ) -> list[Candidate]:
        """The on-topic sentences with their features and probability, most probable first;
        of the ``limit`` (default: ``candidates``) sentences sharing most words with it."""
        gate = self.threshold * self.weights.topic
        ranked = [t for t in self.rank(question.text, sources, limit=limit or self.limit)
                  if t[0] >= gate]
        order = {a: n for n, a in enumerate(dict.fromkeys(s.article_id for s in sources))}
        texts = [sources[i].sentences[j].text for _, i, j in ranked]
        ents: list[tuple[tuple[int, int, str], ...]] = [()] * len(texts)
        if question.needs_entities and texts:
            from assistant.entities import entities

            ents = entities(texts)
        asked = shortlist.names(question.text)
        asked_words = q_analysis.asked_words(question)
        passage = {i: q_analysis.roots(" ".join([sources[i].title, *(x.text for x in sources[i].sentences)]))
                   for i in {i for _, i, _ in ranked}}
        out = []
        for (relevance, i, j), text, found in zip(ranked, texts, ents, strict=True):
            sentence = sources[i].sentences[j]
            spans = q_analysis.spans(question, text, sentence_start=sentence.start,
                                     dates=sentence.dates, ents=found)
            speaking = bool(question.speaker) and q_analysis.speaks(question.speaker or "", text)
            out.append(Candidate(
                i=i, j=j, relevance=relevance,
                rank=0.5 ** order[sources[i].article_id],
                position=math.exp(-sentence.start / 1500),
                spans=spans, holds=bool(spans) or speaking,
                novelty=min(len(shortlist.names(text) - asked), 3) / 3,
                focus=q_analysis.focus(asked_words, text),
                covers=_covers(asked_words, sources[i].title, text),
                context=not asked_words or bool(asked_words & passage[i]),
            ))
        for c in out:
            c.probability = 1 / (1 + math.exp(-c.logit(self.weights)))
        out.sort(key=lambda c: -c.probability)
        return out

    def write(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[ChatEvent]:
        """The chosen sentences with their markers (or the cannot-answer sentinel), in one
        piece that also carries the short answer."""
        pieces, short = self.compose(question, sources, as_of=as_of)
        yield ExtractiveText(" ".join(pieces), short_answer=short, pieces=tuple(pieces))

    def answer(self, question: str, sources: Sequence[Source]) -> str:
        """The chosen sentences with their markers, or the cannot-answer sentinel."""
        return self.answer_with_short(question, sources)[0]

    def choose(self, question: Question, sources: Sequence[Source], *,
               as_of: date | None = None) -> list[Candidate]:
        """The candidates allowed to answer, best first; empty when the writer must refuse.

        The ``first`` sentences sharing most words with the question are scored first; only
        when none of them is likely enough (``settle``) are the rest of the ``candidates``
        embedded too (the first ones come from the caches)."""
        found = self._allowed(question, sources, as_of,
                              self.candidates(question, sources, limit=self.first))
        if self.first < self.limit and (not found or found[0].probability < self.settle):
            found = self._allowed(question, sources, as_of, self.candidates(question, sources))
        return found

    def _allowed(self, question: Question, sources: Sequence[Source], as_of: date | None,
                 found: list[Candidate]) -> list[Candidate]:
        """The candidates the refusal rules let answer (module docstring, step 4)."""
        found = [c for c in found if c.context]
        if question.kind in self.weights.event:
            found = [c for c in found if c.covers]
        if question.speaker:  # only a sentence reporting X speaking says what X said
            found = [c for c in found if c.holds]
        if question.kind in self.weights.strict:
            found = [c for c in found if c.spans]
        elif question.kind in self.weights.nearby:
            reach = self.weights.beside or "neighbour"
            found = [c for c in found if c.spans or beside(question, sources, c.i, c.j, reach=reach)]
        if question.recent and as_of is not None and self.weights.recent is not None:
            found = [c for c in found if _within(sources[c.i].published, as_of, self.weights.recent)]
        return [c for c in found if c.probability >= self.weights.floor
                or (question.plural and _enumerates(sources[c.i].sentences[c.j].text, c.spans))]

    def answer_with_short(
        self, question_text: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> tuple[str, ShortAnswer | None]:
        """The answer text with markers (or the sentinel), and its short answer if any."""
        pieces, short = self.compose(question_text, sources, as_of=as_of)
        return " ".join(pieces), short

    def compose(
        self, question_text: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> tuple[list[str], ShortAnswer | None]:
        """The answer's sentences with their markers (or the sentinel alone), and its short
        answer if any; ``as_of``: the day the question is asked on (the recency rule of
        step 4)."""
        question = q_analysis.analyse(question_text)
        found = self.choose(question, sources, as_of=as_of)
        if not found:
            return [CANNOT_ANSWER], None
        best = found[0]
        i, j = best.i, best.j
        picks = [(i, j)]
        text = sources[i].sentences[j].text
        lead = None
        if question.kind == "date":
            mention = when_mention(sources[i].sentences[j].dates)
            if mention is not None:
                lead = when_lead(mention, text)
            dated = self._anchor_sentence(sources[i], j, mention)
            if dated is None and not EXPLICIT_DATE.search(text):
                dated = self._dating_sentence(sources[i], j)
            if dated is not None:
                picks.append((i, dated))
        short = best
        room = self.max_sentences
        if (self.weights.beside and not best.spans
                and (len(picks) < room or self.weights.beside_adds)
                and (near := found_for(self, question, sources, best))):
            picks.append(near[:2])  # it names what the best sentence refers to
            short = replace(best, i=near[0], j=near[1], spans=near[2])
            room += self.weights.beside_adds
        quoted = {sources[a].sentences[b].text for a, b in picks}
        for c in found[1:]:  # further sentences allowed to answer by themselves, best first
            if len(picks) >= room or c.probability < best.probability * self.second_ratio:
                break
            if (other := sources[c.i].sentences[c.j].text) not in quoted:
                picks.append((c.i, c.j))
                quoted.add(other)
        parts = [f"{_quoted(sources[a].sentences[b].text)} [{sources[a].number}]" for a, b in picks]
        if lead:  # one sentence with its evidence, so the support check sees both together
            parts[0] = f"{lead}: {parts[0]}"
        return parts, short_answer(question, sources, short, found)

    @staticmethod
    def _anchor_sentence(source: Source, j: int, mention: Mention | None) -> int | None:
        """The sentence of this source that an anchored date was derived from, if present."""
        if mention is None or mention.anchor is None:
            return None
        for k, sentence in enumerate(source.sentences):
            if k != j and sentence.start == mention.anchor[0]:
                return k
        return None

    @staticmethod
    def _dating_sentence(source: Source, j: int) -> int | None:
        """The nearest earlier sentence (within three) of the same chunk with an explicit date."""
        for back in range(j - 1, max(-1, j - 4), -1):
            if EXPLICIT_DATE.search(source.sentences[back].text):
                return back
        return None


EMBED_GROUP = 8
"""Sentences embedded per model call, grouped by length: each call pads to its longest
sentence, so one call over all candidates pads every sentence to the longest one's length
(measured on dev-small: 30% slower than groups of 8)."""


def _embed_by_length(embedder: Embedder, texts: list[str]) -> list[list[float]]:
    """``embedder.embed_cached(texts)``, in groups of similar length."""
    order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
    out: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), EMBED_GROUP):
        group = order[start : start + EMBED_GROUP]
        for n, vector in zip(group, embedder.embed_cached([texts[n] for n in group]), strict=True):
            out[n] = vector
    return out


def _within(published: date | None, as_of: date, days: int) -> bool:
    """Whether an article published on ``published`` (unknown: yes) is at most ``days`` older
    than ``as_of``."""
    return published is None or (as_of - published).days <= days


def _covers(asked: frozenset[str], title: str, sentence: str) -> bool:
    """Whether ``sentence`` holds one of the question's event words (those beyond its
    article's title), or there are none to hold."""
    event = q_analysis.event_words(asked, title)
    return not event or bool(event & q_analysis.roots(sentence))


def _enumerates(text: str, spans: list[tuple[int, int]]) -> bool:
    """Whether the sentence lists several spans of the asked-for kind ("AFP, Reuters, and AP"):
    for a question asking for several, that list is the answer's very form, so it may answer
    below the probability floor (a rule, not a fitted number)."""
    return len(spans) >= 2 and q_analysis.list_span(text, spans) is not None


def _quoted(text: str) -> str:
    """Source text as the answer quotes it: a "[2]" of the source becomes "［2］", so that
    only the writer's own markers are read as citations."""
    return MARKER.sub(lambda m: f"［{m.group(1)}］", text)
