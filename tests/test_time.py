"""Time on every face: 'when' answers that show their derivation, as_of, timelines, recency."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from assistant.answer import Assistant
from assistant.cli import app
from assistant.retrieve import asks_for_latest, retrieve
from assistant.settings import Settings
from index import open_store
from index.embeddings import Embedder
from tests.test_answer import seed_index  # noqa: F401 - shared module-scoped fixture

runner = CliRunner()


def test_when_answer_states_the_derived_date_and_cites_both_sentences(
    seed_index: Settings, embedder: Embedder  # noqa: F811
) -> None:
    answer = Assistant(seed_index, embedder=embedder).ask("When did Assad visit Moscow?")
    assert answer.text.startswith("Around October 20 (two days before Putin's October 22 remarks)")
    quotes = {c.quote for c in answer.citations}
    assert "Putin made the remarks two days after Assad made a surprise visit to Moscow." in quotes
    assert any(q.startswith("On October 22,") for q in quotes)
    assert all(c.supported for c in answer.citations)


def test_relative_dates_are_resolved_for_the_llm_too(sample_index: Settings, embedder: Embedder) -> None:
    from assistant.llm import render_messages
    from assistant.prompts import load_prompts

    assistant = Assistant(sample_index, embedder=embedder)
    sources = assistant._sources(retrieve("Assad surprise visit Moscow Tuesday", settings=sample_index,
                                          embedder=embedder))
    user = render_messages("When?", sources, as_of=None, prompts=load_prompts(sample_index.prompts_dir))[1]
    assert '"on Tuesday evening" = October 20, 2015; the Tuesday before publication on 2015-10-21' in user["content"]


def test_timeline_orders_dated_events_and_merges_the_same_event(
    sample_index: Settings, embedder: Embedder
) -> None:
    result = Assistant(sample_index, embedder=embedder).timeline("Ever Given Suez Canal blockage")
    dates = [e.date for e in result.events]
    assert dates == sorted(dates) and len(dates) >= 3
    assert dates[0] == "2021-03-23" and "2021-03-29" in dates
    store = open_store(sample_index)
    for event in result.events:
        for s in event.sources:
            assert store.get_article(s.article_id).text[s.start : s.end] == s.quote
            assert s.expression in s.quote
    syria = Assistant(sample_index, embedder=embedder).timeline("Assad visit to Moscow Putin")
    merged = [e for e in syria.events if len(e.sources) > 1]
    assert merged, "the visit is reported by more than one outlet and appears once"
    assert len({s.article_id for s in merged[0].sources}) == len(merged[0].sources)


def test_timeline_as_of_sees_only_what_was_published(sample_index: Settings, embedder: Embedder) -> None:
    result = Assistant(sample_index, embedder=embedder).timeline(
        "Ever Given Suez Canal", as_of=date(2021, 3, 26))
    assert result.events
    assert all(s.published and s.published <= date(2021, 3, 26) for e in result.events for s in e.sources)


@pytest.mark.parametrize(
    ("question", "latest"),
    [
        ("Who is the current prime minister?", True),
        ("What is the latest on the Suez blockage?", True),
        ("Is the ship still stuck?", True),
        ("When did Assad visit Moscow?", False),
        ("Who won the referendum?", False),
    ],
)
def test_questions_about_the_present_are_recognised(question: str, latest: bool) -> None:
    assert asks_for_latest(question) is latest


def test_recency_boost_prefers_newer_articles(sample_index: Settings, embedder: Embedder) -> None:
    store = open_store(sample_index)
    published = {a.id: a.published for a in store.list_articles()}

    def first_published(recency: str) -> date:
        s = sample_index.model_copy(update={"recency": recency})
        hits = retrieve("What is the latest news about the Moon?", settings=s, embedder=embedder).hits
        return published[hits[0].article_id]  # type: ignore[return-value]

    assert first_published("auto") == first_published("on")  # the question asks for the latest
    assert first_published("on") > first_published("off")


def test_cli_ask_and_timeline_take_as_of(sample_index: Settings, embedder: Embedder) -> None:
    data = str(sample_index.data_dir)
    result = runner.invoke(app, ["ask", "Who did Lavrov say Russia was ready to support from the air?",
                                 "--data-dir", data, "--as-of", "2015-10-22", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert all(s["published"] <= "2015-10-22" for s in answer["sources"])
    result = runner.invoke(app, ["timeline", "Ever Given Suez Canal", "--data-dir", data,
                                 "--as-of", "2021-03-26"])
    assert result.exit_code == 0 and "March 23, 2021" in result.output
    assert "March 29" not in result.output
    bad = runner.invoke(app, ["ask", "x", "--data-dir", data, "--as-of", "26/03/2021"])
    assert bad.exit_code == 2 and "use YYYY-MM-DD" in bad.output
