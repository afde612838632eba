"""Citation parsing and enforcement, as table tests: the rules every answer is held to."""

from __future__ import annotations

import pytest

from assistant.citations import enforce, is_refusal, marker_numbers, parse, strip_markers
from assistant.models import CANNOT_ANSWER, Source, SourceSentence


@pytest.mark.parametrize(
    ("body", "numbers"),
    [("1", [1]), ("1, 3", [1, 3]), ("1,3", [1, 3]), ("2-4", [2, 3, 4]), ("2–3", [2, 3]),
     ("1; 2", [1, 2]), ("1 and 2", [1, 2]), (" 7 ", [7])],
)
def test_marker_numbers(body: str, numbers: list[int]) -> None:
    assert marker_numbers(body) == numbers


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Assad visited Moscow [1].", [("Assad visited Moscow.", [1])]),
        ("Assad visited Moscow [1][2].", [("Assad visited Moscow.", [1, 2])]),
        ("Assad visited Moscow [1, 3].", [("Assad visited Moscow.", [1, 3])]),
        ("Assad visited Moscow [2][2][1].", [("Assad visited Moscow.", [2, 1])]),
        ("Assad visited Moscow. [1] Putin spoke later. [2]",
         [("Assad visited Moscow.", [1]), ("Putin spoke later.", [2])]),
        ('Lavrov said "we are ready [3]" on Saturday.', [('Lavrov said "we are ready" on Saturday.', [3])]),
        ("No citation here. Cited one [1].", [("No citation here.", []), ("Cited one.", [1])]),
        ("It was 2015 [1].", [("It was 2015.", [1])]),
        ("The list [1] [2] [3].", [("The list.", [1, 2, 3])]),
    ],
)
def test_parse(answer: str, expected: list[tuple[str, list[int]]]) -> None:
    assert [(p.text, p.numbers) for p in parse(answer)] == expected


def test_strip_markers_leaves_clean_punctuation() -> None:
    assert strip_markers("He left [1] , then came back [2][3] .") == "He left, then came back."


@pytest.mark.parametrize(
    "text",
    [CANNOT_ANSWER, CANNOT_ANSWER.upper(), f"Sorry. {CANNOT_ANSWER}", CANNOT_ANSWER.rstrip(".")],
)
def test_refusal_sentinel_is_recognised(text: str) -> None:
    assert is_refusal(text)


def src(number: int, *sentences: str, start: int = 0) -> Source:
    spans, offset = [], start
    for s in sentences:
        spans.append(SourceSentence(start=offset, end=offset + len(s), text=s))
        offset += len(s) + 1
    return Source(number=number, chunk_id=f"a{number}#h#0", article_id=f"a{number}",
                  title=f"Title {number}", score=1.0, sentences=spans)


SOURCES = [
    src(1, "The sky was grey.", "Assad made a surprise visit to Moscow.", start=100),
    src(2, "Lavrov spoke on Saturday.", "Russia is ready to support the Free Syrian Army."),
]


def word_overlap(claims: list[str], evidence: list[str]) -> list[list[float]]:
    """A transparent support function for table tests: share of claim words in the evidence."""
    def words(t: str) -> set[str]:
        return {w.strip('.,"').lower() for w in t.split()}
    return [[len(words(c) & words(e)) / len(words(c)) for e in evidence] for c in claims]


@pytest.mark.parametrize(
    ("answer", "refused", "cited", "supported", "warning"),
    [
        # a good answer: each sentence cited, each citation resolved to its best sentence
        ("Assad made a surprise visit to Moscow [1].", False, [(1, 1, True)], [True], None),
        # hallucinated id: dropped; nothing valid remains, so the answer becomes a refusal
        ("Assad made a surprise visit to Moscow [7].", True, [], [], "dropped citation [7]"),
        # one valid, one hallucinated
        ("Assad made a surprise visit to Moscow [1][9].", False, [(1, 1, True)], [True], "[9]"),
        # uncited sentence is kept but marked unsupported
        ("Assad made a surprise visit to Moscow [1]. Everyone cheered.", False, [(1, 1, True)],
         [True, False], "uncited sentence"),
        # a citation whose source does not say it is flagged
        ("Assad made a surprise visit to Moscow [2].", False, [(2, 1, False)], [False],
         "does not clearly support"),
        # two sentences, two sources, adjacent markers
        (("Assad made a surprise visit to Moscow [1]. Russia is ready to support the Free Syrian "
         "Army [2][1]."), False, [(1, 1, True), (2, 1, True), (1, 0, False)], [True, True], None),
        # the model's own refusal
        (CANNOT_ANSWER, True, [], [], None),
        ("", True, [], [], None),
    ],
)
def test_enforce(
    answer: str, refused: bool, cited: list[tuple[int, int, bool]], supported: list[bool],
    warning: str | None,
) -> None:
    result = enforce(answer, SOURCES, word_overlap, threshold=0.6)
    assert result.refused is refused
    if refused:
        assert result.text == CANNOT_ANSWER
    by_number = {s.number: s for s in SOURCES}
    got = []
    for c in result.citations:
        sentence_index = [s.start for s in by_number[c.number].sentences].index(c.start)
        got.append((c.number, sentence_index, c.supported))
        assert c.quote == by_number[c.number].sentences[sentence_index].text
        assert c.article_id == f"a{c.number}"
    assert got == cited
    assert [s.supported for s in result.sentences] == supported
    if warning:
        assert any(warning in w for w in result.warnings), result.warnings


def test_citation_offsets_point_into_the_article() -> None:
    result = enforce("Assad made a surprise visit to Moscow [1].", SOURCES, word_overlap, threshold=0.5)
    (c,) = result.citations
    assert (c.start, c.end) == (118, 118 + len("Assad made a surprise visit to Moscow."))
