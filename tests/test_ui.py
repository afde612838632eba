"""The chat UI's handlers, driven as plain Python (the browser test drives the real page).

Every answer is made by the real Assistant over the sample articles; the LLM, when there is one,
is the OpenAI-protocol server on loopback.
"""

from __future__ import annotations

import re
import socket
from datetime import date
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from assistant.answer import Assistant
from assistant.errors import ConfigError, InputError
from assistant.library import FileResult
from assistant.models import CANNOT_ANSWER, Answer, AnswerSentence, Citation
from assistant.retrieve import Filters
from assistant.settings import Settings, get_settings
from assistant.ui import Desk, create_app, filters_from_boxes, launch
from assistant.ui_render import (
    paragraph_bounds,
    render_answer,
    render_article,
    render_sources,
    render_upload_results,
)
from index import Article
from index.embeddings import Embedder
from tests.conftest import write
from tests.fake_openai import FakeOpenAI, Reply

ASSAD_Q = "When did Assad visit Moscow?"
ASSAD_ID = "sample-assad-moscow-visit"
LAVROV_ID = "sample-lavrov-free-syrian-army"


@pytest.fixture(scope="module")
def desk(sample_index: Settings, embedder: Embedder) -> Desk:
    return Desk(Assistant(sample_index, embedder=embedder))


def ask(desk: Desk, question: str, chat: list[Any] | None = None,
        turns: list[dict[str, Any]] | None = None, **filters: Any) -> list[tuple[Any, ...]]:
    """Every update the chat handler yields for one question."""
    return list(desk.ask(question, chat or [], turns or [], **filters))


def last_reply(update: tuple[Any, ...]) -> str:
    return str(update[1][-1]["content"])


def linked_ids(html: str) -> list[str]:
    return re.findall(r'href="#(src-[\d-]+)"', html)


# --- answers ----------------------------------------------------------------------------------


def test_answer_links_each_marker_to_its_sentence_highlighted_in_its_paragraph(desk: Desk) -> None:
    updates = ask(desk, ASSAD_Q)
    box, chat, panel, status, turns = updates[-1]
    assert box == "" and status.startswith("Answered in")
    reply = last_reply(updates[-1])
    assert "October 20" in reply and linked_ids(reply)
    assert chat[0] == {"role": "user", "content": ASSAD_Q}
    # Every [n] of the answer points at an element of the sources panel.
    for target in linked_ids(reply):
        assert f'id="{target}"' in panel
    mark = re.search(r'<p class="nd-para">([^<]*)<mark class="nd-quote" id="src-1-\d+"[^>]*>'
                     r"([^<]*)</mark>([^<]*)</p>", panel)
    assert mark, panel
    before, quote, after = mark.groups()
    assert "Assad" in quote and "Moscow" in quote  # the first source's answering sentence
    assert before.strip() or after.strip(), "the quote is shown inside its paragraph"
    assert "Northgate Post · 2015-10-25" in panel and 'target="_blank"' in panel
    assert len(turns) == 1 and turns[0]["question"] == ASSAD_Q


def test_extractive_answers_carry_a_badge_and_the_notice(desk: Desk) -> None:
    reply = last_reply(ask(desk, ASSAD_Q)[-1])
    assert 'class="nd-badge nd-extractive"' in reply
    assert "Extractive answer: no language model is configured" in reply


def test_first_update_echoes_the_question_before_the_answer_is_ready(desk: Desk) -> None:
    first = next(desk.ask(ASSAD_Q, [], []))
    assert first[0] == "" and "Searching the articles" in last_reply(first)


def test_follow_up_is_condensed_and_answered_about_lavrov(desk: Desk) -> None:
    _, chat, _, _, turns = ask(desk, ASSAD_Q)[-1]
    _, chat, panel, _, turns = ask(desk, "And what did Lavrov say?", chat, turns)[-1]
    reply = str(chat[-1]["content"])
    assert len(chat) == 4 and len(turns) == 2
    assert "Searched for: “What did Lavrov say? (Assad, Moscow)”" in reply
    assert re.search(r"Lavrov said (Moscow|Russia)|Sergei Lavrov said in an interview", reply)
    # The newest answer's sources come first; the first answer's stay reachable.
    assert panel.index('id="turn-2"') < panel.index('id="turn-1"')
    first_reply = str(chat[1]["content"])
    assert all(f'id="{t}"' in panel for t in linked_ids(first_reply) + linked_ids(reply))


def test_refusal_reads_as_one(desk: Desk) -> None:
    update = ask(desk, "Who won the 2030 football World Cup final?")[-1]
    reply = last_reply(update)
    assert 'class="nd-answer nd-refused"' in reply and 'class="nd-refusal"' in reply
    assert CANNOT_ANSWER.replace("'", "&#x27;") in reply
    assert "nd-cite" not in reply
    assert "No source supports an answer." in update[2]


