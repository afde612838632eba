"""The HTTP service as its clients meet it: REST, server-sent events and the OpenAI protocol.

The app is the real one over real indexes (the shared sample index for reads, a fresh folder
for writes); the OpenAI client talks to a real uvicorn server on loopback.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai.types.chat import ChatCompletionMessageParam

from assistant.answer import Assistant
from assistant.api import create_app, serve
from assistant.errors import ConfigError
from assistant.models import CANNOT_ANSWER
from assistant.settings import Settings, get_settings
from index import ingest
from index.embeddings import Embedder
from tests.conftest import REPO, SAMPLES
from tests.fake_openai import FakeOpenAI, Reply

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
ASSAD_Q = "When did Assad visit Moscow?"
QUESTIONS = [
    json.loads(line)
    for line in (REPO / "evals" / "questions.jsonl").read_text().splitlines()
    if line.strip()
]


def keyed(base: Settings, **extra: Any) -> Settings:
    return get_settings(data_dir=base.index.data_dir, api_key=KEY, **extra)


@pytest.fixture(scope="module")
def api(sample_index: Settings, embedder: Embedder) -> Iterator[TestClient]:
    """The service over the sample articles (read-only), with an API key set."""
    app = create_app(assistant=Assistant(keyed(sample_index), embedder=embedder))
    with TestClient(app, headers=AUTH) as client:
        yield client


@pytest.fixture
def writable(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    """The service over a fresh, empty index."""
    app = create_app(assistant=Assistant(keyed(settings), embedder=embedder))
    with TestClient(app, headers=AUTH) as client:
        yield client


def sse(text: str) -> list[tuple[str | None, Any]]:
    """Parse a server-sent event stream into (event name, decoded data) pairs."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").strip())
        payload = "\n".join(data)
        events.append((name, payload if payload == "[DONE]" else json.loads(payload)))
    return events


def error_of(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    assert "Traceback" not in response.text
    return str(body["error"]["message"])


def check_quotes_are_verbatim(client: TestClient, citations: list[dict[str, Any]]) -> None:
    for c in citations:
        article = client.get(f"/v1/articles/{c['article_id']}").json()
        assert article["text"][c["start"] : c["end"]] == c["quote"]


# --- security ------------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/v1/ask", {"question": ASSAD_Q}),
    ("GET", "/v1/articles", None),
    ("GET", "/v1/articles/sample-assad-moscow-visit", None),
    ("DELETE", "/v1/articles/no-such-article", None),
    ("POST", "/v1/articles", {"text": "Headline\nBody."}),
    ("GET", "/v1/stats", None),
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": ASSAD_Q}]}),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("token", [None, "wrong-key-0123456789", KEY + "x"])
def test_every_route_but_healthz_needs_the_key(
    api: TestClient, method: str, path: str, body: Any, token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}" if token else ""}
    response = api.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "key" in error_of(response)
    assert "NEWSDESK_API_KEY" in response.json()["error"]["hint"]


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/timeline", "/v1/chat/completions"])
@pytest.mark.parametrize("token", [None, "wrong-key-0123456789"])
def test_a_bad_body_without_the_key_is_refused_before_it_is_read(
    api: TestClient, path: str, token: str | None
) -> None:
    headers = {"Content-Type": "application/json",
               "Authorization": f"Bearer {token}" if token else ""}
    response = api.post(path, content=b"{not json", headers=headers)
    assert response.status_code == 401
    assert "NEWSDESK_API_KEY" in response.json()["error"]["hint"]
    keyed = api.post(path, content=b"{not json",
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    assert keyed.status_code == 422 and "not valid JSON" in error_of(keyed)


def test_healthz_schema_and_docs_are_open(api: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert api.get("/healthz", headers=anonymous).json() == {"status": "ok"}
    schema = api.get("/openapi.json", headers=anonymous).json()
    assert {"/v1/ask", "/v1/chat/completions", "/v1/articles"} <= set(schema["paths"])
    assert "Answer" in schema["components"]["schemas"]
    assert "swagger" in api.get("/docs", headers=anonymous).text.lower()


def test_without_a_key_set_no_token_is_needed(sample_index: Settings, embedder: Embedder) -> None:
    client = TestClient(create_app(assistant=Assistant(sample_index, embedder=embedder)))
    assert client.get("/v1/stats").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "newsdesk.example.org"])
def test_serve_refuses_a_public_address_without_a_key(settings: Settings, host: str) -> None:
    with pytest.raises(ConfigError, match=f"refusing to serve on {re.escape(host)}") as info:
        serve(host, 8000, settings)
    assert "NEWSDESK_API_KEY" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("short", "NEWSDESK_API_KEY is 5 characters long; it needs at least 16"),
        (" " * 16, "NEWSDESK_API_KEY is blank (only spaces)"),
        ("", "NEWSDESK_API_KEY is empty"),
        ("correct horse battery staple", "holds spaces"),
        ("\t" + "k" * 20, "holds spaces"),
        ("clé-très-secrète-0123456789", "printable ASCII"),
    ],
)
def test_a_blank_short_or_unsendable_api_key_stops_the_service_in_words(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, key: str, says: str
) -> None:
    monkeypatch.setenv("NEWSDESK_API_KEY", key)
    keyed = get_settings(data_dir=settings.index.data_dir)  # loading settings does not fail
    with pytest.raises(ConfigError, match=re.escape(says)) as info:
        create_app(keyed)
    assert "openssl rand -hex 32" in (info.value.hint or "")
    assert "Value should have" not in str(info.value)
    with pytest.raises(ConfigError, match=re.escape(says)):
        serve("0.0.0.0", 8000, keyed)


