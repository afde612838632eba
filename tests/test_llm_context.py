"""What the language model is shown, and when it is not asked at all.

- Relative dates are resolved where a reader needs them: "on Tuesday (= October 20, 2015)", and
  "... two days after Assad made a surprise visit to Moscow (on October 20)." beside the event
  (listed below the source, or right after "two days after", a 1.5B model answered October 22).
- The evidence check (``llm_json=quote``): the model copies the answering sentence first, and a
  quote that is not a sentence it was shown turns the answer into a refusal.
- The refusal gate: with ``llm_gate`` on, a question the extractive writer finds no answer for
  is refused without a request to the model; a question it can answer still reaches the model.
  The model is an OpenAI-protocol server on loopback that records its requests.
"""

from __future__ import annotations

import json

import pytest

from assistant import context, llm
from assistant.answer import Assistant
from assistant.chat_model import TextDelta
from assistant.models import CANNOT_ANSWER, Source, SourceSentence
from assistant.prompts import load_prompts
from assistant.retrieve import retrieve
from assistant.settings import Settings, get_settings
from assistant.structured import answer_schema, render_stream
from index.embeddings import Embedder
from index.timex import Mention
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_answer import ASSAD_Q, seed_index  # noqa: F401 - shared module-scoped fixture


def mention(sentence: str, phrase: str, kind: str, *, year: int | None = None,
            day: int | None = 20, note: str = "", offset: int = 100) -> Mention:
    start = sentence.index(phrase)
    return Mention(start=offset + start, end=offset + start + len(phrase), text=phrase, kind=kind,
                   granularity="day", year=year, month=10 if day else None, day=day, note=note)


TWO_DAYS = "Putin made the remarks two days after Assad made a surprise visit to Moscow."
TUESDAY = "Assad flew to Moscow on Tuesday evening and met Putin on Wednesday."
PARTIAL = "On October 22, Putin spoke."


@pytest.mark.parametrize(
    ("text", "mentions", "shown"),
    [
        (TWO_DAYS, [("two days after", "anchored", None, 20)],
         "Putin made the remarks two days after Assad made a surprise visit to Moscow (on October 20)."),
        (TUESDAY, [("on Tuesday evening", "relative", 2015, 20), ("on Wednesday", "relative", 2015, 21)],
         ("Assad flew to Moscow on Tuesday evening (= October 20, 2015) and met Putin on "
          "Wednesday (= October 21, 2015).")),
        (PARTIAL, [("October 22", "partial", None, 22)], PARTIAL),  # the label only repeats it
        (PARTIAL, [("October 22", "partial", 2015, 22)], "On October 22 (= October 22, 2015), Putin spoke."),
        (PARTIAL, [("October 22", "absolute", 2015, 22)], PARTIAL),
        (PARTIAL, [], PARTIAL),
        (TWO_DAYS, [("two days after", "anchored", None, None)], TWO_DAYS),  # anchor not found
    ],
)
def test_relative_dates_are_resolved_where_they_stand(
    text: str, mentions: list[tuple[str, str, int | None, int | None]], shown: str
) -> None:
    dates = [mention(text, p, kind, year=year, day=day) for p, kind, year, day in mentions]
    sentence = SourceSentence(start=100, end=100 + len(text), text=text, dates=dates)
    assert context._annotated(sentence) == shown


def test_the_assad_visit_reaches_the_model_as_october_20(
    seed_index: Settings, embedder: Embedder  # noqa: F811
) -> None:
    assistant = Assistant(seed_index, embedder=embedder)
    sources = assistant._sources(retrieve(ASSAD_Q, settings=seed_index, embedder=embedder))
    shown = llm.evidence_sources(ASSAD_Q, sources, assistant.extractive.rank, sentences=4)
    user = llm.render_messages(
        ASSAD_Q, shown, as_of=None, prompts=load_prompts(seed_index.writer.prompts_dir),
        structured=True,
    )[1]["content"]
    assert "two days after Assad made a surprise visit to Moscow (on October 20)." in user
    assert "Resolved dates" not in user  # nothing else to resolve, and "after = 20" misled


