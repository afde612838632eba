"""Citations enforced in code: parse [n] markers, resolve them to verbatim spans, check support.

``enforce(text, sources, support)`` is the entry point, and its rule is the promise "nothing
uncited, nothing invented": every sentence left in an answer carries at least one marker naming
a retrieved source whose best sentence supports it.  Markers naming no source are removed;
each remaining one is mapped to the source sentence that best supports its answer sentence
(quote and offsets); a sentence with no valid or no supporting citation is removed from the text
and reported in ``dropped`` with the reason; an extra citation that does not clearly support an
otherwise supported sentence stays, flagged; and an answer left with no sentence becomes the
cannot-answer refusal.  Instructions injected into source text therefore cannot add words of
their own to an answer: whatever the model writes must be backed by a quoted source sentence,
and a source sentence that gives the model orders (``INSTRUCTION``) backs nothing.  Support is
semantic similarity: it catches a sentence about something the source does not say, not one
that contradicts its source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from assistant.models import CANNOT_ANSWER, AnswerSentence, Citation, DroppedSentence, Source
from index.chunking import sentence_spans

SupportFn = Callable[[Sequence[str], Sequence[str]], list[list[float]]]
"""Scores each answer sentence (rows) against each source sentence (columns), 0..1."""

MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:,|;|–|-|and)\s*\d+)*)\s*\]")
_ONLY_MARKERS = re.compile(rf"^(?:\s*{MARKER.pattern})+[\s.,;:!?]*$")
_LEADING_MARKERS = re.compile(rf"^(?:\s*{MARKER.pattern})+")


INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
    r"(?:previous|prior|above|earlier|preceding|other)\s+(?:instructions|rules|prompts?|directions)"
    r"|\b(?:end|start|begin|finish)\s+(?:every|each|all|your)\s+(?:answers?|repl(?:y|ies)|responses?)"
    r"|\bsystem\s+prompt\b|\btell\s+the\s+(?:reader|user)s?\s+(?:that|to)\b"
    r"|\bcite\s+(?:source\s+)?\[?\d+\]?\s+for\b",
    re.IGNORECASE,
)
"""Source sentences that give a language model orders (prompt injection): they never count as
supporting a claim, so an answer cannot repeat an injected payload by citing the order."""


@dataclass
class ParsedSentence:
    """An answer sentence as written, its text without markers, and the numbers it cites."""

    raw: str
    text: str
    numbers: list[int] = field(default_factory=list)
    gap: str = ""  # what separated it from the sentence before, as written (spaces, line breaks)


def marker_numbers(marker_body: str) -> list[int]:
    """The numbers inside one marker: '1' → [1], '1, 3' → [1, 3], '2-4' → [2, 3, 4]."""
    out: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", marker_body.strip()):
        bounds = re.split(r"\s*[–-]\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            out.extend(range(lo, hi + 1) if 0 < hi - lo < 20 else [lo, hi])
        elif part.isdigit():
            out.append(int(part))
    return out


def strip_markers(text: str) -> str:
    """The text without [n] markers and the spaces they leave behind."""
    text = re.sub(rf"\s*{MARKER.pattern}", "", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def parse(text: str, pieces: Sequence[str] | None = None) -> list[ParsedSentence]:
    """Split an answer into sentences and read each one's citation numbers.

    ``pieces`` is the writer's own partition of ``text`` into sentences, in order, when it
    knows one (the extractive writer quotes whole sentences); otherwise, or when a piece is not
    found in order, the text is split as articles are (Punkt). Markers that open a sentence
    (``... Moscow. [1] Putin ...``) or stand alone belong to the sentence before them;
    duplicates are kept once, in order of appearance.
    """
    sentences: list[ParsedSentence] = []
    previous_end, gap = 0, ""
    for start, end in _piece_spans(text, pieces) or sentence_spans(text):
        raw = text[start:end]
        gap += text[previous_end:start]
        previous_end = end
        lead = _LEADING_MARKERS.match(raw)
        if sentences and (lead or _ONLY_MARKERS.match(raw)):
            moved = raw if _ONLY_MARKERS.match(raw) else lead.group(0)  # type: ignore[union-attr]
            _add_numbers(sentences[-1], moved)
            sentences[-1].raw += " " + moved.strip()
            raw = raw[len(moved):].strip()
            if not raw:
                continue
        parsed = ParsedSentence(raw=raw, text=strip_markers(raw), gap=gap)
        _add_numbers(parsed, raw)
        if parsed.text or parsed.numbers:
            sentences.append(parsed)
            gap = ""
    return sentences


def _piece_spans(text: str, pieces: Sequence[str] | None) -> list[tuple[int, int]]:
    """Where each of ``pieces`` sits in ``text``, in order; empty unless they are all found
    and nothing but whitespace lies outside them."""
    spans: list[tuple[int, int]] = []
    position = 0
    for piece in map(str.strip, pieces or ()):
        start = text.find(piece, position) if piece else -1
        if start < 0 or text[position:start].strip():
            return []
        position = start + len(piece)
        spans.append((start, position))
    return spans if not text[position:].strip() else []


def _add_numbers(sentence: ParsedSentence, raw: str) -> None:
    for match in MARKER.finditer(raw):
        for n in marker_numbers(match.group(1)):
            if n not in sentence.numbers:
                sentence.numbers.append(n)


def is_refusal(text: str) -> bool:
    """True when the text is (or contains) the cannot-answer sentinel."""
    norm = re.sub(r"[^a-z ]", "", text.lower())
    return re.sub(r"[^a-z ]", "", CANNOT_ANSWER.lower()) in norm


@dataclass
class Enforced:
    """The outcome of enforcement."""

    text: str
    sentences: list[AnswerSentence]
    citations: list[Citation]
    refused: bool
    warnings: list[str]
    dropped: list[DroppedSentence] = field(default_factory=list)


def enforce(
    text: str,
    sources: Sequence[Source],
    support: SupportFn,
    *,
    threshold: float,
    pieces: Sequence[str] | None = None,
) -> Enforced:
    """Hold ``text`` to the citation rules against ``sources``; see the module docstring.

    A sentence stays in the answer only when at least one of its markers names a retrieved
    source whose best sentence supports it (``support`` at or above ``threshold``); every other
    sentence is removed from the text and listed in ``dropped`` with the reason.  Markers that
    name no source are removed from the text too.  An answer left with no sentence is the
    cannot-answer sentinel, refused.  ``pieces``: the writer's sentences, if it knows them
    (``parse``).
    """
    if is_refusal(text) or not text.strip():
        return Enforced(CANNOT_ANSWER, [], [], True, [])
    every = parse(text, pieces)
    parsed = [p for p in every if p.text]  # markers alone say nothing
    by_number = {s.number: s for s in sources}
    warnings: list[str] = []
    invalid: list[list[int]] = []
    for p in parsed:
        bad = [n for n in p.numbers if n not in by_number]
        if bad:
            warnings.append(f"dropped citation {_markers(bad)}: no such source")
        invalid.append(bad)
        p.numbers = [n for n in p.numbers if n in by_number]

    pairs = [(i, n) for i, p in enumerate(parsed) for n in p.numbers]
    scores = dict(zip(pairs, _support_matrix(parsed, pairs, by_number, support), strict=True))
    kept: list[int] = []
    dropped: list[DroppedSentence] = []
    for i, p in enumerate(parsed):
        judged = [(n, scores[(i, n)][1]) for n in p.numbers]
        if any(score >= threshold for _, score in judged):
            kept.append(i)
            continue
        dropped.append(_dropped(p.text, invalid[i], judged, threshold))

    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for i in kept:
        sentence = AnswerSentence(text=parsed[i].text, citations=[], supported=True)
        for n in parsed[i].numbers:
            best, score = scores[(i, n)]
            quote, source = by_number[n].sentences[best], by_number[n]
            ok = score >= threshold
            if not ok:
                warnings.append(f"citation [{n}] does not clearly support: {parsed[i].text!r}")
            sentence.citations.append(len(citations))
            citations.append(
                Citation(
                    **source.quoting(quote),
                    number=n,
                    sentence=len(sentences),
                    support=round(score, 4),
                    supported=ok,
                )
            )
        sentences.append(sentence)
    if not kept:
        warnings.append(
            "the answer had no sentence with a supporting citation, so it was withheld"
        )
        return Enforced(CANNOT_ANSWER, [], [], True, warnings, dropped)
    if dropped or any(invalid) or len(parsed) < len(every):
        text = _assemble(parsed, kept)
    return Enforced(text.strip(), sentences, citations, False, warnings, dropped)


def _markers(numbers: Sequence[int]) -> str:
    return ", ".join(f"[{n}]" for n in numbers)


def _dropped(
    text: str, invalid: list[int], judged: list[tuple[int, float]], threshold: float
) -> DroppedSentence:
    """Why a sentence without a supporting citation was removed."""
    if judged:
        scores = ", ".join(f"[{n}] {score:.2f}" for n, score in judged)
        reason = f"its citation does not support it (support {scores}; needs {threshold:.2f})"
        return DroppedSentence(text=text, kind="unsupported", reason=reason)
    if invalid:
        reason = f"it cites only {_markers(invalid)}, which name no retrieved source"
        return DroppedSentence(text=text, kind="invalid", reason=reason)
    return DroppedSentence(text=text, kind="uncited", reason="it cites no source")


def _assemble(parsed: list[ParsedSentence], kept: list[int]) -> str:
    """The kept sentences as written, their markers limited to valid numbers, with the line
    breaks that separated them."""
    out = ""
    gap = ""
    for i, p in enumerate(parsed):
        gap += p.gap
        if i not in kept:
            continue
        if out:
            out += "\n\n" if "\n\n" in gap else "\n" if "\n" in gap else " "
        out += _only_markers(p.raw, set(p.numbers))
        gap = ""
    return out


def _only_markers(raw: str, valid: set[int]) -> str:
    """``raw`` with each marker rewritten to the numbers in ``valid`` (removed if none)."""

    def rewrite(match: re.Match[str]) -> str:
        numbers = [n for n in marker_numbers(match.group(1)) if n in valid]
        if not numbers:
            return ""
        return match.group(0) if len(numbers) == len(marker_numbers(match.group(1))) else (
            "[" + ", ".join(str(n) for n in numbers) + "]"
        )

    cleaned = MARKER.sub(rewrite, raw)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip()


def _support_matrix(
    parsed: list[ParsedSentence],
    pairs: list[tuple[int, int]],
    by_number: dict[int, Source],
    support: SupportFn,
) -> list[tuple[int, float]]:
    """For each (answer sentence, source) pair: the best source sentence and its score."""
    if not pairs:
        return []
    cited = sorted({n for _, n in pairs})
    flat = [(n, j) for n in cited for j in range(len(by_number[n].sentences))]
    rows = sorted({i for i, _ in pairs})
    matrix = support([parsed[i].text for i in rows], [by_number[n].sentences[j].text for n, j in flat])
    row_of = {i: r for r, i in enumerate(rows)}
    out = []
    for i, n in pairs:
        row = matrix[row_of[i]]
        options = [
            (j, 0.0 if INSTRUCTION.search(by_number[n].sentences[j].text) else row[col])
            for col, (m, j) in enumerate(flat) if m == n
        ]
        out.append(max(options, key=lambda o: o[1]))
    return out
