"""One bad record of each kind inside a good batch: reported, never a traceback, nothing lost.

Every input that cannot be indexed is reported with its file (and line) and a reason a user can
act on, while every good article of the same batch is indexed.  Tried as a user would: through
`newsdesk ingest` in a subprocess (one batch holding one bad input of each kind), and through
``POST /v1/articles`` on the real app (one bad record between two good ones, kind by kind).
``benchmarks/faults_records.py`` runs the same cases and counts tracebacks and records lost.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.answer import Assistant
from assistant.api import create_app
from assistant.library import Library
from assistant.settings import Settings, get_settings
from index import Article, ingest_articles
from index.embeddings import Embedder
from tests.conftest import REPO, SAMPLES, write

DEEP_JSON = "[" * 200_000 + "]" * 200_000
GIANT_MB = 20
"""The single-paragraph article: NLTK's regex guard aborted whole batches from 8-16 MB."""


@dataclass(frozen=True)
class Bad:
    """A bad input and how the ingest report must name it."""

    kind: str
    where: str  # the end of the skip's source: file, file:line
    reason: str  # words the skip's reason must contain


BAD = [
    Bad("json-nested-200000-deep", "deep.json[1]", "nested too deeply"),
    Bad("jsonl-lone-surrogate", "records.jsonl:2", "unpaired surrogate"),
    Bad("published-yesterday", "records.jsonl:4", "relative to the day it is read"),
    Bad("published-9999-12-31", "records.jsonl:5", "in the future"),
    Bad("number-of-5000-digits", "records.jsonl:6", "4300 digits"),
    Bad("giant-single-paragraph", "giant.txt", "over the 5 million"),
    Bad("one-line-txt", "one-line.txt", "only a headline"),
    Bad("utf16-without-bom", "utf16-plain.txt", "UTF-16"),
    Bad("fifo-in-folder", "batch/pipe.txt", "named pipe"),
    Bad("broken-symlink", "broken.txt", "broken symbolic link"),
    Bad("symlink-loop", "loop.txt", "symbolic link loop"),
    Bad("fifo-on-command-line", "named-pipe.txt", "named pipe"),
]
"""The CLI batch's bad inputs, one of each kind, with how the report must name them."""


def good_record(title: str, body: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "text": f"{title}. {body}", **extra}


def build_batch(root: Path) -> tuple[list[str], set[str]]:
    """Write the batch under ``root`` (the inputs of BAD among good ones): the paths to pass
    to `newsdesk ingest`, and the titles of the good articles that must be indexed."""
    folder = root / "batch"
    write(folder / "bridge.txt", "Harbor bridge reopens\nThe Harbor Bridge reopened on Monday.")
    write(folder / "tram.md", "---\ntitle: Tram line extended\npublished: 2024-03-04\n---\n"
          "The tram line now runs to the airport.\n")
    lines = [
        good_record("Ferry fares rise", "Fares rise by ten percent in May."),
        good_record("Surrogate", "Text with a lone surrogate \ud800 inside."),
        good_record("Library opens", "The new library opened its doors."),
        good_record("Relative date", "Published yesterday.", published="yesterday"),
        good_record("Far future", "Published at the end of time.", published="9999-12-31"),
        None,  # a number of 5,000 digits, written below
        good_record("Old quarry", "The quarry closed 99999999 days ago, the sign says."),
    ]
    text = [json.dumps(r) for r in lines if r is not None]
    text.insert(5, '{"text": "Huge number.", "views": 1' + "0" * 5000 + "}")
    write(folder / "records.jsonl", "\n".join(text) + "\n")
    write(folder / "deep.json", DEEP_JSON)
    write(folder / "giant.txt", "Giant headline\n" + "All work and no play. " * (GIANT_MB * 50_000))
    write(folder / "one-line.txt", "Just a headline and nothing else")
    write(folder / "utf16-bom.txt",
          codecs.BOM_UTF16_LE + "Port strike ends\nDock workers return.".encode("utf-16-le"))
    write(folder / "utf16-plain.txt", "Canal dredged\nThe canal was dredged.".encode("utf-16-le"))
    write(Path(os.fsdecode(bytes(folder) + b"/caf\xe9.txt")), "Cafe reopens\nThe cafe reopened.")
    os.mkfifo(folder / "pipe.txt")
    (folder / "broken.txt").symlink_to("missing.txt")
    (folder / "loop.txt").symlink_to("loop.txt")
    elsewhere = write(root / "elsewhere" / "story.txt", "Museum expands\nA new wing opens.")
    (root / "link-to-story.txt").symlink_to(elsewhere)
    os.mkfifo(root / "named-pipe.txt")
    paths = [str(folder), str(root / "link-to-story.txt"), str(root / "named-pipe.txt")]
    good = {"Harbor bridge reopens", "Tram line extended", "Ferry fares rise", "Library opens",
            "Old quarry", "Port strike ends", "Cafe reopens", "Museum expands"}
    return paths, good


