"""The extractive writer's first stage: which sentences get embedded, scored without a model."""

from __future__ import annotations

import sys

import pytest

from assistant import shortlist
from assistant.extractive import ExtractiveWriter
from assistant.models import Source, SourceSentence
from assistant.question import analyse
from index.embeddings import Embedder
from index.timex import Mention


def source(number: int, *texts: str, dates: dict[int, list[Mention]] | None = None) -> Source:
    sentences, start = [], 0
    for n, text in enumerate(texts):
        sentences.append(SourceSentence(start=start, end=start + len(text), text=text,
                                        dates=(dates or {}).get(n, [])))
        start += len(text) + 1
    return Source(number=number, chunk_id=f"a{number}#h#0", article_id=f"a{number}",
                  title="Harbour news", score=1.0, sentences=sentences)


def feature(found: shortlist.Shortlisted, name: str, cell: tuple[int, int]) -> float:
    return found.features[found.cells.index(cell)][shortlist.FEATURES.index(name)]


FILLER = [f"The harbour council met again on the {n}th to discuss the ferry timetable." for n in range(8)]


def test_the_shortlist_keeps_a_sentence_of_the_asked_kind_beside_the_one_repeating_the_question() -> None:
    # the answer names the buyer but shares no word with the question; it sits beside the
    # sentence that repeats it, among sentences that each share a word ("ferry")
    sources = [source(1, *FILLER),
               source(2, "The ferry operator was sold after months of talks.",
                      "Nordlink Shipping paid 40 million for it, the buyer said.")]
    question = analyse("Which company bought the ferry operator?")
    found = shortlist.features(question, sources)
    answer = found.cells.index((1, 1))
    weighted = shortlist.FirstStage(kind=0.5, neighbour=0.5)
    assert answer in shortlist.shortlist(found, 3, weighted)
    assert answer not in shortlist.shortlist(found, 3, shortlist.FirstStage())  # overlap alone


def test_rare_words_of_the_asking_sentence_weigh_more_than_common_ones() -> None:
    sources = [source(1, "The council said the ferry timetable would change.",
                      "The council said the pier would reopen in May.",
                      "The council said it met.", "The council said little more.")]
    found = shortlist.features(analyse("When will the council reopen the pier?"), sources)
    assert feature(found, "ask", (0, 1)) > feature(found, "ask", (0, 0)) > 0
    unindexed = shortlist.features(analyse("When will the council reopen the pier?"), sources,
                                   bm25=False)
    assert feature(unindexed, "ask", (0, 1)) == 0 and unindexed.lexical == found.lexical
    overlap = shortlist.features(analyse("When will the council reopen the pier?"), sources,
                                 overlap_only=True)
    assert shortlist.FITTED.overlap_only and overlap.lexical == found.lexical
    assert all(f[2:] == (0.0,) * (len(shortlist.FEATURES) - 2) for f in overlap.features)


@pytest.mark.parametrize(
    ("question", "holds", "lacks"),
    [
        ("When did the pier reopen?", 0, 3),  # a date mention (stored with the sentence)
        ("How many ferries sail each day?", 1, 3),  # a quantity
        ("Who runs the ferry company?", 2, 3),  # a name the question does not use
    ],
)
def test_the_asked_for_kind_is_judged_without_the_entity_model(question: str, holds: int,
                                                               lacks: int) -> None:
    may = Mention(start=0, end=3, text="May", kind="absolute", granularity="month", year=2024,
                  month=5)
    sources = [source(1, "May saw the pier reopen.", "Twelve ferries sail each day.",
                      "It is run by Anna Berg.", "It sails when the tide allows.",
                      dates={0: [may]})]
    spacy_loaded = "spacy" in sys.modules
    found = shortlist.features(analyse(question), sources)
    assert feature(found, "kind", (0, holds)) == 1.0 and feature(found, "kind", (0, lacks)) == 0.0
    assert ("spacy" in sys.modules) == spacy_loaded


def test_a_limit_embeds_only_the_shortlist(embedder: Embedder) -> None:
    sources = [source(1, *FILLER), source(2, "Nordlink Shipping bought the ferry operator.")]
    writer = ExtractiveWriter(embedder.with_own_cache(), threshold=0.2)
    ranked = writer.rank("Which company bought the ferry operator?", sources, limit=4)
    assert len(ranked) == 4 and (1, 0) in {(i, j) for _, i, j in ranked}
    assert len(writer.embedder._cache) == 5  # the question and the four sentences, no more
    assert len(writer.rank("Which company bought the ferry operator?", sources)) == 9
    assert writer.rank("Anything?", [source(1)]) == []
