"""Question analysis: what a question asks for, and which spans of a sentence can answer it."""

from __future__ import annotations

import pytest

from assistant.question import (
    analyse,
    asked_words,
    asking,
    event_words,
    list_span,
    number_spans,
    root,
    roots,
    spans,
    speaks,
)


@pytest.mark.parametrize(
    ("question", "kind", "plural"),
    [
        ("When did Assad visit Moscow?", "date", False),
        ("What year did Cassini reach Saturn?", "date", False),
        ("How many Russian aircraft are stationed at Hmeymim?", "number", False),
        ("The storm hit on Monday. By how much did prices rise?", "number", False),
        ("What percentage of US adults have received the latest vaccine?", "number", False),
        ("Who is next in line after King Charles?", "person", False),
        ("Where is the mega rocket's launchpad located?", "place", False),
        ("A blob of seaweed is heading for the shores of which state?", "place", False),
        ("Which news agencies contributed reporting to the article?", "org", True),
        ("Which NBA team did Mac McClung represent when he won the Slam Dunk Contest?", "org", False),
        ("Which US Cabinet official is facing impeachment proceedings?", "person", False),
        ("Which chocolate bar now has paper wrappers?", "thing", False),
        ("What was the name of the Chandrayaan-3 lander?", "thing", False),
        ("Why did the talks fail?", None, False),
        ("What did Angela Merkel say about the Russian air strikes?", None, False),
    ],
)
def test_what_a_question_asks_for(question: str, kind: str | None, plural: bool) -> None:
    analysed = analyse(question)
    assert (analysed.kind, analysed.plural) == (kind, plural)


def test_the_asking_sentence_decides_not_the_context_before_it() -> None:
    # quiz questions open with context; a "when" in the context does not make it a date question
    q = analyse("When the deal closed, shares rose. Which airline plans to buy Hawaiian Airlines "
                "in a $1.9 billion deal?")
    assert q.kind == "org"


def test_the_asking_sentence_is_the_last_one_holding_a_question_mark() -> None:
    assert asking("The deal closed. Which airline bought Hawaiian? Shares rose.") == \
        "Which airline bought Hawaiian?"
    assert asking("Scientists examining a meteorite have identified what") == \
        "Scientists examining a meteorite have identified what"


def test_a_how_many_question_counts_the_noun_not_what_follows_it() -> None:
    assert analyse("How many astronauts flew aboard Orion on the mission?").counted == {"astronaut"}
    assert analyse("How many alleged gang members have been jailed?").counted == \
        {"alleg", "gang", "member"}
    assert analyse("How many people died in the fire?").counted == {"peopl"}


@pytest.mark.parametrize(
    ("question", "recent"),
    [
        ("Which state passed a bill this week banning assault weapons?", True),
        ("Who won the primary on Tuesday?", True),
        ("What did the senator announce last weekend?", True),
        ("Which company reported record profits today?", True),
        ("Which country hosted the 2022 World Cup?", False),
        ("Who wrote the weekly column?", False),
    ],
)
def test_a_question_placing_its_event_in_the_last_days_is_recent(question: str,
                                                                 recent: bool) -> None:
    assert analyse(question).recent is recent


def test_what_a_question_already_names_and_who_it_asks_about() -> None:
    q = analyse("What did Angela Merkel say about the Russian air strikes?")
    assert q.speaker == "Angela Merkel"
    assert {"merkel", "russian", "strikes"} <= q.named
    assert analyse("What did the report say about jobs?").speaker is None  # no name, no speaker
    assert analyse("How many people now live on Earth?").counted == {"peopl"}


@pytest.mark.parametrize(
    ("sentence", "numbers"),
    [
        ("The rally drew 5,000 people and cost $1.2 million.", ["5,000", "$1.2 million"]),
        ("Leave won 51.9 percent of the vote.", ["51.9 percent"]),
        ("Two astronauts were on board.", ["Two"]),
        ("A Russian SU-25 strike fighter takes off, outside Latakia.", []),  # a name, not a count
        ("Cases of COVID-19 rose in 2020.", []),  # a name and a year
    ],
)
def test_numbers_are_quantities_not_names_or_years(sentence: str, numbers: list[str]) -> None:
    assert [sentence[a:b] for a, b in number_spans(sentence)] == numbers


def test_a_how_many_question_is_answered_by_a_number_of_the_thing_counted() -> None:
    q = analyse("How many people were injured in the fire?")
    sentence = "About 400 firefighters battled the flames, and 12 people were hurt."
    assert [sentence[a:b] for a, b in spans(q, sentence)] == ["12"]
    assert spans(q, "About 400 firefighters battled the flames.") == []


