"""The sentence beside the chosen one: quoted when only it names what the question asks for.

``Weights.beside`` turns the rule on (off as fitted: benchmarks/RESULTS.md).  The embedding
model and the spaCy model are real.
"""

from __future__ import annotations

from dataclasses import replace

from assistant.extractive import FITTED, ExtractiveWriter
from assistant.models import CANNOT_ANSWER
from index.embeddings import Embedder
from tests.test_extractive import source

SALE = "Which company's owner began a formal process that could end in selling the business?"
OWNER = ("The company's owner said on Tuesday that he has begun a formal process that could end "
         "in selling the business.")
FLOOD = "Which country's heavy rain forced thousands of people to leave their homes this week?"
RAIN = "Heavy rain forced thousands of people to leave their homes this week, officials said."
BESIDE = replace(FITTED, beside=True)


def test_the_sentence_before_naming_the_asked_kind_is_quoted_and_gives_the_short_answer(
    embedder: Embedder,
) -> None:
    sources = [source(1, "Boeing may soon change hands.", OWNER, "Analysts expect several bids."),
               source(2, "A bakery in Lyon sold out of croissants.")]
    text, short = ExtractiveWriter(embedder, threshold=0.4, weights=BESIDE).answer_with_short(SALE, sources)
    assert text.startswith(f"{OWNER} [1] Boeing may soon change hands. [1]")
    assert short is not None and short.kind == "org" and short.number == 1
    assert sources[0].sentences[0].text[short.start : short.end] == short.text == "Boeing"


def test_nothing_is_added_when_neither_neighbour_names_the_asked_kind(embedder: Embedder) -> None:
    sources = [source(1, "Shipping may soon change hands.", OWNER, "Analysts expect several bids.")]
    text, short = ExtractiveWriter(embedder, threshold=0.4, weights=BESIDE).answer_with_short(SALE, sources)
    assert text == f"{OWNER} [1]" and short is None


def test_a_nearby_kind_is_refused_when_no_sentence_or_neighbour_names_one(embedder: Embedder) -> None:
    writer = ExtractiveWriter(embedder, threshold=0.4,
                              weights=replace(BESIDE, nearby=frozenset({"place"})))
    nowhere = [source(1, "Floods cut roads across the region.", RAIN, "The water began to recede.")]
    assert writer.answer(FLOOD, nowhere) == CANNOT_ANSWER
    named = [source(1, "Floods cut roads across Portugal.", RAIN, "The water began to recede.")]
    text, short = writer.answer_with_short(FLOOD, named)
    assert text != CANNOT_ANSWER and short is not None and short.text == "Portugal"


def test_without_the_rule_the_on_topic_sentence_answers_alone(embedder: Embedder) -> None:
    writer = ExtractiveWriter(embedder, threshold=0.4, weights=replace(BESIDE, nearby=frozenset()))
    nowhere = [source(1, "Floods cut roads across the region.", RAIN, "The water began to recede.")]
    assert writer.answer(FLOOD, nowhere) == f"{RAIN} [1]"
