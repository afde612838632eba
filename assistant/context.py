"""What a language model is shown, and whether it is asked at all.

- ``render_messages``: the chat messages for a question: the system rules of ``prompts/``,
  then each source between ``<source number="N">`` delimiters its own text cannot close, with
  every relative date followed by the day it resolves to ("two days after (= October 20)").
- ``evidence_sources``: evidence-first context, the sources cut to their best-ranked sentences
  and neighbours, keeping their numbers.
- ``extractive_gate``: refuses, before any model is asked, a question whose sources hold
  nothing that could answer it (the extractive writer's evidence model decides).
- ``quotes_from``: the evidence check of structured answers that quote their sentence first.

``assistant.llm.LLMWriter`` puts these together; each is measured in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date

from assistant.extractive import ExtractiveWriter
from assistant.models import CANNOT_ANSWER, Source, SourceSentence
from assistant.question import analyse

Ranker = Callable[[str, Sequence[Source]], list[tuple[float, int, int]]]
"""(relevance, source index, sentence index) of every source sentence, best first
(``ExtractiveWriter.rank``)."""

Gate = Callable[[str, Sequence[Source]], bool]
"""Whether the sources may hold the answer to a question; False refuses without the model."""

GATE_FLOOR = 0.10
"""The refusal gate's least evidence probability: on RealTime QA dev-small it refused none of
the 60 answerable questions and 6 of the 10 near-topic negatives (benchmarks/RESULTS.md)."""


def extractive_gate(extractive: ExtractiveWriter, *, floor: float = GATE_FLOOR) -> Gate:
    """A refusal gate from the extractive writer's evidence model: the sources may answer when
    some on-topic sentence's probability of holding the answer is at least ``floor``, and, for
    a question asking for a kind of thing (a date, a number, a name) or for what X said, some
    on-topic sentence holds a span of that kind or reports X speaking.

    A small model answers near-topic questions with a nearby fact (last year's nominee, an
    older apology) and cites the sentence that says it; the gate refuses those before spending
    seconds of prompt reading on them.  ``floor`` sits below the extractive writer's own
    (``Weights.floor``): the model may still answer what the extractive writer would not quote.
    """

    def may_answer(question: str, sources: Sequence[Source]) -> bool:
        asked = analyse(question)
        found = extractive.candidates(asked, sources)
        if (asked.kind is not None or asked.speaker) and not any(c.holds for c in found):
            return False
        return any(c.probability >= floor for c in found)

    return may_answer


_DELIMITER = re.compile(r"<(/?)(source)", re.IGNORECASE)


def render_messages(
    question: str,
    sources: Sequence[Source],
    *,
    as_of: date | None,
    prompts: dict[str, str],
    structured: bool = False,
    quote: bool = False,
) -> list[dict[str, str]]:
    """The chat messages for a question: system rules, then numbered sources and the question.

    Each source sits between ``<source number="N">`` and ``</source>`` (the system prompt says
    its text is data, never instructions); a delimiter inside the article text is defused so
    a source cannot close itself early. ``structured`` uses the JSON answer rules, ``quote``
    the JSON rules that ask for the answering sentence first.
    """
    blocks = [
        prompts["source"].format(
            number=s.number,
            title=_defused(s.title),
            outlet=_defused(s.outlet or "unknown outlet"),
            published=s.published.isoformat() if s.published else "date unknown",
            text=_defused(" ".join(_annotated(sentence) for sentence in s.sentences)),
            dates=_dates_note(s),
        ).strip()
        for s in sources
    ]
    day = as_of.isoformat() if as_of else "today"
    if structured:
        system = prompts["answer_quote" if quote else "answer_json"].format(as_of=day)
    else:
        system = prompts["answer_system"].format(as_of=day, cannot_answer=CANNOT_ANSWER)
    user = prompts["answer_user"].format(sources="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _annotated(sentence: SourceSentence) -> str:
    """The sentence with the days its relative dates resolve to, where a reader needs them:
    'on Tuesday evening (= October 20, 2015)' after the phrase itself, and for a date counted
    from another ('two days after Assad made a surprise visit to Moscow') at the end of the
    sentence, beside the event it dates: '... to Moscow (on October 20).'  Listed below the
    source, or right after "two days after", a 1.5B model answered with the anchor day."""
    text, shift, tail = sentence.text, 0, []
    for m in sorted(sentence.dates, key=lambda m: m.end):
        label = m.label()
        start, end = m.start - sentence.start + shift, m.end - sentence.start + shift
        if (m.kind == "absolute" or (m.year is None and m.month is None)  # not resolved
                or not 0 <= start < end <= len(text) or _same(label, m.text)):
            continue
        if m.kind == "anchored":
            tail.append(label)
            continue
        note = f" (= {label})"
        text = text[:end] + note + text[end:]
        shift += len(note)
    if tail:
        body = text.rstrip()
        stop = len(body.rstrip(".!?\"'”’")) if body else 0
        text = f"{body[:stop]} (on {', '.join(tail)}){body[stop:]}"
    return text


def _same(label: str, text: str) -> bool:
    """Whether a date's label only repeats its text ('October 22' for "October 22")."""
    return " ".join(label.lower().split()) in " ".join(text.lower().split())


def _dates_note(source: Source) -> str:
    """How the source's derived dates were worked out, one line ('' when none was)."""
    notes = []
    for sentence in source.sentences:
        for m in sentence.dates:
            if m.kind in ("absolute", "anchored") or not m.note:  # anchored: dated in the text
                continue
            flag = ", inferred" if m.inferred else ""
            notes.append(f'"{m.text}" = {m.label()}{flag}; {m.note}')
    return "\nResolved dates: " + " | ".join(notes) if notes else ""


def _defused(text: str) -> str:
    """``text`` with any ``<source`` or ``</source`` made harmless (a look-alike angle bracket)."""
    return _DELIMITER.sub(lambda m: "\u2039" + m.group(1) + m.group(2), text)


def evidence_sources(
    question: str, sources: Sequence[Source], rank: Ranker, *, sentences: int = 6,
    window: int = 1,
) -> list[Source]:
    """The sources cut to their evidence: the ``sentences`` best-ranked sentences over all
    sources, each with ``window`` neighbours either side, keeping the sources' numbers (so
    citations still resolve against the whole chunks). Sources with nothing picked are left out.
    """
    keep: dict[int, set[int]] = {}
    for _, i, j in rank(question, sources)[:sentences]:
        count = len(sources[i].sentences)
        keep.setdefault(i, set()).update(range(max(0, j - window), min(count, j + window + 1)))
    return [
        sources[i].model_copy(update={"sentences": [sources[i].sentences[k] for k in sorted(ks)]})
        for i, ks in sorted(keep.items())
    ]


def quotes_from(sources: Sequence[Source], *, share: float = 0.8) -> Callable[[str], bool]:
    """Whether a quote is one of these sources' sentences: at least ``share`` of its words
    (three at least) stand in one sentence as shown (resolved dates included)."""
    shown = [set(_WORDS.findall(_annotated(s).lower())) for src in sources for s in src.sentences]

    def found(quote: str) -> bool:
        words = _WORDS.findall(quote.lower())
        if len(words) < 3:
            return False
        return any(sum(w in sentence for w in words) >= share * len(words) for sentence in shown)

    return found


_WORDS = re.compile(r"\w+")
