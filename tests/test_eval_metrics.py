"""The evaluation metrics, one table per function: what each counts, and when it does not apply."""

from __future__ import annotations

import pytest

from assistant.models import AnswerSentence, Citation, DroppedSentence
from evals.metrics import (
    citation_precision,
    citation_recall,
    citation_valid,
    citation_validity,
    contains_answer,
    distinct,
    false_refusal_rate,
    hit_at_k,
    mean,
    normalise,
    percentile,
    reciprocal_rank,
    refusal_accuracy,
)

ARTICLE = "Assad flew to Moscow. He met Putin on October 20."


def citation(
    quote: str, start: int, end: int, *, article_id: str = "a", supported: bool = True
) -> Citation:
    return Citation(
        number=1,
        sentence=0,
        article_id=article_id,
        title="t",
        quote=quote,
        start=start,
        end=end,
        support=0.9 if supported else 0.1,
        supported=supported,
    )


def sentence(supported: bool) -> AnswerSentence:
    return AnswerSentence(text="s", citations=[], supported=supported)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Free Syrian Army", "free syrian army"),
        ("  a  cat   AN owl  ", "cat owl"),
        ("51.9%", "519"),
        ("U.S.", "us"),
        ("Churyumov-Gerasimenko", "churyumovgerasimenko"),
        ("Zürich, Côte d’Ivoire", "zurich cote divoire"),
        ("“Balmoral”…", "balmoral"),
        ("theatre", "theatre"),  # 'the' only as a whole word
        ("", ""),
    ],
)
def test_normalise_is_squad_style(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    ("text", "answers", "expected"),
    [
        ("He met Putin on October 20 [1].", ["October 20", "20 October"], True),
        ("He met Putin on 20 October.", ["October 20", "20 October"], True),
        ("Leave won 51.9% of the vote.", ["51.9 percent", "51.9%"], True),
        ("The SPIRE collapsed.", ["the spire"], True),
        ("Talks in Cameroon.", ["Cameron"], False),  # whole words only
        ("It happened in 2020.", ["20"], False),
        ("It happened on the 20th.", ["October 20"], False),
        ("anything", [], None),  # nothing to look for
        ("anything", ["", "  "], None),
    ],
)
def test_contains_answer_by_normalised_whole_words(
    text: str, answers: list[str], expected: bool | None
) -> None:
    assert contains_answer(text, answers) is expected


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["a", "a", "b", "a", "c"], ["a", "b", "c"]),
        ([], []),
    ],
)
def test_distinct_keeps_first_seen_order(ids: list[str], expected: list[str]) -> None:
    assert distinct(ids) == expected


@pytest.mark.parametrize(
    ("ranked", "relevant", "k", "expected"),
    [
        (["a", "b", "c"], ["a"], 1, 1.0),
        (["a", "b", "c"], ["c"], 1, 0.0),
        (["a", "b", "c"], ["c"], 3, 1.0),
        (["a", "b", "c"], ["c", "x"], 10, 1.0),
        (["a", "b"], ["x"], 10, 0.0),
        ([], ["x"], 5, 0.0),
        (["a"], [], 5, None),  # nothing relevant: not scored
    ],
)
def test_hit_at_k(ranked: list[str], relevant: list[str], k: int, expected: float | None) -> None:
    assert hit_at_k(ranked, relevant, k) == expected


@pytest.mark.parametrize(
    ("ranked", "relevant", "cutoff", "expected"),
    [
        (["a", "b", "c"], ["a"], 10, 1.0),
        (["a", "b", "c"], ["b", "c"], 10, 0.5),
        (["a", "b", "c"], ["c"], 10, 1 / 3),
        (["a", "b", "c"], ["c"], 2, 0.0),  # beyond the cut-off
        (["a"], ["x"], 10, 0.0),
        (["a"], [], 10, None),
    ],
)
def test_reciprocal_rank(
    ranked: list[str], relevant: list[str], cutoff: int, expected: float | None
) -> None:
    assert reciprocal_rank(ranked, relevant, cutoff) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("quote", "start", "end", "text", "expected"),
    [
        ("Assad flew to Moscow.", 0, 21, ARTICLE, True),
        ("He met Putin on October 20.", 22, 49, ARTICLE, True),
        ("He met Putin on October 20.", 21, 48, ARTICLE, False),  # offsets shifted
        ("Assad flew to Moscow!", 0, 21, ARTICLE, False),  # quote altered
        ("Assad flew to Moscow.", 0, 21, None, False),  # article not in the index
        ("x", 48, 60, ARTICLE, False),  # past the end
        ("", 5, 5, ARTICLE, False),  # empty span
    ],
)
def test_citation_valid_means_quote_is_exactly_the_span(
    quote: str, start: int, end: int, text: str | None, expected: bool
) -> None:
    assert citation_valid(citation(quote, start, end), text) is expected