# --- the refusal gate ---------------------------------------------------------------------------


def gated(base: Settings, fake: FakeOpenAI) -> Settings:
    return get_settings(
        data_dir=base.index.data_dir, llm="openai-compatible:test-model",
        openai_base_url=fake.base_url, llm_max_retries=0, llm_timeout=5, llm_gate="on",
        llm_json="on", llm_evidence="on",
    )


@pytest.mark.parametrize(
    "question",
    [
        "What did Angela Merkel say about the Russian air strikes?",  # she is never quoted
        "How many soldiers were killed at the Kweyris airbase?",  # no count of soldiers
    ],
)
def test_the_gate_refuses_what_no_source_sentence_could_answer_without_asking_the_model(
    seed_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI, question: str  # noqa: F811
) -> None:
    fake_llm.script(Reply('{"answerable": true, "sentences": [{"text": "Invented.", "sources": [1]}]}'))
    answer = Assistant(gated(seed_index, fake_llm), embedder=embedder).ask(question)
    assert answer.mode == "llm" and answer.refused and answer.text == CANNOT_ANSWER
    assert fake_llm.requests == [] and answer.usage == {}


def test_the_gate_lets_an_answerable_question_through_to_the_model(
    seed_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI  # noqa: F811
) -> None:
    reply = '{"answerable": true, "sentences": [{"text": "Assad visited Moscow on October 20.", "sources": [%d]}]}'
    assistant = Assistant(gated(seed_index, fake_llm), embedder=embedder)
    numbers = [s.number for s in assistant._sources(
        retrieve(ASSAD_Q, settings=seed_index, embedder=embedder))]
    fake_llm.script(Reply(reply % numbers[0]))
    answer = assistant.ask(ASSAD_Q)
    assert len(fake_llm.requests) == 1 and not answer.refused
    assert answer.text.startswith("Assad visited Moscow on October 20")


@pytest.mark.parametrize(
    ("llm_name", "gate", "on"),
    [("openai-compatible:m", "auto", False), ("openai-compatible:m", "on", True),
     ("openai-compatible:m", "off", False)],
)
def test_the_gate_is_off_for_servers_unless_asked_for(
    settings: Settings, embedder: Embedder, llm_name: str, gate: str, on: bool
) -> None:
    chosen = settings.updated(llm=llm_name, openai_base_url="http://127.0.0.1:9/v1", llm_gate=gate)
    writer = llm.get_writer(chosen, embedder)
    assert isinstance(writer, llm.LLMWriter) and (writer.gate is not None) is on


# --- the evidence check: the answering sentence quoted first ------------------------------------


def test_the_quote_comes_first_in_the_schema_and_is_required() -> None:
    schema = answer_schema([1, 3], quote=True)
    assert list(schema["properties"])[:2] == ["quote", "answerable"]
    assert schema["required"] == ["quote", "answerable", "sentences"]
    assert "quote" not in answer_schema([1, 3])["properties"]


def sources_saying(*texts: str) -> list[Source]:
    return [Source(number=n, chunk_id=f"c{n}", article_id=f"a{n}", title="T", score=1.0,
                   sentences=[SourceSentence(start=0, end=len(t), text=t)])
            for n, t in enumerate(texts, 1)]


@pytest.mark.parametrize(
    ("quote", "found"),
    [
        ("Putin made the remarks two days after Assad made a surprise visit to Moscow.", True),
        ("putin made the remarks two days after Assad made a visit to Moscow", True),  # loose copy
        ("Assad visited Moscow on October 20, 2015, for talks with Putin.", False),  # invented
        ("", False),
        ("Moscow.", False),  # too short to be a sentence
    ],
)
def test_a_quote_counts_only_when_it_is_a_sentence_the_model_was_shown(quote: str, found: bool) -> None:
    shown = sources_saying("On October 22, Putin spoke.", TWO_DAYS)
    assert llm.quotes_from(shown)(quote) is found