def test_spans_of_the_asked_kind_leave_out_what_the_question_names() -> None:
    q = analyse("Who did President Joe Biden meet at the White House?")
    sentence = "Joe Biden met Donald Trump at the White House."
    ents = [(0, 9, "PERSON"), (14, 26, "PERSON"), (30, 45, "ORG")]
    assert [sentence[a:b] for a, b in spans(q, sentence, ents=ents)] == ["Donald Trump"]


def test_a_list_of_spans_joined_by_commas_and_and_is_one_answer() -> None:
    sentence = "With reporting by AFP, Reuters, Interfax, and AP"
    found = [(18, 21), (23, 30), (32, 40), (46, 48)]
    start, end = list_span(sentence, found)  # type: ignore[misc]
    assert sentence[start:end] == "AFP, Reuters, Interfax, and AP"
    assert list_span("Talks in Paris ended; Moscow disagreed.", [(9, 14), (22, 28)]) is None


@pytest.mark.parametrize(
    ("sentence", "speaking"),
    [
        ('"It is a major mistake," Lavrov said.', True),
        ("Russian Foreign Minister Sergei Lavrov said in an interview that ...", True),
        ("Merkel, the German chancellor, told reporters the strikes must stop.", True),
        ("The strikes must stop, said Chancellor Angela Merkel.", True),
        ("According to Merkel, the strikes must stop.", True),
        ("Some Western governments have criticized Russian air strikes.", False),
        ("Merkel met Putin in Berlin.", False),
    ],
)
def test_a_speaker_is_someone_reported_saying_something(sentence: str, speaking: bool) -> None:
    speaker = "Sergei Lavrov" if "Lavrov" in sentence else "Angela Merkel"
    assert speaks(speaker, sentence) is speaking


# --- what the question asks about, beyond its kind ---------------------------------------------


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        # framing ("did", "this week") and the answer's type noun ("which state") are not asked about
        ("Which state passed a bill this week banning most sales of assault weapons?",
         {"pass", "bill", "ban", "sale", "assault", "weapon"}),
        # irregular forms meet their lemma: "ran" in a source matches "run" in a question
        ("When did the Ever Given run aground?", {"run", "aground"}),
        ("When did the Philae lander wake up from hibernation?", {"lander", "wake", "hibern"}),
    ],
)
def test_the_words_a_question_asks_about(question: str, asked: set[str]) -> None:
    assert asked_words(analyse(question)) == asked


def test_irregular_forms_share_a_root() -> None:
    assert roots("The ship ran aground") >= {root("run"), root("aground")}
    assert root("began") == root("begin") and root("won") == root("win")


def test_event_words_are_those_beyond_the_story_title() -> None:
    asked = asked_words(analyse("When did the Philae lander wake up from hibernation?"))
    assert event_words(asked, "Philae lander touches down on comet") == {"wake", "hibern"}


def test_a_dateline_is_never_an_answer_span() -> None:
    q = analyse("Which state is Santos from?")
    sentence = "WASHINGTON – Rep. George Santos of New York was expelled from Congress."
    ny = sentence.index("New York")
    ents = [(0, 10, "GPE"), (ny, ny + 8, "GPE")]
    assert [sentence[a:b] for a, b in spans(q, sentence, ents=ents)] == ["New York"]
    cnn = "(CNN) The storm hit Texas on Monday."
    tx = cnn.index("Texas")
    assert [cnn[a:b] for a, b in spans(q, cnn, ents=[(1, 4, "GPE"), (tx, tx + 5, "GPE")])] == ["Texas"]


def test_entity_spans_lose_edge_punctuation_and_possessives() -> None:
    q = analyse("Which university apologised for the letters?")
    sentence = "– Northeastern University’s law school apologised."
    found = spans(q, sentence, ents=[(0, 27, "ORG")])
    assert [sentence[a:b] for a, b in found] == ["Northeastern University"]


def test_which_city_wants_a_city_not_a_sea() -> None:
    q = analyse("In which city did Putin speak to the Valdai club?")
    sentence = "Putin spoke at the Valdai club in the Black Sea resort of Sochi."
    sea, sochi = sentence.index("Black Sea"), sentence.index("Sochi")
    ents = [(sea, sea + 9, "LOC"), (sochi, sochi + 5, "GPE")]
    assert [sentence[a:b] for a, b in spans(q, sentence, ents=ents)] == ["Sochi"]


def test_a_who_question_naming_a_role_wants_a_person() -> None:
    sentence = "The vote prompted the European Union to act."
    eu = sentence.index("the European Union")
    ents = [(eu, eu + 18, "ORG")]
    role = analyse("Who succeeded David Cameron as British prime minister?")
    assert spans(role, sentence, ents=ents) == []
    no_role = analyse("Who won the cup?")  # a team may win
    assert spans(no_role, sentence, ents=ents) == [(eu, eu + 18)]