@pytest.mark.parametrize(
    ("citations", "texts", "expected"),
    [
        ([citation("Assad flew to Moscow.", 0, 21)], {"a": ARTICLE}, 1.0),
        (
            [citation("Assad flew to Moscow.", 0, 21), citation("nope", 0, 4)],
            {"a": ARTICLE},
            0.5,
        ),
        ([citation("Assad flew to Moscow.", 0, 21, article_id="gone")], {"a": ARTICLE}, 0.0),
        ([], {"a": ARTICLE}, None),
    ],
)
def test_citation_validity_is_the_share_of_valid_citations(
    citations: list[Citation], texts: dict[str, str], expected: float | None
) -> None:
    assert citation_validity(citations, texts) == expected


@pytest.mark.parametrize(
    ("supported", "expected"),
    [([True, True], 1.0), ([True, False, False, True], 0.5), ([False], 0.0), ([], None)],
)
def test_citation_precision_is_the_share_of_supporting_citations(
    supported: list[bool], expected: float | None
) -> None:
    cites = [citation("q", 0, 1, supported=s) for s in supported]
    assert citation_precision(cites) == expected


@pytest.mark.parametrize(
    ("supported", "expected"),
    [([True], 1.0), ([True, False], 0.5), ([False, False], 0.0), ([], None)],
)
def test_citation_recall_is_the_share_of_supported_sentences(
    supported: list[bool], expected: float | None
) -> None:
    assert citation_recall([sentence(s) for s in supported]) == expected


@pytest.mark.parametrize(("kept", "dropped", "expected"), [(1, 1, 0.5), (0, 2, 0.0), (2, 0, 1.0)])
def test_citation_recall_counts_the_sentences_the_check_removed(
    kept: int, dropped: int, expected: float
) -> None:
    removed = [DroppedSentence(text="Uncited.", kind="uncited", reason="it cites no source")]
    assert citation_recall([sentence(True)] * kept, removed * dropped) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1.0, 0.0], 0.5), ([True, False, True, None], 2 / 3), ([None, None], None), ([], None)],
)
def test_mean_skips_values_that_do_not_apply(values: list, expected: float | None) -> None:
    assert mean(values) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("answerable", "refused", "accuracy", "false_refusals"),
    [
        ([False, False, True], [True, False, False], 0.5, 0.0),
        ([False, True, True, True], [True, True, False, False], 1.0, 1 / 3),
        ([True, True], [False, True], None, 0.5),  # no unanswerable question
        ([False], [False], 0.0, None),  # no answerable question
        ([], [], None, None),
    ],
)
def test_refusal_accuracy_and_false_refusal_rate(
    answerable: list[bool],
    refused: list[bool],
    accuracy: float | None,
    false_refusals: float | None,
) -> None:
    assert refusal_accuracy(answerable, refused) == pytest.approx(accuracy)
    assert false_refusal_rate(answerable, refused) == pytest.approx(false_refusals)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 95, 4.8),  # linear interpolation, as numpy
        ([7.0], 95, 7.0),
        ([1.0, None, 3.0], 0, 1.0),
        ([1.0, 3.0], 100, 3.0),
        ([], 50, None),
    ],
)
def test_percentile(values: list, q: float, expected: float | None) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("short", "answers", "expected"),
    [
        ("Prince William", ["Prince William"], True),
        ("the World Health Organization", ["World Health Organization"], True),  # normalised
        ("51.9%", ["51.9 percent", "51.9%"], True),
        ("Britain", ["Balmoral"], False),
        ("Balmoral Castle", ["Balmoral"], False),  # exact, not containment
        (None, ["Balmoral"], False),  # no short answer is a miss
        ("Balmoral", [], None),  # nothing to compare with
    ],
)
def test_short_answer_exact(short: str | None, answers: list[str], expected: bool | None) -> None:
    from evals.metrics import short_answer_exact

    assert short_answer_exact(short, answers) is expected