def test_unsupported_and_uncited_sentences_are_visibly_marked() -> None:
    answer = _answer(
        [("Assad visited Moscow on October 20.", [0], True),
         ("He also toured the Kremlin gardens.", [1], False),
         ("Nobody expected it.", [], False)],
        [_citation(4, True), _citation(4, False, sentence=1)],
    )
    html = render_answer(answer, turn=3)
    assert 'Assad visited Moscow on October 20.<a class="nd-cite" href="#src-3-4"' in html
    assert re.search(r'<span class="nd-unsupported" title="[^"]+">He also toured', html)
    assert re.search(r'<span class="nd-uncited" title="No source is cited[^"]*">Nobody', html)
    assert 'class="nd-cite nd-weak"' in html


def test_llm_answers_get_the_llm_badge_and_an_uncited_sentence_is_shown_removed(
    sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(Reply(_cite("surprise visit to Moscow",
                                "Assad made a surprise visit to Moscow on October 20 [{n}]. "
                                "The talks were friendly."), pieces=5))
    settings = _llm_settings(sample_index, fake_llm)
    desk = Desk(Assistant(settings, embedder=embedder))
    updates = ask(desk, ASSAD_Q)
    streamed = [last_reply(u) for u in updates if "nd-pending" in last_reply(u)]
    assert len(streamed) >= 3, "the answer streams in pieces"
    reply = last_reply(updates[-1])
    assert 'class="nd-badge nd-llm"' in reply and "LLM · openai-compatible:test-model" in reply
    answer_text, _, foot = reply.partition('<div class="nd-foot">')
    assert "The talks were friendly." in streamed[-1]  # the draft, as it was written
    assert "The talks were friendly." not in answer_text
    assert ('<p class="nd-dropped" title="it cites no source">Removed, it cites no source: '
            "<s>The talks were friendly.</s></p>") in foot
    assert "surprise visit to Moscow" in updates[-1][2]


def test_an_unreachable_llm_gives_an_extractive_answer_and_says_so(
    sample_index: Settings, embedder: Embedder
) -> None:
    settings = get_settings(data_dir=sample_index.index.data_dir, llm="openai-compatible:test-model",
                            openai_base_url=f"http://127.0.0.1:{_closed_port()}/v1",
                            llm_max_retries=0, llm_timeout=2)
    desk = Desk(Assistant(settings, embedder=embedder))
    with pytest.warns(UserWarning, match="cannot reach"):
        updates = ask(desk, ASSAD_Q)
    reply = last_reply(updates[-1])
    assert 'class="nd-badge nd-fallback"' in reply
    assert "cannot reach openai-compatible:test-model" in reply
    assert "surprise visit to Moscow" in updates[-1][2]


def test_an_empty_index_answers_with_how_to_add_articles(settings: Settings, embedder: Embedder) -> None:
    desk = Desk(Assistant(settings, embedder=embedder))
    with pytest.warns(UserWarning, match="No articles are indexed yet"):
        update = ask(desk, ASSAD_Q)[-1]
    assert "nd-error" in last_reply(update) and "Library tab" in last_reply(update)
    assert update[4] == [], "a failed question is not part of the conversation"
    assert "No articles indexed yet" in desk.summary()


def test_an_empty_question_asks_for_one(desk: Desk) -> None:
    [(box, chat, _, status, turns)] = ask(desk, "   ")
    assert (box, chat, status, turns) == ("   ", [], "Type a question first.", [])


# --- escaping -----------------------------------------------------------------------------------


HOSTILE = 'Tanks rolled in.\n\nThe <b>minister</b> said <img src=x onerror="alert(1)"> "no".'


def test_article_text_is_escaped_never_injected() -> None:
    start = HOSTILE.index("The <b>")
    article = Article(id="a1", title="<script>alert(1)</script>", text=HOSTILE, outlet="O&O",
                      url="javascript:alert(1)", published=date(2020, 1, 1), source=None)
    answer = _answer([("The minister said no.", [0], True)],
                     [_citation(1, True, article_id="a1", start=start, end=len(HOSTILE),
                                quote=HOSTILE[start:], title=article.title, url=article.url)])
    for html in (render_sources(answer, lambda _: article, turn=1), render_article(article),
                 render_answer(answer, turn=1)):
        assert "<script>" not in html and "<img" not in html and "<b>" not in html
        assert 'href="javascript' not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in render_sources(
        answer, lambda _: article, turn=1)


# --- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ((None, "", "", ""), Filters()),
        ((["Harbor Ledger"], " 2015-10-01 ", "2015-10-31", ""),
         Filters(outlets=["Harbor Ledger"], since=date(2015, 10, 1), until=date(2015, 10, 31))),
        (("Harbor Ledger", "", "", ""),  # a single-choice dropdown gives a string
         Filters(outlets=["Harbor Ledger"])),
        (([], "", "", "2015-10-22"), Filters(as_of=date(2015, 10, 22))),
    ],
)
def test_filter_boxes_become_filters(boxes: Any, expected: Filters) -> None:
    assert filters_from_boxes(*boxes) == expected


