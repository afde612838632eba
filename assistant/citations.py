"""Citations enforced in code: parse [n] markers, resolve them to verbatim spans, check support.

``enforce(text, sources, support)`` is the entry point.  It drops numbers that name no source,
maps every valid marker to the source sentence that best supports its answer sentence (quote
and offsets), flags citations whose support is below the threshold, marks sentences left
without a supporting citation, and turns an answer with no valid citation into a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from assistant.models import CANNOT_ANSWER, AnswerSentence, Citation, Source
from index.chunking import sentence_spans

SupportFn = Callable[[Sequence[str], Sequence[str]], list[list[float]]]
"""Scores each answer sentence (rows) against each source sentence (columns), 0..1."""

MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:,|;|–|-|and)\s*\d+)*)\s*\]")
_ONLY_MARKERS = re.compile(rf"^(?:\s*{MARKER.pattern})+[\s.,;:!?]*$")
_LEADING_MARKERS = re.compile(rf"^(?:\s*{MARKER.pattern})+")


@dataclass
class ParsedSentence:
    """An answer sentence as written, its text without markers, and the numbers it cites."""

    raw: str
    text: str
    numbers: list[int] = field(default_factory=list)


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


def parse(text: str) -> list[ParsedSentence]:
    """Split an answer into sentences and read each one's citation numbers.

    Markers that open a sentence (``... Moscow. [1] Putin ...``) or stand alone belong to the
    sentence before them; duplicates are kept once, in order of appearance.
    """
    sentences: list[ParsedSentence] = []
    for start, end in sentence_spans(text):
        raw = text[start:end]
        lead = _LEADING_MARKERS.match(raw)
        if sentences and (lead or _ONLY_MARKERS.match(raw)):
            moved = raw if _ONLY_MARKERS.match(raw) else lead.group(0)  # type: ignore[union-attr]
            _add_numbers(sentences[-1], moved)
            sentences[-1].raw += " " + moved.strip()
            raw = raw[len(moved):].strip()
            if not raw:
                continue
        parsed = ParsedSentence(raw=raw, text=strip_markers(raw))
        _add_numbers(parsed, raw)
        if parsed.text or parsed.numbers:
            sentences.append(parsed)
    return sentences


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


def enforce(
    text: str, sources: Sequence[Source], support: SupportFn, *, threshold: float
) -> Enforced:
    """Check every citation of ``text`` against ``sources``; see the module docstring."""
    if is_refusal(text) or not text.strip():
        return Enforced(CANNOT_ANSWER, [], [], True, [])
    parsed = parse(text)
    by_number = {s.number: s for s in sources}
    warnings: list[str] = []
    for p in parsed:
        bad = [n for n in p.numbers if n not in by_number]
        if bad:
            warnings.append(
                f"dropped citation {', '.join(f'[{n}]' for n in bad)}: no such source"
            )
        p.numbers = [n for n in p.numbers if n in by_number]

    pairs = [(i, n) for i, p in enumerate(parsed) for n in p.numbers]
    scores = _support_matrix(parsed, pairs, by_number, support)
    citations: list[Citation] = []
    sentences = [AnswerSentence(text=p.text, citations=[], supported=False) for p in parsed]
    for (i, n), (best, score) in zip(pairs, scores, strict=True):
        source = by_number[n]
        quote = source.sentences[best]
        sentences[i].citations.append(len(citations))
        ok = score >= threshold
        sentences[i].supported |= ok
        citations.append(
            Citation(
                number=n,
                sentence=i,
                article_id=source.article_id,
                title=source.title,
                outlet=source.outlet,
                published=source.published,
                url=source.url,
                quote=quote.text,
                start=quote.start,
                end=quote.end,
                support=round(score, 4),
                supported=ok,
            )
        )
        if not ok:
            warnings.append(f"citation [{n}] does not clearly support: {parsed[i].text!r}")
    for p, s in zip(parsed, sentences, strict=True):
        if not p.numbers:
            warnings.append(f"uncited sentence: {p.text!r}")
    if not citations:
        warnings.append("the answer cited no valid source, so it was withheld")
        return Enforced(CANNOT_ANSWER, [], [], True, warnings)
    return Enforced(text.strip(), sentences, citations, False, warnings)


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
        options = [(j, row[col]) for col, (m, j) in enumerate(flat) if m == n]
        out.append(max(options, key=lambda o: o[1]))
    return out
