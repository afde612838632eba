"""What the watcher forgets (`NEWSDESK_WATCH_FORGET_DAYS`): entries and files a source stopped
listing, and sources gone from the feed list, once the window has passed; never what is still
listed, never on a 304 or an error; and forgetting never costs a duplicate article.

Feeds are served by ``tests.feed_server`` on 127.0.0.1; the index, Chroma and the embedding model
are the real ones.  Rounds run on a scripted clock, so thirty days pass in no time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assistant.errors import ConfigError
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder
from index.feeds import FeedBook
from index.store import open_store
from index.watch import feed_statuses
from tests.conftest import write
from tests.feed_server import FeedServer, rss, serving_feeds  # noqa: F401 - fixture "server"
from tests.test_watch import (
    START,
    Clock,
    check_index_is_whole,
    feed_list,
    full_item,
    id_of,
    poll,
    summary_item,
)

DAY = 86400.0


@pytest.fixture
def watching(settings: Settings) -> Settings:
    return settings.updated(watch_interval=900, watch_forget_days=30)


@pytest.fixture
def clock() -> Clock:
    """The watcher's clock, which the test advances."""
    return Clock()


@pytest.fixture
def news(server: FeedServer, tmp_path: Path) -> tuple[str, Path]:
    """The served feed's URL, and a feed list naming it."""
    url = server.url("/news.xml")
    return url, feed_list(tmp_path, url)


def publish(server: FeedServer, *numbers: int, item: Any = full_item) -> None:
    """Serve /news.xml listing these stories (``item`` makes each entry)."""
    server.serve("/news.xml", rss("News", [item(server, n) for n in numbers]))


def remembered(settings: Settings, source: str) -> set[str]:
    """The keys of the items the watcher remembers for ``source``."""
    with sqlite3.connect(settings.index.catalog_path) as db:
        return {k for (k,) in db.execute("SELECT key FROM feed_items WHERE source=?", (source,))}


def keys(server: FeedServer, *numbers: int, path: str = "/full") -> set[str]:
    return {server.url(f"{path}/{n}.html") for n in numbers}


def test_an_entry_dropped_from_its_feed_is_remembered_for_the_window_then_forgotten(
    server: FeedServer, watching: Settings, embedder: Embedder,
    news: tuple[str, Path], clock: Clock,
) -> None:
    url, feeds = news
    publish(server, 1, 2, 3)
    first = poll(feeds, watching, embedder, clock)
    assert len(first.added) == 3 and first.feeds[0].remembered == 3

    publish(server, 1, 2)
    clock.advance(29 * DAY)
    within = poll(feeds, watching, embedder, clock)
    assert within.feeds[0].status == "unchanged" and within.forgotten == 0
    assert remembered(watching, url) == keys(server, 1, 2, 3)

    publish(server, 1, 2, 4)
    clock.advance(2 * DAY)  # 3 was last listed 31 days ago
    after = poll(feeds, watching, embedder, clock)
    assert after.added == [id_of(server, "/full/4.html")]
    assert (after.forgotten, after.feeds[0].forgotten, after.feeds[0].remembered) == (1, 1, 3)
    assert remembered(watching, url) == keys(server, 1, 2, 4)
    assert open_store(watching).count_articles() == 4  # the index keeps the article itself


def test_entries_still_listed_are_never_forgotten_however_old(
    server: FeedServer, watching: Settings, embedder: Embedder,
    news: tuple[str, Path], clock: Clock,
) -> None:
    url, feeds = news
    publish(server, 1, 2, item=summary_item)
    poll(feeds, watching, embedder, clock)

    clock.advance(200 * DAY)
    assert poll(feeds, watching, embedder, clock).feeds[0].status == "not modified"
    publish(server, 1, 2, 3, item=summary_item)
    clock.advance(200 * DAY)
    report = poll(feeds, watching, embedder, clock)
    assert report.added == [id_of(server, "/pages/3.html")] and report.forgotten == 0
    assert remembered(watching, url) == keys(server, 1, 2, 3, path="/pages")
    assert len(server.hits("/pages/1.html")) == 1  # still known, so its page is not fetched again


def test_a_304_or_an_error_forgets_nothing(
    server: FeedServer, watching: Settings, embedder: Embedder,
    news: tuple[str, Path], clock: Clock,
) -> None:
    url, feeds = news
    publish(server, 1, 2, 3)
    poll(feeds, watching, embedder, clock)
    publish(server, 1, 2)
    clock.advance(DAY)
    poll(feeds, watching, embedder, clock)  # 3 dropped out

    clock.advance(60 * DAY)
    quiet = poll(feeds, watching, embedder, clock)
    assert quiet.feeds[0].http_status == 304 and quiet.forgotten == 0
    server.fail("/news.xml", 500)
    clock.advance(60 * DAY)
    failed = poll(feeds, watching, embedder, clock)
    assert failed.feeds[0].status == "error" and failed.forgotten == 0
    assert remembered(watching, url) == keys(server, 1, 2, 3)
    assert failed.feeds[0].remembered == 3


