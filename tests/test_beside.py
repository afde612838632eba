"""The sentence of the chosen one's article that names what the question asks for.

When the writer's best sentence holds no span of the asked-for kind, ``Weights.beside`` says
how far to look for one (``assistant.beside``: the neighbours, the passage, the article's
retrieved passages, its lead, its most probable sentence); the sentence found is quoted beside
the best one and gives the short answer.  Off as fitted (benchmarks/RESULTS.md).  The embedding
model and the spaCy model are real.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.beside import around
from assistant.extractive import FITTED, ExtractiveWriter
from assistant.models import CANNOT_ANSWER, Source, SourceSentence
from index.embeddings import Embedder
from tests.test_extractive import source

SALE = "Which company's owner began a formal process that could end in selling the business?"
OWNER = ("The company's owner said on Tuesday that he has begun a formal process that could end "
         "in selling the business.")
LEAD = "Boeing may soon change hands."
FLOOD = "Which country's heavy rain forced thousands of people to leave their homes this week?"
RAIN = "Heavy rain forced thousands of people to leave their homes this week, officials said."
BESIDE = replace(FITTED, beside="neighbour")


def chunk(number: int, article: str, start: int, *texts: str) -> Source:
    """A retrieved passage of ``article`` whose first sentence starts at offset ``start``."""
    sentences = []
    for text in texts:
        sentences.append(SourceSentence(start=start, end=start + len(text), text=text))
        start += len(text) + 1
    return Source(number=number, chunk_id=f"{article}#h#{number}", article_id=article,
                  title="News", score=1.0, sentences=sentences)


def writer(embedder: Embedder, reach: str | None, **weights: object) -> ExtractiveWriter:
    return ExtractiveWriter(embedder, threshold=0.4,
                            weights=replace(FITTED, beside=reach, **weights))  # type: ignore[arg-type]


# --- the neighbour (the reach first measured) --------------------------------------------------


def test_the_sentence_before_naming_the_asked_kind_is_quoted_and_gives_the_short_answer(
    embedder: Embedder,
) -> None:
    sources = [source(1, LEAD, OWNER, "Analysts expect several bids."),
               source(2, "A bakery in Lyon sold out of croissants.")]
    text, short = ExtractiveWriter(embedder, threshold=0.4, weights=BESIDE).answer_with_short(SALE, sources)
    assert text.startswith(f"{OWNER} [1] {LEAD} [1]")
    assert short is not None and short.kind == "org" and short.number == 1
    assert sources[0].sentences[0].text[short.start : short.end] == short.text == "Boeing"


def test_nothing_is_added_when_neither_neighbour_names_the_asked_kind(embedder: Embedder) -> None:
    sources = [source(1, "Shipping may soon change hands.", OWNER, "Analysts expect several bids.")]
    text, short = ExtractiveWriter(embedder, threshold=0.4, weights=BESIDE).answer_with_short(SALE, sources)
    assert text == f"{OWNER} [1]" and short is None


def test_a_nearby_kind_is_refused_when_no_sentence_or_neighbour_names_one(embedder: Embedder) -> None:
    rule = writer(embedder, "neighbour", nearby=frozenset({"place"}))
    nowhere = [source(1, "Floods cut roads across the region.", RAIN, "The water began to recede.")]
    assert rule.answer(FLOOD, nowhere) == CANNOT_ANSWER
    named = [source(1, "Floods cut roads across Portugal.", RAIN, "The water began to recede.")]
    text, short = rule.answer_with_short(FLOOD, named)
    assert text != CANNOT_ANSWER and short is not None and short.text == "Portugal"


def test_without_the_rule_the_on_topic_sentence_answers_alone(embedder: Embedder) -> None:
    nowhere = [source(1, "Floods cut roads across the region.", RAIN, "The water began to recede.")]
    assert writer(embedder, None).answer(FLOOD, nowhere) == f"{RAIN} [1]"


# --- the article: its other retrieved passages ---------------------------------------------------

# The chosen sentence in the article's second retrieved passage; the article's lead, naming the
# company, in its first; another article naming another company.
SPLIT = [chunk(1, "boeing", 400, "Shipping news came early.", OWNER, "The water was calm."),
         chunk(2, "boeing", 0, LEAD, "It has built planes for a century."),
         chunk(3, "airbus", 0, "Airbus declined to comment.")]


def test_the_article_lead_in_another_passage_is_quoted_when_the_chosen_sentence_names_none(
    embedder: Embedder,
) -> None:
    for reach in ("article", "lead", "best"):
        text, short = writer(embedder, reach).answer_with_short(SALE, SPLIT)
        assert text.startswith(f"{OWNER} [1] {LEAD} [2]"), reach
        assert short is not None and (short.text, short.number, short.article_id) == (
            "Boeing", 2, "boeing")
        assert short.start == 0 and short.end == len("Boeing")


def test_the_neighbour_and_the_passage_do_not_reach_another_passage(embedder: Embedder) -> None:
    for reach in ("neighbour", "chunk"):
        text, short = writer(embedder, reach).answer_with_short(SALE, SPLIT)
        assert "Boeing" not in text and short is None, reach


def test_nothing_is_added_when_the_article_names_nothing_of_the_kind(embedder: Embedder) -> None:
    # only another article names a company: its name is no answer to this article's sentence
    sources = [SPLIT[0], chunk(2, "boeing", 0, "Shipping may soon change hands."), SPLIT[2]]
    for reach in ("article", "lead", "best"):
        text, short = writer(embedder, reach).answer_with_short(SALE, sources)
        assert text == f"{OWNER} [1]" and short is None, reach


# the chosen sentence's article naming two companies: a nearer one, and one in its lead or
# one about the sale ("best": the evidence model's most probable)
GOLDMAN = [chunk(1, "boeing", 400, "Shipping news came early.", OWNER,
                 "Analysts at Goldman Sachs expect several bids."),
           chunk(2, "boeing", 0, LEAD)]
AIRBUS = [chunk(1, "boeing", 400, "Shipping news came early.", OWNER, "Airbus declined to comment."),
          chunk(2, "boeing", 0, "Fans hope a buyer keeps Boeing in Seattle after the sale of the business.")]


@pytest.mark.parametrize(
    ("sources", "reach", "named"),
    [
        (GOLDMAN, "lead", "Boeing"),  # the earliest
        (GOLDMAN, "article", "Goldman Sachs"),  # the nearest
        (AIRBUS, "neighbour", "Airbus"),
        (AIRBUS, "best", "Boeing"),  # about the sale, though further away
    ],
)
def test_the_reach_decides_which_name_of_the_article_is_taken(
    embedder: Embedder, sources: list[Source], reach: str, named: str,
) -> None:
    short = writer(embedder, reach).answer_with_short(SALE, sources)[1]
    assert short is not None and short.text == named


def test_the_sentence_found_is_added_to_the_quotes_or_takes_the_last_ones_place(
    embedder: Embedder,
) -> None:
    in_place = ExtractiveWriter(embedder, threshold=0.4, max_sentences=1,
                                weights=replace(FITTED, beside="article"))
    added = ExtractiveWriter(embedder, threshold=0.4, max_sentences=1,
                             weights=replace(FITTED, beside="article", beside_adds=True))
    assert in_place.answer(SALE, SPLIT) == f"{OWNER} [1]"
    assert added.answer(SALE, SPLIT) == f"{OWNER} [1] {LEAD} [2]"


@pytest.mark.parametrize(
    ("reach", "expected"),
    [
        ("neighbour", [(0, 0), (0, 2)]),
        ("chunk", [(0, 0), (0, 2), (0, 3)]),
        ("article", [(0, 0), (0, 2), (0, 3), (1, 1), (1, 0)]),
        ("lead", [(1, 0), (1, 1), (0, 0), (0, 2), (0, 3)]),
    ],
)
def test_the_sentences_tried_at_each_reach_in_order(reach: str, expected: list) -> None:
    # passage 0 starts at 100; passage 1 (starting at 0) repeats passage 0's first sentence
    sources = [chunk(1, "x", 100, "aaaa.", "bbbb.", "cccc.", "dddd."),
               chunk(2, "x", 0, "eeee.", "ffff.", "aaaa."),
               chunk(3, "y", 0, "gggg.")]
    sources[1].sentences[2] = sources[0].sentences[0]
    assert around(sources, 0, 1, reach) == expected  # type: ignore[arg-type]
