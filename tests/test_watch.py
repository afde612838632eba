"""Following feeds (`newsdesk watch`): what a round fetches, what it indexes, what it remembers.

Feeds, pages and robots.txt are served by ``tests.feed_server`` on 127.0.0.1; the index, Chroma
and the embedding model are the real ones.  Rounds run on a scripted clock, so the schedule
(interval, backoff) is checked exactly without waiting for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from filelock import FileLock
from typer.testing import CliRunner

from assistant.settings import Settings
from index.embeddings import Embedder
from index.errors import InputError, StoreError
from index.feed_list import read_feed_list
from index.feeds import FeedBook
from index.readers import derive_id
from index.store import Store, open_store
from index.watch import WatchReport, run_round
from index.watch_items import canonical_url
from tests.conftest import REPO, write
from tests.feed_server import FeedServer, page, rss, serving_feeds  # noqa: F401 - fixture "server"

START = 1_900_000_000.0


class Clock:
    """The time a round believes it is."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def story(n: int, version: int = 1) -> tuple[str, list[str]]:
    """Title and paragraphs of a made-up story (a new version changes its second paragraph)."""
    places = ["Harwick", "Lowmoor", "Eastfield", "Brannock", "Silverton", "Kettleby", "Marsh End"]
    place = places[n % len(places)]
    return f"{place} council story {n}", [
        f"The {place} council met on Monday to discuss story number {n} in detail.",
        f"Version {version}: councillors voted {20 + n + version} to {10 + n} in favour of the plan.",
        f"The plan for {place} will be reviewed again next spring, officials said.",
    ]


def full_item(server: FeedServer, n: int, version: int = 1, path: str = "/full") -> dict[str, str]:
    """A feed entry carrying the whole article (content:encoded)."""
    title, paragraphs = story(n, version)
    return {"title": title, "link": server.url(f"{path}/{n}.html"),
            "content": "".join(f"<p>{p}</p>" for p in paragraphs),
            "pubDate": f"Tue, {10 + version:02d} Jun 2025 04:00:00 GMT"}


def summary_item(server: FeedServer, n: int, version: int = 1, path: str = "/pages") -> dict[str, str]:
    """A feed entry with only a summary; its page (served too) has the article."""
    title, paragraphs = story(n, version)
    server.serve(f"{path}/{n}.html", page(title, paragraphs), "text/html")
    return {"title": title, "link": server.url(f"{path}/{n}.html"),
            "description": f"Summary of story {n}, version {version}.",
            "pubDate": f"Wed, {10 + version:02d} Jun 2025 04:00:00 GMT"}


def id_of(server: FeedServer, path: str) -> str:
    return derive_id(canonical_url(server.url(path)), "", "")


@pytest.fixture
def watching(settings: Settings) -> Settings:
    return settings.updated(watch_interval=900, watch_backoff=60, watch_max_backoff=1000)


def feed_list(tmp_path: Path, *lines: str) -> Path:
    return write(tmp_path / "feeds.txt", "\n".join(["# feeds followed by the tests", *lines]) + "\n")


def poll(feeds: Path, settings: Settings, embedder: Embedder, clock: Clock, **kw: object) -> WatchReport:
    return run_round(feeds, config=settings, embedder=embedder, clock=clock, **kw)  # type: ignore[arg-type]


def status(report: WatchReport, url: str) -> str:
    return next(f.status for f in report.feeds if f.source == url)


def check_index_is_whole(store: Store) -> None:
    """Every catalog chunk that should have a vector has one, and no vector is left over."""
    dense = store.catalog.dense_chunk_ids()
    assert set(store.vectors.ids()) == dense


# --- the feed list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("ftp://example.org/feed", "unsupported scheme 'ftp'"),
        ("https:///feed.xml", "has no host; write it like https://example.org/feed.xml"),
        ("example.org/feed.xml", "write it as https://example.org/feed.xml"),
        ("no/such/folder", "fix the path (a relative one starts from the list's folder)"),
        ("notes.pdf", "is not a file newsdesk reads"),
        ("https://example.org/a feed.xml", "contains a space"),
        ("https://example.org/rss", "already on line 2; delete one"),
    ],
)
def test_a_bad_line_is_reported_with_its_place_and_fix(
    tmp_path: Path, line: str, problem: str
) -> None:
    write(tmp_path / "notes.pdf", b"%PDF-1.4")
    listing = feed_list(tmp_path, "https://example.org/rss   # the main feed", line)
    sources, problems = read_feed_list(listing)
    assert [s.key for s in sources] == ["https://example.org/rss"]
    assert [p.source for p in problems] == [f"{listing}:3"]
    assert problem in problems[0].reason


