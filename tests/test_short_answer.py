"""Which span of the quoted sentence is the short answer: the one the other candidates name.

Table tests of ``assistant.short_answer.agreed``, then the writer with the real embedding and
entity models.
"""

from __future__ import annotations

import pytest

from assistant.extractive import ExtractiveWriter
from assistant.question import analyse
from assistant.short_answer import agreed
from index.embeddings import Embedder
from tests.test_extractive import source

QUESTION = analyse("Which company agreed to buy the struggling carrier?")
SENTENCE = "Executives at Google agreed on a plan, and Microsoft will buy the struggling carrier."
GOOGLE = (SENTENCE.index("Google"), SENTENCE.index("Google") + len("Google"))
MICROSOFT = (SENTENCE.index("Microsoft"), SENTENCE.index("Microsoft") + len("Microsoft"))


@pytest.mark.parametrize(
    ("others", "weights", "expected"),
    [
        ([], [], GOOGLE),  # nobody else names either: the one nearest the question's words
        (["Microsoft's offer values the carrier at $2 billion."], [0.6], MICROSOFT),
        (["Google shares fell.", "Microsoft's offer values the carrier."], [0.2, 0.6], MICROSOFT),
        (["Google shares fell.", "Microsoft's offer values the carrier."], [0.7, 0.3], GOOGLE),
        (["Microsoftware sells games."], [0.9], GOOGLE),  # whole words only
    ],
)
def test_the_span_other_candidates_name_most_wins_ties_go_to_the_nearest(
    others: list[str], weights: list[float], expected: tuple[int, int]
) -> None:
    assert agreed(QUESTION, SENTENCE, [GOOGLE, MICROSOFT], others, weights) == expected


def test_the_writer_marks_the_span_another_source_confirms(embedder: Embedder) -> None:
    sources = [source(1, SENTENCE), source(2, "Microsoft's offer values the struggling carrier.")]
    writer = ExtractiveWriter(embedder, threshold=0.3, max_sentences=1)
    text, short = writer.answer_with_short(QUESTION.text, sources)
    assert text == f"{SENTENCE} [1]"
    assert short is not None and short.text == "Microsoft" and short.number == 1