def reply(quote: str, answerable: bool) -> list[TextDelta]:
    text = json.dumps({"quote": quote, "answerable": answerable,
                       "sentences": [{"text": "Assad visited Moscow on October 20.", "sources": [2]}]
                       if answerable else []})
    return [TextDelta(text[i:i + 7]) for i in range(0, len(text), 7)]


@pytest.mark.parametrize(
    ("quote", "answerable", "text"),
    [
        (TWO_DAYS, True, "Assad visited Moscow on October 20 [2]."),
        ("Assad flew to Moscow on a Tuesday for secret talks.", True, CANNOT_ANSWER),  # not shown
        ("", True, CANNOT_ANSWER),
        (TWO_DAYS, False, CANNOT_ANSWER),
    ],
)
def test_a_structured_answer_whose_quote_is_not_in_the_sources_is_a_refusal(
    quote: str, answerable: bool, text: str
) -> None:
    shown = sources_saying("On October 22, Putin spoke.", TWO_DAYS)
    events = list(render_stream(reply(quote, answerable), quoted=llm.quotes_from(shown)))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text


def numbered(number: int, count: int) -> Source:
    """Source ``number`` with ``count`` sentences 'sN.M'."""
    sentences = [SourceSentence(start=10 * k, end=10 * k + 5, text=f"s{number}.{k}")
                 for k in range(count)]
    return Source(number=number, chunk_id=f"c{number}", article_id=f"a{number}", title="T",
                  score=1.0, sentences=sentences)


@pytest.mark.parametrize(
    ("sentences", "window", "shown"),
    [
        (1, 0, {2: ["s2.3"]}),
        (1, 1, {2: ["s2.2", "s2.3", "s2.4"]}),
        (2, 0, {1: ["s1.0"], 2: ["s2.3"]}),  # source 1's first sentence: no neighbour before it
        (2, 1, {1: ["s1.0", "s1.1"], 2: ["s2.2", "s2.3", "s2.4"]}),
        (3, 1, {1: ["s1.0", "s1.1"], 2: ["s2.2", "s2.3", "s2.4", "s2.5"]}),  # windows merge
    ],
)
def test_evidence_keeps_the_best_sentences_with_window_neighbours_and_the_source_numbers(
    sentences: int, window: int, shown: dict[int, list[str]]
) -> None:
    sources = [numbered(1, 4), numbered(2, 6), numbered(3, 2)]  # source 3: never picked

    def rank(question: str, given: object) -> list[tuple[float, int, int]]:
        return [(0.9, 1, 3), (0.8, 0, 0), (0.1, 1, 4)]  # (score, source index, sentence index)

    cut = context.evidence_sources("q", sources, rank, sentences=sentences, window=window)
    assert {s.number: [t.text for t in s.sentences] for s in cut} == shown


def test_the_writer_passes_its_evidence_window_to_the_cut(fake_llm: FakeOpenAI) -> None:
    sources = [numbered(1, 4), numbered(2, 6)]

    def rank(question: str, given: object) -> list[tuple[float, int, int]]:
        return [(0.9, 1, 3)]

    shown: dict[int, str] = {}
    for window in (0, 2):
        fake_llm.script(Reply('{"answerable": false, "sentences": []}'))
        model = llm.OpenAIChatModel("m", api_key="k", base_url=fake_llm.base_url, timeout=5,
                                    max_retries=0)
        writer = llm.LLMWriter(model, prompts=load_prompts(get_settings().writer.prompts_dir),
                               structured=True, evidence=rank, evidence_sentences=1,
                               evidence_window=window)
        assert "".join(e.text for e in writer.write("q", sources) if isinstance(e, TextDelta)) == CANNOT_ANSWER
        shown[window] = fake_llm.requests[-1]["body"]["messages"][1]["content"]
    assert "s2.3" in shown[0] and "s2.2" not in shown[0]
    assert all(f"s2.{k}" in shown[2] for k in (1, 2, 3, 4, 5)) and "s2.0" not in shown[2]