@pytest.mark.parametrize(
    ("since", "until", "as_of", "says"),
    [
        ("2015-13-01", "", "", "Since: '2015-13-01' is not a date"),
        ("", "21/10/2015", "", "Until: '21/10/2015' is not a date"),
        ("", "", "yesterday", "As of: 'yesterday' is not a date"),
        ("2016-01-01", "2015-01-01", "", "Since (2016-01-01) is after Until (2015-01-01)"),
        ("2016-01-01", "", "2015-06-01", "Since (2016-01-01) is after As of (2015-06-01)"),
    ],
)
def test_bad_dates_are_refused_with_a_readable_message(since: str, until: str, as_of: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        filters_from_boxes(None, since, until, as_of)
    assert says in str(caught.value) and caught.value.hint


def test_a_bad_date_keeps_the_question_and_shows_the_problem(desk: Desk) -> None:
    with pytest.warns(UserWarning, match="is not a date"):
        updates = ask(desk, ASSAD_Q, since="2015-02-30")
    assert len(updates) == 1
    box, chat, _, status, turns = updates[0]
    assert box == ASSAD_Q and chat == [] and turns == []
    assert "2015-02-30" in status and "YYYY-MM-DD" in status


def test_filters_narrow_the_sources_and_are_shown_with_the_answer(desk: Desk) -> None:
    update = ask(desk, ASSAD_Q, outlets=["Harbor Ledger"], as_of="2015-10-22")[-1]
    reply, panel = last_reply(update), update[2]
    assert "Filters: outlets Harbor Ledger · as of 2015-10-22" in reply
    assert "Harbor Ledger · 2015-10-21" in panel
    assert "Northgate Post" not in panel and "Meridian Wire" not in panel


def test_outlet_choices_come_from_the_index(desk: Desk) -> None:
    assert sorted(desk.outlets()) == ["Eastbrook Courier", "Harbor Ledger", "Lakeside Chronicle",
                                      "Meridian Wire", "Northgate Post"]


# --- the library ----------------------------------------------------------------------------------


GOOD = """---
title: Bakers strike over flour prices
outlet: Test Gazette
published: 2024-03-05
---
Bakers in the capital walked out on Monday over the rising price of flour.

The union said the strike would last a week.
"""


def test_upload_reports_a_result_per_file(settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    desk = Desk(Assistant(settings, embedder=embedder))
    good = write(tmp_path / "in" / "bakers.md", GOOD)
    mixed = write(tmp_path / "in" / "wire.jsonl",
                  '{"id": "w1", "title": "Ferry resumes", "text": "The ferry sailed again on Friday."}\n'
                  '{"id": "w2", "title": "No text here"}\n')
    empty = write(tmp_path / "in" / "empty.txt", "")
    other = write(tmp_path / "in" / "scan.pdf", b"%PDF-1.7 binary")
    calls: list[tuple[Any, ...]] = []

    results = desk.upload([good, mixed, empty, other], progress=lambda *a, **k: calls.append((a, k)))

    by_name = {r.name: r for r in results}
    assert list(by_name) == ["bakers.md", "wire.jsonl", "empty.txt", "scan.pdf"]
    assert (by_name["bakers.md"].status, by_name["bakers.md"].summary()) == ("added", "added 1")
    assert (by_name["wire.jsonl"].status, by_name["wire.jsonl"].summary()) == (
        "partial", "added 1 · skipped 1")
    assert by_name["wire.jsonl"].skipped[0].startswith("line 2: ") and "text" in by_name["wire.jsonl"].skipped[0]
    assert by_name["empty.txt"].status == "skipped" and by_name["empty.txt"].skipped == ["file is empty"]
    assert "unsupported file type '.pdf'" in by_name["scan.pdf"].skipped[0]
    assert calls and calls[-1][0][0] == (2, 2), "progress counts articles indexed"

    html = render_upload_results(results)
    assert '<td class="nd-added">added 1</td>' in html and '<td class="nd-skipped">skipped 1</td>' in html
    assert "Test Gazette" in desk.outlets()
    rows, _ = desk.browse("Bakers")
    assert [r[:3] for r in rows] == [["2024-03-05", "Test Gazette", "Bakers strike over flour prices"]]

    again = desk.upload([good])
    assert (again[0].status, again[0].summary()) == ("unchanged", "unchanged 1")
    assert desk.upload([]) == [] and desk.upload(None) == []


def test_upload_results_escape_file_names_and_reasons() -> None:
    html = render_upload_results([FileResult("<b>x</b>.txt", skipped=["bad <i>field</i>"])])
    assert "<b>" not in html and "&lt;b&gt;x&lt;/b&gt;.txt" in html and "&lt;i&gt;" in html


def test_browse_searches_titles_and_opens_an_article(desk: Desk) -> None:
    rows, count = desk.browse(None)
    assert len(rows) == 16 and count == "16 of 16 articles · select a row to read it"
    assert rows[0][0] >= rows[-1][0], "newest first"
    rows, count = desk.browse("moscow")
    assert [r[3] for r in rows] == [ASSAD_ID] and count.startswith("1 matching “moscow” of 16")
    assert desk.browse("no such headline")[0] == []
    html = desk.read(ASSAD_ID)
    assert "<h3>" in html and "Assad makes surprise trip to Moscow" in html
    assert html.count("<p>") >= 4, "every paragraph of the full text"
    assert "no article with id" in desk.read("nope") and desk.read(None) == ""


def test_browse_on_an_empty_index_says_what_to_do(settings: Settings, embedder: Embedder) -> None:
    assert Desk(Assistant(settings, embedder=embedder)).browse("") == (
        [], "No articles indexed yet: upload some above.")


# --- building the app -----------------------------------------------------------------------------


def test_create_app_builds_blocks_that_mount_under_a_path(desk: Desk) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    blocks = create_app(assistant=desk.assistant)
    assert isinstance(blocks, gr.Blocks) and not blocks.is_running
    app = gr.mount_gradio_app(FastAPI(), blocks, path="/ui")
    with TestClient(app) as client:
        page = client.get("/ui/")
        assert page.status_code == 200 and "newsdesk" in page.text


def test_launch_on_a_busy_port_says_which_option_to_change(desk: Desk) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="pick another with --port"):
            launch("127.0.0.1", busy.getsockname()[1], assistant=desk.assistant, block=False)


@pytest.mark.parametrize(
    ("text", "span", "paragraph"),
    [
        ("One. Two.", (5, 9), (0, 9)),
        ("A.\n\nB. C.\n\nD.", (7, 9), (4, 9)),
        ("A.\n\nB.", (0, 2), (0, 2)),
        ("A.\n  \nB.\n\n", (6, 8), (6, 8)),
        ("line one\nline two\n\nnext", (9, 17), (0, 17)),
    ],
)
def test_paragraph_bounds(text: str, span: tuple[int, int], paragraph: tuple[int, int]) -> None:
    assert paragraph_bounds(text, *span) == paragraph


# --- helpers --------------------------------------------------------------------------------------


def _citation(number: int, supported: bool, *, sentence: int = 0, article_id: str = ASSAD_ID,
              start: int = 0, end: int = 10, quote: str = "Syrian Pre", title: str = "T",
              url: str | None = None) -> Citation:
    return Citation(number=number, sentence=sentence, article_id=article_id, title=title,
                    outlet="O", published=date(2015, 10, 21), url=url, quote=quote, start=start,
                    end=end, support=0.8 if supported else 0.2, supported=supported)


def _answer(sentences: list[tuple[str, list[int], bool]], citations: list[Citation]) -> Answer:
    return Answer(
        question="q", text=" ".join(s for s, _, _ in sentences),
        sentences=[AnswerSentence(text=s, citations=c, supported=ok) for s, c, ok in sentences],
        citations=citations, mode="extractive", model="extractive", notice=None,
    )


def _llm_settings(base: Settings, fake: FakeOpenAI) -> Settings:
    return get_settings(data_dir=base.index.data_dir, llm="openai-compatible:test-model",
                        openai_base_url=fake.base_url, llm_max_retries=0, llm_timeout=5)


def _cite(phrase: str, template: str) -> Any:
    """A scripted model that cites the source (by its number in the prompt) containing ``phrase``."""
    def reply(messages: list[dict[str, str]]) -> str:
        for block in re.split(r"\n(?=\[\d+\] \")", messages[-1]["content"]):
            if phrase in block:
                return template.format(n=re.search(r"\[(\d+)\]", block).group(1))  # type: ignore[union-attr]
        return CANNOT_ANSWER
    return reply


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_timeline_tab_renders_dated_events_escaped(desk: Desk) -> None:
    html = desk.timeline("Ever Given Suez Canal", None, "", "", "2021-03-26")
    assert "March 23, 2021" in html and "<mark>" in html and "March 29" not in html
    assert "not a date" in desk.timeline("Ever Given", None, "", "", "soon")
    assert "Type what" in desk.timeline("  ", None, "", "", "")