@dataclass
class Run:
    code: int | None  # None: still running after the timeout (a hang)
    output: str
    articles: list[Article]


def run_cli_ingest(root: Path, paths: list[str], *, code_dir: Path = REPO) -> Run:
    """`newsdesk ingest PATHS` in a fresh process over a new data folder, and what it indexed."""
    data = root / "data"
    env = {**os.environ, "PYTHONPATH": str(code_dir), "COLUMNS": "400", "NO_COLOR": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "assistant.cli", "ingest", *paths, "--data-dir", str(data)],
            capture_output=True, text=True, errors="backslashreplace", env=env, timeout=300,
            cwd=code_dir, check=False,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code, output = None, f"timed out; output so far: {exc.stdout!r} {exc.stderr!r}"
    articles = Library(get_settings(data_dir=data)).list_articles(limit=None).articles
    return Run(code, output, articles)


@pytest.fixture(scope="module")
def cli_batch(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[tuple[Run, set[str]]]:
    """The whole batch, ingested once by the CLI (the bundled model is exported by now)."""
    root = tmp_path_factory.mktemp("faults")
    paths, good = build_batch(root)
    yield run_cli_ingest(root, paths), good


@pytest.mark.slow
def test_the_cli_batch_finishes_without_a_traceback_and_exits_1(cli_batch: tuple[Run, set[str]]) -> None:
    run, _ = cli_batch
    assert run.code is not None, "ingest hung (a named pipe was opened for reading?)"
    assert "Traceback" not in run.output, run.output[-3000:]
    assert run.code == 1, "bad inputs are errors: the exit code says so"


@pytest.mark.slow
def test_every_good_article_of_the_cli_batch_is_indexed(cli_batch: tuple[Run, set[str]]) -> None:
    run, good = cli_batch
    assert {a.title for a in run.articles} == good, run.output[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD, ids=[b.kind for b in BAD])
def test_each_bad_input_is_reported_with_its_file_and_reason(
    cli_batch: tuple[Run, set[str]], case: Bad
) -> None:
    run, _ = cli_batch
    lines = [line.strip() for line in run.output.splitlines() if line.strip().startswith("skipped")]
    found = [line for line in lines if line.split(": ", 1)[0].endswith(case.where)]
    assert len(found) == 1, f"{case.where} not reported once in:\n" + "\n".join(lines)
    assert case.reason in found[0]


@pytest.mark.slow
def test_files_keep_the_names_they_were_given(cli_batch: tuple[Run, set[str]]) -> None:
    run, _ = cli_batch
    source = {a.title: a.source or "" for a in run.articles}
    assert source["Museum expands"].endswith("/link-to-story.txt"), "a link, not its target"
    assert source["Cafe reopens"].endswith("/caf\\xe9.txt"), "a name that is not UTF-8, escaped"
    assert source["Port strike ends"].endswith("/utf16-bom.txt")


# --- POST /v1/articles ---------------------------------------------------------------------

KEY = "test-key-0123456789abcdef"
GOOD_BEFORE = good_record("Council votes", "The council voted on the budget on Tuesday.")
GOOD_AFTER = good_record("Stadium plans", "The stadium plans were approved last night.")

API_CASES = [
    ("json-nested-200000-deep", DEEP_JSON, "nested too deeply"),
    ("lone-surrogate-in-text", json.dumps({"text": "Bad \ud800 text."}), "field 'text'"),
    ("lone-surrogate-in-title", json.dumps({"title": "\udfff", "text": "Fine."}), "field 'title'"),
    ("number-of-5000-digits", '{"text": "x", "views": 1' + "0" * 5000 + "}", "4300 digits"),
    ("published-yesterday", json.dumps({"text": "x.", "published": "yesterday"}), "relative"),
    ("published-9999-12-31", json.dumps({"text": "x.", "published": "9999-12-31"}), "future"),
    ("published-0001-01-01", json.dumps({"text": "x.", "published": "0001-01-01"}), "before 1600"),
    ("text-of-9.5-MB", json.dumps({"text": "Word word word. " * 600_000}), "over the 5 million"),
]


@pytest.fixture
def writable(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    """The real service over a fresh, empty index."""
    keyed = get_settings(data_dir=settings.index.data_dir, api_key=KEY)
    app = create_app(assistant=Assistant(keyed, embedder=embedder))
    headers = {"Authorization": f"Bearer {KEY}"}
    with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
        yield client


def post_records(client: TestClient, *elements: str) -> Any:
    body = "[" + ", ".join(elements) + "]"
    return client.post(
        "/v1/articles", content=body.encode(), headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize(("kind", "element", "reason"), API_CASES, ids=[c[0] for c in API_CASES])
def test_one_bad_record_in_a_posted_batch_is_a_skip(
    writable: TestClient, kind: str, element: str, reason: str
) -> None:
    response = post_records(writable, json.dumps(GOOD_BEFORE), element, json.dumps(GOOD_AFTER))
    assert response.status_code == 200, response.text[:500]
    report = response.json()
    assert len(report["added"]) == 2, "both good records are indexed"
    (skip,) = report["skipped"]
    assert skip["source"] == "request[2]" and skip["error"] and reason in skip["reason"]


def test_a_number_no_calendar_holds_does_not_cost_the_record(writable: TestClient) -> None:
    old = good_record("Old quarry", "The quarry closed 99999999 days ago, the sign says.",
                      published="2024-03-04")
    response = post_records(writable, json.dumps(GOOD_BEFORE), json.dumps(old))
    assert response.status_code == 200 and len(response.json()["added"]) == 2


def test_a_body_that_is_one_unreadable_record_is_a_422(writable: TestClient) -> None:
    response = writable.post(
        "/v1/articles", content=DEEP_JSON.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "nested too deeply" in response.json()["error"]["message"]


# --- the pipeline's own guard --------------------------------------------------------------


def test_an_article_that_fails_mid_pipeline_is_skipped_and_the_rest_indexed(
    settings: Settings, embedder: Embedder
) -> None:
    # Articles handed to the Python API skip the readers' checks: whatever fails on the way
    # to the index (here the content hash cannot encode the title) costs only that article.
    good = Article(id="good", title="Harbor", text="The harbor bridge reopened on Monday.")
    bad = Article(id="bad", title="Bad \ud800", text="Fine text.", source="api:bad")
    later = Article(id="later", title="Tram", text="The tram line now runs to the airport.")
    report = ingest_articles([good, bad, later], config=settings, embedder=embedder)
    assert sorted(report.added) == ["good", "later"]
    (skip,) = report.skipped
    assert skip.source == "api:bad" and "UnicodeEncodeError" in skip.reason


# --- giant paragraphs ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_giant_paragraph_splits_the_same_on_a_busy_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk.redos

    from index import chunking

    texts = [json.loads(line)["text"] for line in (SAMPLES / "articles.jsonl").read_text().splitlines()]
    paragraph = " ".join(" ".join(texts).split())
    paragraph = (paragraph + " ") * (1_500_000 // len(paragraph) + 1)
    # Punkt over the whole paragraph in one pass, with NLTK's regex guard off: the reference.
    window = chunking.WINDOW
    monkeypatch.setattr(nltk.redos, "DEFAULT_TIMEOUT", None)
    monkeypatch.setattr(chunking, "WINDOW", len(paragraph))
    whole = chunking.sentence_spans(paragraph)
    # A machine several times busier: the guard at 0.5 s, which one pass over it exceeds.
    monkeypatch.setattr(nltk.redos, "DEFAULT_TIMEOUT", 0.5)
    monkeypatch.setattr(chunking, "WINDOW", window)
    assert chunking.sentence_spans(paragraph) == whole
    assert len(whole) > 10_000