def test_good_lines_are_urls_and_folders(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    listing = feed_list(
        tmp_path, "", "https://example.org/feed.xml#latest", "archive  # a folder beside the list",
        "   # an indented comment", "http://127.0.0.1:8080/rss?lang=en",
    )
    sources, problems = read_feed_list(listing)
    assert [(s.key, s.kind) for s in sources] == [
        ("https://example.org/feed.xml#latest", "feed"),
        (str(tmp_path / "archive"), "folder"),
        ("http://127.0.0.1:8080/rss?lang=en", "feed"),
    ]
    assert not problems


def test_a_list_with_nothing_usable_is_an_error_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"feeds.txt:2: unsupported scheme 'gopher'"):
        read_feed_list(feed_list(tmp_path, "gopher://example.org/news"))
    with pytest.raises(InputError, match="no feed list at"):
        read_feed_list(tmp_path / "missing.txt")


# --- rounds -------------------------------------------------------------------------------


def test_new_items_appear_with_the_page_text_when_the_feed_has_only_summaries(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    server.serve("/full.xml", rss("Full Feed", [full_item(server, 1), full_item(server, 2)]))
    server.serve("/summaries.xml", rss("Summary Feed", [summary_item(server, 3),
                                                          summary_item(server, 4)]))
    feeds = feed_list(tmp_path, server.url("/full.xml"), server.url("/summaries.xml"))
    report = poll(feeds, watching, embedder, Clock())

    expected = {id_of(server, p) for p in ("/full/1.html", "/full/2.html", "/pages/3.html",
                                           "/pages/4.html")}
    assert set(report.added) == expected and report.due == 2
    assert [f.status for f in report.feeds] == ["changed", "changed"]
    store = open_store(watching)
    article = store.get_article(id_of(server, "/pages/3.html"))
    assert "councillors voted 24 to 13" in article.text  # from the page, not the summary
    assert "Summary of story 3" not in article.text
    assert article.outlet == "Summary Feed" and str(article.published) == "2025-06-11"
    assert store.get_article(id_of(server, "/full/1.html")).outlet == "Full Feed"
    assert {r.headers["user-agent"].split(" ")[0] for r in server.requests} == {"newsdesk/0.1.0"}
    assert len(server.hits("/robots.txt")) == 1  # one host, asked once
    check_index_is_whole(store)


def test_304s_and_unchanged_bodies_cost_nothing(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    server.serve("/etag.xml", rss("With validators", [summary_item(server, 1)]))
    server.serve("/plain.xml", rss("No validators", [summary_item(server, 2, path="/plain")]),
                 validators=False)
    feeds = feed_list(tmp_path, server.url("/etag.xml"), server.url("/plain.xml"))
    clock = Clock()
    first = poll(feeds, watching, embedder, clock)
    assert len(first.added) == 2
    store = open_store(watching)
    generation = store.generation
    server.reset()

    clock.advance(900)
    second = poll(feeds, watching, embedder, clock)
    assert [f.status for f in second.feeds] == ["not modified", "not modified"]
    assert second.batches == 0 and not (second.added or second.updated or second.unchanged)
    assert store.generation == generation  # nothing written
    assert sorted(r.path for r in server.requests) == ["/etag.xml", "/plain.xml", "/robots.txt"]
    conditional = server.hits("/etag.xml")[0].headers
    assert conditional["if-none-match"] == server.docs["/etag.xml"].etag
    assert conditional["if-modified-since"] == server.docs["/etag.xml"].last_modified
    assert second.feeds[0].http_status == 304 and second.feeds[1].http_status == 200


def test_an_edited_article_is_updated_and_only_changed_entries_are_fetched(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    server.serve("/city.xml", rss("City", [summary_item(server, 1), summary_item(server, 2)]))
    feeds = feed_list(tmp_path, server.url("/city.xml"))
    clock = Clock()
    poll(feeds, watching, embedder, clock)
    store = open_store(watching)
    edited = id_of(server, "/pages/1.html")
    assert "Version 1" in store.get_article(edited).text
    server.reset()

    server.serve("/city.xml", rss("City", [summary_item(server, 1, version=2),
                                           summary_item(server, 2), summary_item(server, 5)]))
    clock.advance(900)
    report = poll(feeds, watching, embedder, clock)
    assert report.updated == [edited] and report.added == [id_of(server, "/pages/5.html")]
    assert report.feeds[0].updated == 1 and report.feeds[0].added == 1
    assert not server.hits("/pages/2.html")  # unchanged entry: its page is not fetched again
    text = store.get_article(edited).text
    assert "Version 2" in text and "Version 1" not in text
    assert store.count_articles() == 3
    chunk_ids = [c.id for c in store.catalog.all_chunks() if c.article_id == edited]
    assert chunk_ids and all(f"#{store.content_hashes([edited])[edited]}#" in i for i in chunk_ids)
    check_index_is_whole(store)


def test_one_story_under_two_urls_or_in_two_feeds_is_indexed_once(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    server.serve("/a.xml", rss("A", [full_item(server, 1)]))
    clock = Clock()
    first = poll(feed_list(tmp_path, server.url("/a.xml")), watching, embedder, clock)
    assert len(first.added) == 1
    tracked = dict(summary_item(server, 1, path="/full"), link=server.url("/full/1.html?utm_source=b"))
    server.serve("/b.xml", rss("B", [tracked]))  # the same URL once tracking is dropped
    server.serve("/c.xml", rss("C", [full_item(server, 1, path="/mirror")]))  # same text
    server.reset()

    clock.advance(60)  # A is not due; B and C are new
    second = poll(feed_list(tmp_path, *(server.url(p) for p in ("/a.xml", "/b.xml", "/c.xml"))),
                  watching, embedder, clock)
    assert not second.added and second.duplicates == 2
    assert [f.status for f in second.feeds] == ["waiting", "changed", "changed"]
    assert not server.hits("/full/1.html?utm_source=b")
    assert open_store(watching).count_articles() == 1


def test_a_failing_feed_backs_off_and_recovers(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    server.fail("/down.xml", 500)
    server.fail("/busy.xml", 503, {"Retry-After": "3600"})
    server.serve("/page.html", page("Not a feed", ["Just a page."]), "text/html")
    urls = [server.url(p) for p in ("/down.xml", "/busy.xml", "/page.html")]
    feeds = feed_list(tmp_path, *urls)
    clock = Clock()

    def when(offset: float) -> datetime:
        return datetime.fromtimestamp(START + offset, UTC)

    report = poll(feeds, watching, embedder, clock)
    down, busy, not_feed = report.feeds
    assert (down.status, down.http_status, down.errors) == ("error", 500, 1)
    assert down.next_poll == when(60)
    assert busy.next_poll == when(3600)  # Retry-After is longer than the backoff
    assert "not an RSS or Atom feed (content type text/html)" in (not_feed.message or "")

    clock.advance(59)
    assert status(poll(feeds, watching, embedder, clock), urls[0]) == "waiting"
    assert len(server.hits("/down.xml")) == 1
    clock.advance(1)
    report = poll(feeds, watching, embedder, clock)
    assert (report.feeds[0].errors, report.feeds[0].next_poll) == (2, when(60 + 120))
    clock.advance(120)
    report = poll(feeds, watching, embedder, clock)
    assert (report.feeds[0].errors, report.feeds[0].next_poll) == (3, when(180 + 240))
    assert len(server.hits("/down.xml")) == 3

    server.serve("/down.xml", rss("Back", [full_item(server, 7)]))
    clock.advance(240)
    report = poll(feeds, watching, embedder, clock)
    back = report.feeds[0]
    assert (back.status, back.errors, back.added, back.message) == ("changed", 0, 1, None)
    assert back.next_poll == when(420 + 900)
    assert len(server.hits("/busy.xml")) == 1  # still waiting out its Retry-After


def test_robots_txt_is_obeyed_for_feeds_and_pages(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    server.serve("/robots.txt", "User-agent: newsdesk\nDisallow: /private/\n\n"
                 "User-agent: *\nDisallow:\n", "text/plain")
    server.serve("/private/feed.xml", rss("Private", [full_item(server, 1)]))
    hidden = summary_item(server, 2, path="/private")
    server.serve("/news.xml", rss("News", [hidden]))
    feeds = feed_list(tmp_path, server.url("/private/feed.xml"), server.url("/news.xml"))
    report = poll(feeds, watching, embedder, Clock())

    assert [f.status for f in report.feeds] == ["disallowed", "changed"]
    assert not server.hits("/private/feed.xml") and not server.hits("/private/2.html")
    assert len(server.hits("/robots.txt")) == 1
    article = open_store(watching).get_article(id_of(server, "/private/2.html"))
    assert article.text == "Summary of story 2, version 1."
    assert "1 disallowed by robots.txt" in (report.feeds[1].message or "")


def test_requests_to_one_host_stay_within_the_limit(
    watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    slow = FeedServer(delay=0.1)
    try:
        slow.serve("/robots.txt", "User-agent: *\nDisallow:\n", "text/plain")
        for n in range(8):
            slow.serve(f"/f{n}.xml", rss(f"Feed {n}", []))
        feeds = feed_list(tmp_path, *(slow.url(f"/f{n}.xml") for n in range(8)))
        report = poll(feeds, watching.updated(watch_per_host=2, watch_concurrency=8),
                      embedder, Clock())
        assert report.count("unchanged") == 8
        assert slow.most_active <= 2
    finally:
        slow.close()


def test_a_folder_is_polled_for_new_and_changed_files(
    watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    write(folder / "a.txt", "Harbour reopens\nThe harbour reopened on Friday after repairs.")
    write(folder / "b.md", "Bridge closes\nThe old bridge closed for good on Saturday.")
    feeds = feed_list(tmp_path, "drop")
    clock = Clock()
    assert len(poll(feeds, watching, embedder, clock).added) == 2
    clock.advance(900)
    again = poll(feeds, watching, embedder, clock)
    assert again.feeds[0].status == "not modified" and again.batches == 0

    edited = write(folder / "a.txt", "Harbour reopens\nThe harbour reopened on Sunday instead.")
    os.utime(edited, ns=(1, 2_000_000_000_000_000_000))  # a change even within one mtime tick
    write(folder / "c.txt", "Ferry returns\nThe ferry service returned on Monday morning.")
    clock.advance(900)
    report = poll(feeds, watching, embedder, clock)
    assert len(report.added) == 2 and len(report.removed) == 1  # edited a.txt replaces its old id
    store = open_store(watching)
    assert store.count_articles() == 3
    assert any("Sunday" in store.get_article(i).text for i in report.added)


def test_one_watcher_per_data_folder(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    watching.index.data_dir.mkdir(parents=True)
    feeds = feed_list(tmp_path, server.url("/x.xml"))
    with FileLock(watching.index.data_dir / "watch.lock"), pytest.raises(StoreError,
                                                                          match="another watcher"):
        poll(feeds, watching, embedder, Clock())


KILL_SCRIPT = """
import os, signal, sys
from assistant.settings import get_settings
from index.watch import run_round
settings = get_settings(data_dir=sys.argv[1], watch_batch_size=2)
def die(report, total):
    if report.batches >= 2:
        os.kill(os.getpid(), signal.SIGKILL)
run_round(sys.argv[2], config=settings, progress=die)
"""


@pytest.mark.slow
def test_a_round_killed_midway_loses_nothing(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    for f in range(3):
        items = [summary_item(server, 10 * f + n) if n % 2 else full_item(server, 10 * f + n)
                 for n in range(3)]
        server.serve(f"/feed{f}.xml", rss(f"Feed {f}", items))
    feeds = feed_list(tmp_path, *(server.url(f"/feed{f}.xml") for f in range(3)))
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(watching.index.data_dir), str(feeds)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = open_store(watching)
    done = store.count_articles()
    assert 4 <= done < 9

    clock = Clock()
    report = poll(feeds, watching.updated(watch_batch_size=2), embedder, clock)
    assert len(report.added) == 9 - done and not report.unchanged  # nothing written twice
    assert store.count_articles() == 9
    assert FeedBook(watching).count_items() == 9
    check_index_is_whole(store)
    clock.advance(900)
    after = poll(feeds, watching, embedder, clock)
    assert after.count("not modified") == 3 and after.batches == 0


# --- the faces ----------------------------------------------------------------------------


def test_newsdesk_watch_once_shows_each_feed(
    server: FeedServer, embedder: Embedder, tmp_path: Path
) -> None:
    from assistant.cli import app

    server.serve("/news.xml", rss("Loopback News", [full_item(server, 1), full_item(server, 2)]))
    feeds = feed_list(tmp_path, server.url("/news.xml"), "ftp://example.org/old")
    data = str(tmp_path / "d")
    result = CliRunner().invoke(app, ["watch", str(feeds), "--once", "--data-dir", data])
    assert result.exit_code == 1, result.output  # the list has a bad line
    assert f"{feeds}:3: unsupported scheme 'ftp'" in result.output
    assert "Loopback News" in result.output and "added 2," in result.output

    result = CliRunner().invoke(app, ["watch", str(feeds), "--status", "--data-dir", data])
    assert result.exit_code == 0 and "changed 200" in result.output and "in 15m" in result.output


def test_http_runs_a_round_and_reports_each_feed(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    from assistant.answer import Assistant
    from assistant.api import create_app

    server.serve("/news.xml", rss("Loopback News", [full_item(server, 1)]))
    configured = watching.updated(watch_feeds=feed_list(tmp_path, server.url("/news.xml")))
    with TestClient(create_app(assistant=Assistant(configured, embedder=embedder))) as client:
        ran = client.post("/v1/watch/run")
        assert ran.status_code == 200, ran.text
        assert ran.json()["added"] == [id_of(server, "/full/1.html")]
        feeds = client.get("/v1/watch").json()
        assert [(f["title"], f["status"]) for f in feeds] == [("Loopback News", "changed")]
        assert client.get("/v1/articles").json()["total"] == 1

    bare = create_app(assistant=Assistant(watching, embedder=embedder))
    refused = TestClient(bare).post("/v1/watch/run")
    assert refused.status_code == 400 and "NEWSDESK_WATCH_FEEDS" in refused.json()["error"]["hint"]