def test_a_listing_confirmed_by_304s_counts_as_listed_until_the_last_of_them(
    server: FeedServer, watching: Settings, embedder: Embedder,
    news: tuple[str, Path], clock: Clock,
) -> None:
    url, feeds = news
    publish(server, 1, 2)
    poll(feeds, watching, embedder, clock)
    clock.advance(40 * DAY)
    assert poll(feeds, watching, embedder, clock).feeds[0].http_status == 304  # 2 still listed

    publish(server, 1)
    clock.advance(DAY)
    assert poll(feeds, watching, embedder, clock).forgotten == 0  # unseen for 1 day, not 41
    publish(server, 1, 5)
    clock.advance(30 * DAY)
    assert poll(feeds, watching, embedder, clock).forgotten == 1
    assert remembered(watching, url) == keys(server, 1, 5)


def test_a_forgotten_entry_that_reappears_is_found_unchanged_not_indexed_twice(
    server: FeedServer, watching: Settings, embedder: Embedder,
    news: tuple[str, Path], clock: Clock,
) -> None:
    url, feeds = news
    server.serve("/news.xml", rss("News", [full_item(server, 1), summary_item(server, 2)]))
    poll(feeds, watching, embedder, clock)
    publish(server, 1)
    clock.advance(DAY)
    poll(feeds, watching, embedder, clock)
    publish(server, 1, 3)
    clock.advance(31 * DAY)
    assert poll(feeds, watching, embedder, clock).forgotten == 1
    store = open_store(watching)
    generation, vectors = store.generation, set(store.vectors.ids())

    server.serve("/news.xml", rss("News", [full_item(server, 1), summary_item(server, 2),
                                           full_item(server, 3)]))
    clock.advance(DAY)
    back = poll(feeds, watching, embedder, clock)
    assert back.unchanged == [id_of(server, "/pages/2.html")]
    assert not (back.added or back.updated) and back.feeds[0].added == 0
    assert len(server.hits("/pages/2.html")) == 2  # forgotten, so fetched again ...
    assert store.count_articles() == 3  # ... and recognised by its content hash
    assert store.generation == generation and set(store.vectors.ids()) == vectors
    assert remembered(watching, url) == keys(server, 1, 3) | keys(server, 2, path="/pages")
    check_index_is_whole(store)


def test_a_folder_forgets_a_removed_file_and_finds_it_unchanged_when_it_returns(
    watching: Settings, embedder: Embedder, tmp_path: Path, clock: Clock,
) -> None:
    folder = tmp_path / "drop"
    text = "Harbour reopens\nThe harbour reopened on Friday after repairs."
    gone = write(folder / "a.txt", text)
    write(folder / "b.txt", "Bridge closes\nThe old bridge closed for good on Saturday.")
    feeds = feed_list(tmp_path, "drop")
    assert len(poll(feeds, watching, embedder, clock).added) == 2
    gone.unlink()
    write(folder / "c.txt", "Ferry returns\nThe ferry service returned on Monday morning.")
    clock.advance(31 * DAY)
    report = poll(feeds, watching, embedder, clock)
    assert len(report.added) == 1 and report.forgotten == 1
    assert remembered(watching, str(folder)) == {str(folder / "b.txt"), str(folder / "c.txt")}

    write(folder / "a.txt", text)
    clock.advance(DAY)
    back = poll(feeds, watching, embedder, clock)
    assert len(back.unchanged) == 1 and not back.added
    assert open_store(watching).count_articles() == 3


def test_a_source_gone_from_the_list_is_forgotten_after_the_window(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path, clock: Clock,
) -> None:
    kept, dropped = server.url("/kept.xml"), server.url("/dropped.xml")
    server.serve("/kept.xml", rss("Kept", [full_item(server, 1)]))
    server.serve("/dropped.xml", rss("Dropped", [full_item(server, 2), full_item(server, 3)]))
    poll(feed_list(tmp_path, kept, dropped), watching, embedder, clock)
    only_kept = feed_list(tmp_path, kept)

    clock.advance(29 * DAY)
    assert poll(only_kept, watching, embedder, clock).forgotten == 0
    assert {s.source: s.remembered for s in feed_statuses(watching)} == {kept: 1, dropped: 2}
    clock.advance(2 * DAY)
    report = poll(only_kept, watching, embedder, clock)
    assert report.forgotten == 2 and [f.source for f in report.feeds] == [kept]
    assert [s.source for s in feed_statuses(watching)] == [kept]
    assert remembered(watching, dropped) == set() and remembered(watching, kept) == keys(server, 1)

    clock.advance(DAY)  # listed again: polled as new, its stories found already indexed
    again = poll(feed_list(tmp_path, kept, dropped), watching, embedder, clock)
    assert not again.added and len(again.unchanged) == 2
    assert open_store(watching).count_articles() == 3