# --- asking --------------------------------------------------------------------------------


def test_ask_returns_the_cited_answer(api: TestClient) -> None:
    response = api.post("/v1/ask", json={"question": ASSAD_Q})
    assert response.status_code == 200
    answer = response.json()
    assert answer["mode"] == "extractive" and not answer["refused"]
    assert "October 20" in answer["text"] and re.search(r"\[\d+\]", answer["text"])
    assert answer["citations"] and all(c["supported"] for c in answer["citations"])
    check_quotes_are_verbatim(api, answer["citations"])


def test_ask_applies_filters(api: TestClient) -> None:
    answer = api.post(
        "/v1/ask", json={"question": "Moscow summit ship telescope", "outlets": ["Northgate Post"]}
    ).json()
    assert answer["sources"] and {s["outlet"] for s in answer["sources"]} == {"Northgate Post"}
    answer = api.post(
        "/v1/ask", json={"question": ASSAD_Q, "since": "2021-01-01", "until": "2021-12-31"}
    ).json()
    assert all(s["published"].startswith("2021") for s in answer["sources"])
    answer = api.post("/v1/ask", json={"question": ASSAD_Q, "as_of": "2015-10-01"}).json()
    assert answer["refused"] or all(s["published"] <= "2015-10-01" for s in answer["sources"])


def test_unanswerable_questions_are_refused(api: TestClient) -> None:
    answer = api.post("/v1/ask", json={"question": "What is the capital of Australia?"}).json()
    assert answer["refused"] and answer["text"] == CANNOT_ANSWER and not answer["citations"]


def test_ask_streams_deltas_then_the_answer(api: TestClient) -> None:
    response = api.post("/v1/ask", json={"question": ASSAD_Q, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "answer" and set(names[:-1]) == {"delta"}
    assert all(data["type"] == name for name, data in events)
    answer = events[-1][1]["answer"]
    assert "".join(data["text"] for _, data in events[:-1]).strip() == answer["text"]
    assert answer["citations"]
    check_quotes_are_verbatim(api, answer["citations"])


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({}, "question: Field required"),
        ({"question": "   "}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": ASSAD_Q, "since": "2015-13-01"}, "since"),
        ({"question": ASSAD_Q, "as_of": "yesterday"}, "as_of"),
        ({"question": ASSAD_Q, "since": "2016-01-01", "until": "2015-01-01"}, "'since' is after"),
        ({"question": ASSAD_Q, "outlet": "Northgate Post"}, "outlet"),
        ({"question": ASSAD_Q, "outlets": "Northgate Post"}, "outlets"),
        ({"question": ASSAD_Q, "retriever": "psychic"}, "retriever"),
        ({"question": ASSAD_Q, "stream": "sometimes"}, "stream"),
        ([ASSAD_Q], "valid dictionary"),
    ],
)
def test_bad_questions_get_a_422_naming_the_field(api: TestClient, body: Any, names: str) -> None:
    response = api.post("/v1/ask", json=body)
    assert response.status_code == 422
    assert names in error_of(response)


@pytest.mark.parametrize(
    "body",
    [
        b'{"question": "When did \\ud800 Assad visit?"}',
        b'{"messages": [{"role": "user", "content": "When did \\ud800 Assad visit?"}]}',
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}',
        (b'{"messages": [{"role": "user", "content": "Hi \\ud800"}, '
         b'{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "And?"}]}'),
    ],
)
def test_a_lone_surrogate_is_a_422_on_every_question_route(api: TestClient, body: bytes) -> None:
    path = "/v1/ask" if b"question" in body else "/v1/chat/completions"
    response = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    message = error_of(response)
    assert "TextEncodeInput" not in message and "Union[" not in message
    assert path == "/v1/ask" or "messages[0].content: not valid Unicode text" in message


