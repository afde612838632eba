"""The chat UI end to end in real headless Chromium: ask, follow up, jump to a source, upload.

Needs the system Chromium (`apt-get install -y chromium`; CI installs it) and the `playwright`
package; the app runs in-process on a free loopback port over a fresh copy of the sample
articles.  Screenshots of every step go to test-artifacts/ui-browser/.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from assistant.answer import Assistant
from assistant.settings import Settings, get_settings
from assistant.ui import launch
from index import ingest
from index.embeddings import Embedder
from tests.conftest import REPO, SAMPLES, write

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = REPO / "test-artifacts" / "ui-browser"
ANSWER_TIMEOUT_MS = 30_000

LATEST_REPLY = "#nd-chat [data-testid=bot] >> nth=-1"


def require_chromium() -> None:
    """Fail (not skip) without the browser: CI installs it, so its absence is a setup bug."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with "
            "`apt-get update && apt-get install -y chromium` (CI does this in .ci/run; "
            "`playwright install` cannot download browsers here)",
            pytrace=False,
        )


@contextmanager
def serving_samples(folder: Path, embedder: Embedder) -> Iterator[str]:
    """The app on a free loopback port over its own index of the sample articles."""
    settings: Settings = get_settings(data_dir=folder / "data")
    assert ingest([SAMPLES], config=settings, embedder=embedder).added
    blocks = launch("127.0.0.1", _free_port(), settings,
                    assistant=Assistant(settings, embedder=embedder), block=False)
    try:
        yield str(blocks.local_url)
    finally:
        blocks.close()


@contextmanager
def browser_page(url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            page.goto(url)
            page.wait_for_selector("#nd-question textarea")
            yield page
        finally:
            browser.close()


def ask(page: Any, question: str) -> None:
    box = page.locator("#nd-question textarea")
    box.fill(question)
    box.press("Enter")


def test_ask_follow_up_jump_upload_and_filter(embedder: Embedder, tmp_path: Path) -> None:
    require_chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serving_samples(tmp_path, embedder) as url, browser_page(url) as page:
        walk_through(page, tmp_path)


def walk_through(page: Any, tmp_path: Path) -> None:
    """The reader's path through the app, a screenshot after each step."""
    from playwright.sync_api import expect

    page.screenshot(path=SHOTS / "1-start.png")
    expect(page.locator("#nd-summary")).to_contain_text("16 articles")

    # The canonical question: an answer, and its source sentence highlighted in the panel.
    ask(page, "When did Assad visit Moscow?")
    quote = page.locator("#nd-sources mark.nd-quote", has_text="surprise visit to Moscow")
    expect(quote).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    reply = page.locator(LATEST_REPLY)
    expect(reply).to_contain_text("October 20")
    expect(reply.locator(".nd-badge")).to_have_text("Extractive")
    page.screenshot(path=SHOTS / "2-answer.png")

    # Clicking the [n] marker brings its highlighted sentence into view.
    marker = reply.locator("a.nd-cite").first
    target = (marker.get_attribute("href") or "").lstrip("#")
    assert target.startswith("src-1-")
    marker.click()
    expect(page.locator(f"[id='{target}']")).to_be_in_viewport()
    assert page.url.endswith(f"#{target}")
    page.screenshot(path=SHOTS / "3-marker.png")

    # A follow-up is understood in the context of the first question.
    ask(page, "And what did Lavrov say?")
    expect(page.locator("#nd-sources #turn-2")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    reply = page.locator(LATEST_REPLY)
    expect(reply).to_contain_text(re.compile("Lavrov said (Moscow would be willing|Russia wanted contacts|in an interview)"))
    expect(reply).to_contain_text("Searched for: “What did Lavrov say? (Assad, Moscow)”")
    expect(page.locator("#nd-sources #turn-2")).to_contain_text(
        "Lavrov says Russia ready to back Free Syrian Army from the air")
    page.screenshot(path=SHOTS / "4-follow-up.png")

    # The library: upload one good and one bad file, see a result for each.
    page.get_by_role("tab", name="Library").click()
    good = write(tmp_path / "bakers.md", "---\ntitle: Bakers strike over flour prices\n"
                 "outlet: Test Gazette\npublished: 2024-03-05\n---\n"
                 "Bakers in the capital walked out on Monday over the price of flour.\n")
    bad = write(tmp_path / "wire.jsonl", '{"id": "w2", "title": "No text here"}\n')
    page.locator("#nd-upload input[type=file]").set_input_files([str(good), str(bad)])
    results = page.locator("#nd-upload-results")
    expect(results.locator("td.nd-added")).to_have_text("added 1", timeout=ANSWER_TIMEOUT_MS)
    expect(results).to_contain_text("bakers.md")
    expect(results.locator("tr", has_text="wire.jsonl")).to_contain_text("skipped 1")
    expect(results.locator("tr", has_text="wire.jsonl")).to_contain_text("line 1:")
    expect(page.locator("#nd-listed")).to_contain_text("17 of 17 articles")
    page.screenshot(path=SHOTS / "5-upload.png")

    # ... and find the new article by its title and read it.
    page.locator("#nd-search input, #nd-search textarea").first.fill("Bakers")
    expect(page.locator("#nd-listed")).to_contain_text("1 matching")
    page.locator("#nd-library [role=gridcell]", has_text="Bakers strike over flour prices").first.click()
    expect(page.locator("#nd-reader")).to_contain_text("walked out on Monday")
    page.screenshot(path=SHOTS / "6-reader.png")

    # A bad filter date is explained in the page; the question stays in the box to retry.
    page.get_by_role("tab", name="Ask").click()
    page.get_by_text("Filters").click()
    page.locator("#nd-since input, #nd-since textarea").first.fill("2015-13-01")
    ask(page, "When did Assad visit Moscow?")
    expect(page.locator("#nd-status")).to_contain_text("Since: '2015-13-01' is not a date")
    expect(page.locator("#nd-question textarea")).to_have_value("When did Assad visit Moscow?")
    page.screenshot(path=SHOTS / "7-bad-date.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