def test_zero_days_remembers_everything_forever(
    server: FeedServer, watching: Settings, embedder: Embedder, tmp_path: Path, clock: Clock,
) -> None:
    forever = watching.updated(watch_forget_days=0)
    url = server.url("/news.xml")
    publish(server, 1, 2)
    poll(feed_list(tmp_path, url), forever, embedder, clock)
    publish(server, 3)
    clock.advance(1000 * DAY)
    assert poll(feed_list(tmp_path, url), forever, embedder, clock).forgotten == 0
    (tmp_path / "empty").mkdir()
    clock.advance(1000 * DAY)  # the feed is gone from the list too
    assert poll(feed_list(tmp_path, "empty"), forever, embedder, clock).forgotten == 0
    assert remembered(forever, url) == keys(server, 1, 2, 3)


def test_a_catalog_from_before_last_listed_opens_and_keeps_its_rows(
    server: FeedServer, watching: Settings, embedder: Embedder,
    news: tuple[str, Path], clock: Clock,
) -> None:
    url, feeds = news
    publish(server, 1, 2, 3)
    poll(feeds, watching, embedder, clock)
    with sqlite3.connect(watching.index.catalog_path) as db:  # as the watcher left it before
        db.execute("ALTER TABLE feed_items DROP COLUMN last_listed")
        db.execute("UPDATE feed_items SET seen = ? WHERE key LIKE '%/3.html'", (START - DAY,))

    FeedBook(watching).close()
    FeedBook(watching).close()  # a second open finds it upgraded
    with sqlite3.connect(watching.index.catalog_path) as db:
        rows = dict(db.execute("SELECT key, last_listed FROM feed_items WHERE seen = last_listed"))
    assert rows == {k: START for k in keys(server, 1, 2)} | {server.url("/full/3.html"): START - DAY}

    publish(server, 1, 2, 4)
    clock.advance(29.5 * DAY)  # 3 was last seen 30.5 days ago, by the old `seen`
    report = poll(feeds, watching, embedder, clock)
    assert report.added == [id_of(server, "/full/4.html")] and report.forgotten == 1
    assert remembered(watching, url) == keys(server, 1, 2, 4)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("a month", "valid number"), ("-1", "greater than or equal to 0")],
)
def test_a_bad_forget_days_setting_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    value: str, problem: str,
) -> None:
    from assistant.cli import main

    monkeypatch.setenv("NEWSDESK_WATCH_FORGET_DAYS", value)
    with pytest.raises(ConfigError, match=f"NEWSDESK_WATCH_FORGET_DAYS.*{problem}"):
        get_settings(data_dir=tmp_path)
    listing = feed_list(tmp_path, "https://example.org/rss")
    monkeypatch.setattr("sys.argv", ["newsdesk", "watch", str(listing), "--once",
                                     "--data-dir", str(tmp_path / "d")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    error, hint = capsys.readouterr().err.strip().splitlines()
    assert error.startswith("error: invalid settings: NEWSDESK_WATCH_FORGET_DAYS "
                            "(watch_forget_days): ") and problem in error
    assert hint.startswith("hint: fix the environment variable")
    assert not (tmp_path / "d").exists()  # nothing was polled or written


def test_the_status_table_shows_how_many_entries_are_known(
    server: FeedServer, embedder: Embedder, tmp_path: Path
) -> None:
    from assistant.cli import app

    server.serve("/news.xml", rss("Loopback News", [full_item(server, n) for n in (1, 2, 3)]))
    data = str(tmp_path / "d")
    feeds = feed_list(tmp_path, server.url("/news.xml"))
    assert CliRunner().invoke(app, ["watch", str(feeds), "--once", "--data-dir", data]).exit_code == 0
    shown = CliRunner().invoke(app, ["watch", "--status", "--data-dir", data]).output
    header = next(line for line in shown.splitlines() if "known" in line)
    row = next(line for line in shown.splitlines() if "Loopback News" in line)
    cells = [c.strip() for c in header.split("┃")], [c.strip() for c in row.split("│")]
    assert cells[1][cells[0].index("known")] == "3"