def test_malformed_and_oversized_bodies_are_refused(api: TestClient) -> None:
    response = api.post(
        "/v1/ask", content=b'{"question": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "not valid JSON" in error_of(response)
    huge = json.dumps({"question": "x" * (2 * 1024 * 1024)})
    response = api.post("/v1/ask", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_asking_an_empty_index_says_how_to_fill_it(writable: TestClient) -> None:
    for path, body in [
        ("/v1/ask", {"question": ASSAD_Q}),
        ("/v1/ask", {"question": ASSAD_Q, "stream": True}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": ASSAD_Q}]}),
    ]:
        response = writable.post(path, json=body)
        assert response.status_code == 409
        assert error_of(response) == "no articles indexed yet"
        assert "POST /v1/articles" in response.json()["error"]["hint"]
        assert response.json()["error"]["type"] == "NothingIndexed"


# --- reading the index ---------------------------------------------------------------------


def test_articles_page_through_the_whole_index(api: TestClient) -> None:
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get("/v1/articles", params={"offset": offset, "limit": 5}).json()
        assert len(page["articles"]) <= 5 and page["total"] == 16
        assert all(a["text"] == "" for a in page["articles"])
        seen += [a["id"] for a in page["articles"]]
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == 16
    everything = api.get("/v1/articles", params={"limit": 500}).json()["articles"]
    days = [a["published"] for a in everything]
    assert days == sorted(days, reverse=True)


def test_articles_filter_by_outlet_and_title(api: TestClient) -> None:
    page = api.get("/v1/articles", params={"outlet": "Northgate Post"}).json()
    assert page["articles"] and {a["outlet"] for a in page["articles"]} == {"Northgate Post"}
    page = api.get("/v1/articles", params={"search": "Moscow"}).json()
    assert page["articles"] and all("Moscow" in a["title"] for a in page["articles"])
    assert api.get("/v1/articles", params={"search": "no such headline"}).json()["articles"] == []


@pytest.mark.parametrize(
    ("params", "names"),
    [({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"offset": -1}, "offset")],
)
def test_bad_paging_gets_a_422_naming_the_parameter(
    api: TestClient, params: dict[str, int], names: str
) -> None:
    response = api.get("/v1/articles", params=params)
    assert response.status_code == 422 and names in error_of(response)


def test_an_article_comes_with_its_full_text(api: TestClient) -> None:
    article = api.get("/v1/articles/sample-assad-moscow-visit").json()
    assert article["title"].startswith("Assad makes surprise trip to Moscow")
    assert len(article["text"]) > 500 and article["published"] == "2015-10-21"
    response = api.get("/v1/articles/no-such-article")
    assert response.status_code == 404
    assert "no-such-article" in error_of(response)
    assert response.json()["error"]["hint"] == "GET /v1/articles lists the ids that are indexed"


def test_stats_describe_the_index(api: TestClient) -> None:
    stats = api.get("/v1/stats").json()
    assert stats["articles"] == 16 and stats["chunks"] >= 16
    assert stats["first_published"] <= stats["last_published"]


def test_server_paths_reach_no_client(api: TestClient, sample_index: Settings) -> None:
    stats = api.get("/v1/stats").json()
    assert "data_dir" not in stats and "chroma" not in stats
    assert str(sample_index.index.data_dir) not in json.dumps(stats)
    page = api.get("/v1/articles", params={"limit": 500}).json()
    assert len(page["articles"]) == 16 and all(a["source"] is None for a in page["articles"])
    article = api.get("/v1/articles/sample-assad-moscow-visit").json()
    assert article["source"] is None and str(SAMPLES) not in json.dumps(article)


def test_unexpected_failures_are_a_generic_500_logged_on_the_server(
    settings: Settings, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    assistant = Assistant(keyed(settings), embedder=embedder)
    client = TestClient(create_app(assistant=assistant), headers=AUTH)
    assistant.store.close()  # the catalog goes away under the running service
    response = client.get("/v1/stats")
    assert response.status_code == 500
    assert error_of(response) == "internal error: the server could not complete this request"
    assert "closed database" not in response.text
    assert "closed database" in caplog.text


def test_unknown_routes_get_a_json_404(api: TestClient) -> None:
    response = api.get("/v2/ask")
    assert response.status_code == 404 and error_of(response) == "Not Found"


# --- writing the index ---------------------------------------------------------------------

RECORD = {
    "id": "harbor-1",
    "title": "Harbor bridge reopens after repairs",
    "text": "The Harbor Bridge reopened on Monday after six months of repairs. "
    "City engineers said the new deck would last forty years.",
    "outlet": "Harbor Ledger",
    "published": "2024-03-04",
}


def test_json_records_are_ingested_found_and_removed(writable: TestClient) -> None:
    report = writable.post("/v1/articles", json=RECORD).json()
    assert report["added"] == ["harbor-1"] and report["chunks_written"] >= 1
    assert writable.post("/v1/articles", json=[RECORD]).json()["unchanged"] == ["harbor-1"]
    article = writable.get("/v1/articles/harbor-1").json()
    assert article["text"] == RECORD["text"] and article["source"] == "request"

    question = {"question": "When did the Harbor Bridge reopen?"}
    answer = writable.post("/v1/ask", json=question).json()
    assert not answer["refused"] and answer["citations"][0]["article_id"] == "harbor-1"
    check_quotes_are_verbatim(writable, answer["citations"])

    assert writable.delete("/v1/articles/harbor-1").json() == {"removed": ["harbor-1"]}
    assert writable.get("/v1/articles/harbor-1").status_code == 404
    response = writable.delete("/v1/articles/harbor-1")
    assert response.status_code == 404 and "harbor-1" in error_of(response)
    assert writable.get("/v1/stats").json()["articles"] == 0


def test_a_batch_with_some_bad_records_reports_them(writable: TestClient) -> None:
    bad = [{"title": "no text"}, {**RECORD, "id": "x", "published": "the other day"}]
    response = writable.post("/v1/articles", json=[RECORD, *bad])
    assert response.status_code == 200
    report = response.json()
    assert report["added"] == ["harbor-1"]
    reasons = {s["source"]: s["reason"] for s in report["skipped"]}
    assert "field 'text'" in reasons["request[2]"]
    assert "field 'published'" in reasons["request[3]"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"title": "no text"}, "field 'text'"),
        ({"text": "Body.", "authors": 7}, "field 'authors'"),
        ([{"text": ""}, {"text": 3}], "request[2]: record has no text"),
        ([], "the list of records is empty"),
        ("just a string", "expected a JSON object"),
    ],
)
def test_unusable_records_get_a_422_naming_the_field(
    writable: TestClient, body: Any, names: str
) -> None:
    response = writable.post("/v1/articles", json=body)
    assert response.status_code == 422 and names in error_of(response)
    assert writable.get("/v1/stats").json()["articles"] == 0


def test_an_uploaded_text_file_is_ingested(writable: TestClient) -> None:
    text = "Harbor ferry fares rise\n\nFerry fares across the harbor rise by ten percent in May.\n"
    upload = {"file": ("fares.txt", text.encode(), "text/plain")}
    response = writable.post("/v1/articles", files=upload)
    assert response.status_code == 200
    (article_id,) = response.json()["added"]
    article = writable.get(f"/v1/articles/{article_id}").json()
    assert article["title"] == "Harbor ferry fares rise"
    assert article["source"] == "upload:fares.txt"  # never the server's temporary path


def test_an_uploaded_jsonl_file_is_ingested_line_by_line(writable: TestClient) -> None:
    lines = (SAMPLES / "articles.jsonl").read_bytes().splitlines()[:3]
    content = b"\n".join([*lines, b'{"text": '])
    report = writable.post("/v1/articles", files={"file": ("batch.jsonl", content)}).json()
    assert len(report["added"]) == 3
    (skip,) = report["skipped"]
    assert skip["source"] == "upload:batch.jsonl:4" and "malformed JSON" in skip["reason"]


@pytest.mark.parametrize(
    ("name", "content", "names"),
    [
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("batch.json", b'{"text": "unterminated', "malformed JSON"),
        ("notes.docx", b"PK\x03\x04", "unsupported file type '.docx'"),
        ("empty.md", b"", "file is empty"),
        ("latin1.txt", "Caf\xe9 news\nBody".encode("latin-1"), "not valid UTF-8"),
    ],
)
def test_bad_uploads_get_a_422_naming_the_problem(
    writable: TestClient, name: str, content: bytes, names: str
) -> None:
    response = writable.post("/v1/articles", files={"file": (name, content)})
    assert response.status_code == 422
    message = error_of(response)
    assert names in message and f"upload:{name}" in message
    assert "/tmp" not in message


@pytest.mark.parametrize(
    ("name", "shown"),
    [("..", "upload:upload"), ("../../etc/passwd.txt", "upload:passwd.txt"),
     ("b:c*d?.txt", "upload:b_c_d_.txt"), ("x" * 300 + ".md", "upload:" + "x" * 117 + ".md")],
)
def test_upload_names_cannot_escape_or_break_the_server(
    writable: TestClient, name: str, shown: str
) -> None:
    response = writable.post("/v1/articles", files={"file": (name, b"\x00binary")})
    assert response.status_code == 422 and shown in error_of(response)


def test_upload_requests_are_checked(writable: TestClient) -> None:
    response = writable.post("/v1/articles", files={"document": ("a.txt", b"Head\nBody.")})
    assert response.status_code == 422 and "field 'file'" in error_of(response)
    response = writable.post(
        "/v1/articles", content=b"Head\nBody.", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415 and "application/json" in error_of(response)
    response = writable.post(
        "/v1/articles", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "not valid JSON" in error_of(response)
    big = b"x" * (11 * 1024 * 1024)
    response = writable.post("/v1/articles", files={"file": ("big.txt", b"Head\n" + big)})
    assert response.status_code == 413


# --- the LLM path --------------------------------------------------------------------------


def cite_source_saying(phrase: str, claim: str):  # type: ignore[no-untyped-def]
    """A scripted model that reads the prompt and cites the source containing ``phrase``."""

    def reply(messages: list[dict[str, str]]) -> str:
        for block in re.split(r"\n(?=\[\d+\] \")", messages[-1]["content"]):
            if phrase in block:
                number = re.search(r"\[(\d+)\]", block).group(1)  # type: ignore[union-attr]
                return f"{claim} [{number}]."
        return CANNOT_ANSWER

    return reply


@pytest.fixture
def llm_api(
    sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI
) -> Iterator[TestClient]:
    settings = keyed(
        sample_index, llm="openai-compatible:test-model", openai_base_url=fake_llm.base_url,
        llm_max_retries=0, llm_timeout=5,
    )
    app = create_app(assistant=Assistant(settings, embedder=embedder))
    with TestClient(app, headers=AUTH) as client:
        yield client


CLAIM = "Assad made a surprise visit to Moscow on October 20"


def test_llm_answers_are_cited_over_http(llm_api: TestClient, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(cite_source_saying("surprise visit to Moscow", CLAIM)))
    answer = llm_api.post("/v1/ask", json={"question": ASSAD_Q}).json()
    assert answer["mode"] == "llm" and answer["model"] == "openai-compatible:test-model"
    assert answer["text"].startswith(CLAIM) and answer["citations"][0]["supported"]
    assert answer["usage"]["prompt_tokens"] == 100
    check_quotes_are_verbatim(llm_api, answer["citations"])


def test_llm_answers_stream_in_pieces(llm_api: TestClient, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(cite_source_saying("surprise visit to Moscow", CLAIM), pieces=6))
    events = sse(llm_api.post("/v1/ask", json={"question": ASSAD_Q, "stream": True}).text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) >= 5
    assert "".join(deltas).strip() == events[-1][1]["answer"]["text"]


def test_a_failing_llm_falls_back_over_http(llm_api: TestClient, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(status=500))
    response = llm_api.post("/v1/ask", json={"question": ASSAD_Q})
    assert response.status_code == 200
    answer = response.json()
    assert answer["mode"] == "extractive" and answer["citations"]
    assert any("500" in w for w in answer["warnings"])


def test_uncited_llm_text_is_withheld_in_the_chat_stream(
    llm_api: TestClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(Reply("Assad went to Moscow in 1999 [42].", pieces=3))
    body = {"stream": True, "messages": [{"role": "user", "content": ASSAD_Q}]}
    chunks = [data for _, data in sse(llm_api.post("/v1/chat/completions", json=body).text)]
    assert chunks[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text.endswith(f"(Withheld: no sentence above has a supporting citation.) {CANNOT_ANSWER}")
    assert chunks[-2]["citations"] == [] and chunks[-2]["dropped"][0]["kind"] == "invalid"


def test_an_uncited_sentence_leaves_the_reply_and_the_stream_closes_with_the_checked_one(
    llm_api: TestClient, fake_llm: FakeOpenAI
) -> None:
    writes = cite_source_saying("surprise visit to Moscow", CLAIM)
    reply = Reply(lambda messages: writes(messages) + " HACKED.", pieces=4)
    fake_llm.script(reply)
    body = {"messages": [{"role": "user", "content": ASSAD_Q}]}
    completion = llm_api.post("/v1/chat/completions", json=body).json()
    content = completion["choices"][0]["message"]["content"]
    assert content.startswith(CLAIM) and "HACKED" not in content
    assert completion["dropped"] == [{"text": "HACKED.", "kind": "uncited",
                                      "reason": "it cites no source"}]
    fake_llm.script(reply)
    chunks = [d for _, d in sse(llm_api.post("/v1/chat/completions",
                                             json={**body, "stream": True}).text)]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    draft, note, checked = text.partition("(Checked: sentences above without a supporting "
                                          "citation are removed. The checked answer:)\n\n")
    assert "HACKED." in draft and note
    assert checked.startswith(CLAIM) and "HACKED" not in checked and "\n\nSources:\n" in checked
    fake_llm.script(reply)
    answer = llm_api.post("/v1/ask", json={"question": ASSAD_Q}).json()
    assert not answer["refused"] and "HACKED" not in answer["text"]
    assert [d["text"] for d in answer["dropped"]] == ["HACKED."]


# --- OpenAI-compatible, through the real openai client -------------------------------------


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def server(sample_index: Settings, embedder: Embedder) -> Iterator[str]:
    with running(create_app(assistant=Assistant(keyed(sample_index), embedder=embedder))) as url:
        yield url


def test_openai_client_lists_newsdesk_as_a_model(server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=KEY)
    assert [m.id for m in client.models.list()] == ["newsdesk"]


def test_openai_client_gets_a_cited_completion(server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=KEY)
    completion = client.chat.completions.create(
        model="newsdesk",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Who won the 2018 World Cup?"},
            {"role": "assistant", "content": CANNOT_ANSWER},
            {"role": "user", "content": ASSAD_Q},
        ],
    )
    content = completion.choices[0].message.content or ""
    answer, _, sources = content.partition("\n\nSources:\n")
    assert "October 20" in answer
    citations = (completion.model_extra or {})["citations"]
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    assert numbers and numbers == {c["number"] for c in citations}
    for c in citations:
        line = f"{c['number']}. {c['title']} — {c['outlet']}, {c['published']}: \"{c['quote']}\""
        assert line in sources.splitlines()
    assert completion.choices[0].finish_reason == "stop"


def test_openai_client_streams_with_citations_on_the_last_chunk(server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=KEY)
    stream = client.chat.completions.create(
        model="newsdesk",
        messages=[{"role": "user", "content": [{"type": "text", "text": ASSAD_Q}]}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "October 20" in text and "\n\nSources:\n" in text
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    citations = (last.model_extra or {})["citations"]
    assert citations and all(f"\"{c['quote']}\"" in text for c in citations)
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])


FOLLOW_UP: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": ASSAD_Q},
    {"role": "assistant", "content": "Around October 20 [1].\n\nSources:\n1. ..."},
    {"role": "user", "content": "And what did Lavrov say?"},
]
"""A second question that only makes sense after the first."""
FIRST_TOPIC = "sample-putin-assad-opposition-talks"
"""An article about Assad's visit to Moscow that the follow-up alone does not find."""


def test_openai_client_conversation_searches_the_follow_up_with_the_first_topic(server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=KEY)
    completion = client.chat.completions.create(model="newsdesk", messages=FOLLOW_UP)
    extra = completion.model_extra or {}
    assert "Lavrov" in (completion.choices[0].message.content or "")
    assert {"Assad", "Moscow"} <= set(re.findall(r"\w+", extra["searched"]))
    assert all("Lavrov" in c["quote"] for c in extra["citations"])  # what Lavrov said, only
    assert extra["fallback"] is None
    # the same words without the conversation neither search nor cite the first topic
    alone = client.chat.completions.create(model="newsdesk", messages=FOLLOW_UP[-1:])
    assert (alone.model_extra or {})["searched"] is None
    assert FIRST_TOPIC not in {c["article_id"] for c in (alone.model_extra or {})["citations"]}


def test_openai_client_conversation_streams_the_follow_up_answer_with_what_was_searched(
    server: str,
) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=KEY)
    chunks = list(client.chat.completions.create(model="newsdesk", messages=FOLLOW_UP, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Lavrov" in text and "\n\nSources:\n" in text
    extra = chunks[-1].model_extra or {}
    assert {"Assad", "Moscow"} <= set(re.findall(r"\w+", extra["searched"]))
    assert all("Lavrov" in c["quote"] for c in extra["citations"])  # what Lavrov said, only


def test_a_failing_llm_is_reported_as_the_answers_fallback(
    llm_api: TestClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(Reply(status=503))
    answer = llm_api.post("/v1/ask", json={"question": ASSAD_Q}).json()
    assert answer["mode"] == "extractive" and "HTTP 503" in answer["fallback"]
    fake_llm.script(Reply(status=503))
    body = {"messages": [{"role": "user", "content": ASSAD_Q}]}
    completion = llm_api.post("/v1/chat/completions", json=body).json()
    assert "HTTP 503" in completion["fallback"] and completion["citations"]
    assert completion["object"] == "chat.completion" and completion["usage"]["total_tokens"] == 0


def test_the_chat_model_condenses_the_conversation_over_http(
    llm_api: TestClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(
        Reply("What did Lavrov say about Assad's visit to Moscow?"),
        Reply(cite_source_saying("Lavrov", "Lavrov said Russia wanted contacts with the group")),
    )
    completion = llm_api.post("/v1/chat/completions", json={"messages": FOLLOW_UP}).json()
    assert completion["searched"] == "What did Lavrov say about Assad's visit to Moscow?"
    assert completion["choices"][0]["message"]["content"].startswith("Lavrov said")
    assert completion["usage"]["prompt_tokens"] == 100 and completion["fallback"] is None


def test_openai_client_sees_auth_and_input_errors(server: str) -> None:
    import openai

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong-key-0123456789").models.list()
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError, match="no user message"):
        client.chat.completions.create(
            model="newsdesk", messages=[{"role": "system", "content": "hi"}]
        )


# --- concurrency ---------------------------------------------------------------------------


@pytest.mark.slow
def test_many_questions_while_ingesting(settings: Settings, embedder: Embedder) -> None:
    report = ingest([SAMPLES], config=settings, embedder=embedder)
    assert len(report.added) == 16
    answerable = [q for q in QUESTIONS if q["answerable"]][:8]
    app = create_app(assistant=Assistant(keyed(settings), embedder=embedder))
    with running(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=120) as client:

        def ask(n: int) -> tuple[int, dict[str, Any]]:
            question = answerable[n % len(answerable)]
            body = {"question": question["question"], "stream": n % 4 == 0}
            response = client.post("/v1/ask", json=body)
            if body["stream"] and response.status_code == 200:
                return 200, sse(response.text)[-1][1]["answer"]
            return response.status_code, response.json()

        def add(batch: int) -> int:
            records = [
                {**RECORD, "id": f"extra-{batch}-{i}", "title": f"Harbor note {batch}.{i}"}
                for i in range(5)
            ]
            return client.post("/v1/articles", json=records).status_code

        with ThreadPoolExecutor(max_workers=17) as pool:
            writes = pool.submit(lambda: [add(b) for b in range(4)])
            asks = list(pool.map(ask, range(32)))
            assert writes.result() == [200, 200, 200, 200]

        assert [status for status, _ in asks] == [200] * 32
        for _, answer in asks:
            assert answer["citations"] or answer["refused"]
        assert sum(not a["refused"] for _, a in asks) >= 24
        stats = client.get("/v1/stats").json()
        assert stats["articles"] == 16 + 20
        for _, answer in asks[:4]:
            for c in answer["citations"]:
                text = client.get(f"/v1/articles/{c['article_id']}").json()["text"]
                assert text[c["start"] : c["end"]] == c["quote"]
        after = client.post("/v1/ask", json={"question": ASSAD_Q}).json()
        assert "October 20" in after["text"]


# --- the chat UI mount ---------------------------------------------------------------------


def test_the_ui_mounts_behind_the_same_key(
    sample_index: Settings, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib.util

    caplog.set_level(logging.WARNING, logger="newsdesk.api")
    app = create_app(assistant=Assistant(keyed(sample_index), embedder=embedder), mount_ui=True)
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200
    if importlib.util.find_spec("assistant.ui") is None:
        assert "chat UI not mounted" in caplog.text
        assert client.get("/ui/").status_code == 404
        return
    assert client.get("/ui/").status_code == 200  # the login page
    assert client.get("/ui/config").status_code == 401
    assert client.post("/ui/login", data={"username": "me", "password": "wrong"}).status_code == 400
    assert client.post("/ui/login", data={"username": "me", "password": KEY}).status_code == 200
    assert client.get("/ui/config").status_code == 200


@pytest.fixture
def ui_app(sample_index: Settings, embedder: Embedder) -> TestClient:
    """The service with the chat UI mounted, a key set and a 1 MiB upload limit."""
    settings = keyed(sample_index, api_max_upload_mb=1)
    return TestClient(create_app(assistant=Assistant(settings, embedder=embedder), mount_ui=True))


def test_the_ui_upload_route_keeps_the_upload_limit(ui_app: TestClient) -> None:
    assert ui_app.post("/ui/login", data={"username": "me", "password": KEY}).status_code == 200
    small = ui_app.post("/ui/gradio_api/upload", files={"files": ("a.txt", b"Head\nBody.")})
    assert small.status_code == 200
    big = b"Head\n" + b"x" * (2 * 1024 * 1024)
    response = ui_app.post("/ui/gradio_api/upload", files={"files": ("big.txt", big)})
    assert response.status_code == 413
    assert "Traceback" not in response.text


def test_failed_ui_logins_are_throttled_per_address(ui_app: TestClient) -> None:
    def login(password: str) -> Any:
        return ui_app.post("/ui/login", data={"username": "me", "password": password})

    assert [login(f"guess-{n}").status_code for n in range(5)] == [400] * 5
    refused = login("guess-5")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "too many failed logins" in error_of(refused)
    assert login(KEY).status_code == 429  # even the right key waits out the window
    assert ui_app.get("/healthz").status_code == 200  # nothing else is slowed down


def test_timeline_route_returns_dated_cited_events(sample_index: Settings) -> None:
    from fastapi.testclient import TestClient

    from assistant.api import create_app

    client = TestClient(create_app(sample_index))
    reply = client.post("/v1/timeline", json={"query": "Ever Given Suez Canal", "as_of": "2021-03-26"})
    assert reply.status_code == 200, reply.text
    events = reply.json()["events"]
    assert events and events[0]["date"] == "2021-03-23"
    assert all(s["published"] <= "2021-03-26" for e in events for s in e["sources"])
    bad = client.post("/v1/timeline", json={"query": "x", "as_of": "soon"})
    assert bad.status_code == 422 and "as_of" in bad.json()["error"]["message"]
