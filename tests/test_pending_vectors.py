"""Chroma catches up: a process whose Chroma graph is not loaded leaves a batch's vectors pending.

Embedded Chroma loads its whole graph before a process's first write (seconds per hundred
thousand vectors), so a one-shot ingest into a large archive commits its vectors to the scan
table only, as rows Chroma does not hold yet; dense search scores them beside whatever Chroma
finds; the first write that finds the graph loaded, or too many pending, gives Chroma every
pending row first, as does a long-running process once it has loaded the graph.  Real Chroma
and the real model throughout; each test lowers the archive size from which writes defer
(``Store.defer_from``) to the sample's.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from assistant.settings import Settings, get_settings
from index import Article, ingest, ingest_articles
from index import store as store_module
from index.embeddings import Embedder
from index.errors import StoreError
from index.keywords import KeywordFilter
from index.store import Store
from tests.conftest import SAMPLES

NEWS = [
    Article(id="geneva-talks", title="Talks resume in Geneva",
            text="Negotiators for both sides resumed talks in Geneva on Tuesday. The envoy said "
                 "a ceasefire could be agreed before the winter.",
            outlet="Elsewhere", published=date(2024, 3, 1)),
    Article(id="harbour-strike", title="Dock workers strike",
            text="Dock workers at the northern harbour walked out over pay on Monday. Ships "
                 "queued outside the port for a second day.",
            outlet="Harbour Gazette", published=date(2024, 3, 2)),
]

QUESTION = "Where did the ceasefire talks resume?"


def fresh_process(settings: Settings, *, defer_from: int = 0) -> Store:
    """A store as a new process opens it: its own connections, Chroma's graph not loaded."""
    store = Store(get_settings(data_dir=settings.index.data_dir))
    store.defer_from = defer_from
    return store


def in_chroma(store: Store) -> set[str]:
    return set(store.vectors.collection.get(include=[])["ids"])


def caught_up(store: Store) -> bool:
    """Nothing pending, and Chroma holds exactly the vectors the catalog lists."""
    return (store.scan is not None and store.scan.pending is None
            and in_chroma(store) == store.catalog.dense_chunk_ids())


@pytest.fixture
def archive(settings: Settings, embedder: Embedder) -> Settings:
    ingest([SAMPLES], config=settings, embedder=embedder)
    return settings


def test_a_write_without_the_graph_leaves_chroma_alone_and_search_still_finds_it(
    archive: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fresh_process(archive)
    before = in_chroma(store)
    ingest_articles(NEWS, store=store, embedder=embedder)

    assert in_chroma(store) == before, "Chroma was not written"
    assert store.scan is not None and store.scan.pending is not None
    assert store.scan.rows - store.scan.pending == len(store.catalog.dense_chunk_ids() - before)
    vector = embedder.embed_query(QUESTION)
    store.vectors.warm()  # the searches below go to Chroma's paths, not the scan's
    store.dense.catch_up_behind = False  # as when another process is writing meanwhile
    monkeypatch.setattr(store.dense, "as_if_vectors", 10**9)  # no filter scanned for its size
    asked = []
    query = store.vectors.query
    monkeypatch.setattr(store.vectors, "query", lambda *a, **k: asked.append(1) or query(*a, **k))
    filters = [None, KeywordFilter(outlets=("Elsewhere",)),
               KeywordFilter(first_day=20240101), KeywordFilter(last_day=20240301)]
    found = {}
    for within in filters:
        for share in (0.0, 2.0):  # Chroma (nearest first when filtered), the scan table
            monkeypatch.setattr(store.dense, "postfilter_share", share)
            asked.clear()
            hits = store.search_vectors(vector, 5, within=within)
            assert bool(asked) == (share == 0.0), "Chroma asked, the pending rows beside"
            assert hits[0][0].startswith("geneva-talks#"), (within, share)
            assert len({c for c, _ in hits}) == len(hits), "no chunk twice"
            found[str(within), share] = hits

    waiting = store.scan.rows - store.scan.pending
    assert f"the last {waiting} not yet in Chroma" in store.stats()["scan_table"]
    assert store.catch_up() == len(store.catalog.dense_chunk_ids() - before)
    assert store.scan.pending is None
    assert "not yet in Chroma" not in store.stats()["scan_table"]
    assert in_chroma(store) == store.catalog.dense_chunk_ids()
    for (within_name, share), hits in found.items():
        within = next(f for f in filters if str(f) == within_name)
        monkeypatch.setattr(store.dense, "postfilter_share", share)
        again = store.search_vectors(vector, 5, within=within)
        assert [c for c, _ in again] == [c for c, _ in hits], "the same once Chroma has them"


def test_chroma_is_given_exactly_what_a_direct_write_gives_it(
    archive: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    deferred = fresh_process(archive)
    ingest_articles(NEWS, store=deferred, embedder=embedder)
    deferred.catch_up()
    direct_folder = tmp_path / "direct"
    ingest([SAMPLES], config=get_settings(data_dir=direct_folder), embedder=embedder)
    direct = fresh_process(get_settings(data_dir=direct_folder), defer_from=10**9)
    ingest_articles(NEWS, store=direct, embedder=embedder)

    def stored(store: Store) -> dict[str, tuple[dict[str, object], list[float]]]:
        got = store.vectors.collection.get(include=["metadatas", "embeddings"])
        return {i: (m, list(e))
                for i, m, e in zip(got["ids"], got["metadatas"], got["embeddings"], strict=True)}

    given, written = stored(deferred), stored(direct)
    assert given.keys() == written.keys()
    for chunk_id, (meta, vector) in written.items():
        assert given[chunk_id][0] == meta
        assert given[chunk_id][1] == pytest.approx(vector, abs=1e-6), "the unit vector"


def test_a_process_that_has_loaded_the_graph_writes_to_chroma_and_catches_it_up_first(
    archive: Settings, embedder: Embedder
) -> None:
    store = fresh_process(archive)
    ingest_articles(NEWS[:1], store=store, embedder=embedder)
    assert store.scan is not None and store.scan.pending is not None
    store.vectors.warm()
    ingest_articles(NEWS[1:], store=store, embedder=embedder)
    assert caught_up(store)


def test_a_write_that_would_leave_too_many_pending_catches_chroma_up_first(
    archive: Settings, embedder: Embedder
) -> None:
    store = fresh_process(archive)
    ingest_articles(NEWS[:1], store=store, embedder=embedder)
    assert store.scan is not None
    waiting = store.scan.rows - (store.scan.pending or 0)
    store.pending_max = waiting  # the next article's vectors would pass it
    ingest_articles(NEWS[1:], store=store, embedder=embedder)
    assert caught_up(store)


def test_a_small_archive_writes_to_chroma_at_once(archive: Settings, embedder: Embedder) -> None:
    store = fresh_process(archive, defer_from=10**9)
    ingest_articles(NEWS, store=store, embedder=embedder)
    assert caught_up(store)


def test_a_failed_catch_up_leaves_the_rows_pending_and_the_next_one_completes(
    archive: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fresh_process(archive)
    ingest_articles(NEWS, store=store, embedder=embedder)
    pending = store.scan.pending if store.scan else None
    assert pending is not None

    def refused(*args: object, **kwargs: object) -> None:
        raise StoreError("writing vectors to Chroma failed: disk full")

    with monkeypatch.context() as patch:
        patch.setattr(store.vectors, "upsert", refused)
        with pytest.raises(StoreError):
            store.catch_up()
    assert store.scan is not None and store.scan.pending == pending
    assert store.search_vectors(embedder.embed_query(QUESTION), 1)[0][0].startswith("geneva-talks#")
    store.catch_up()
    assert caught_up(store)


def test_another_process_finds_the_pending_rows_and_then_chromas_copy(
    archive: Settings, embedder: Embedder
) -> None:
    reader = fresh_process(archive)
    reader.vectors.warm()  # a long-running process searching Chroma
    reader.dense.as_if_vectors = 10**9  # as in an archive too large to scan unfiltered
    vector = embedder.embed_query(QUESTION)
    assert not reader.search_vectors(vector, 1)[0][0].startswith("geneva-talks#")
    writer = fresh_process(archive)
    ingest_articles(NEWS, store=writer, embedder=embedder)
    reader.refresh_vectors()  # it has seen the commit, and loaded the graph again
    reader.vectors.warm()
    assert reader.search_vectors(vector, 1)[0][0].startswith("geneva-talks#")
    writer.catch_up()
    reader.vectors.warm()
    assert reader.scan is not None and reader.scan.pending is None
    assert reader.search_vectors(vector, 1)[0][0].startswith("geneva-talks#")


def test_a_process_keeps_its_loaded_graph_and_gives_chroma_what_another_left_pending(
    archive: Settings, embedder: Embedder
) -> None:
    reader = fresh_process(archive)  # `serve`, with a `watch` beside it
    reader.vectors.warm()
    reader.dense.as_if_vectors = 10**9  # as in an archive too large to scan unfiltered
    vector = embedder.embed_query(QUESTION)
    reader.search_vectors(vector, 1)
    loaded = reader.vectors.collection
    writer = fresh_process(archive)
    ingest_articles(NEWS[:1], store=writer, embedder=embedder)  # left pending
    assert writer.scan is not None and writer.scan.pending is not None
    assert reader.search_vectors(vector, 1)[0][0].startswith("geneva-talks#")
    behind = reader.dense.warming()
    assert behind is not None, "it catches Chroma up on a thread of its own"
    behind.join()
    assert caught_up(reader)
    assert reader.vectors.is_warm and reader.vectors.collection is loaded, "graph kept"
    assert reader.search_vectors(vector, 1)[0][0].startswith("geneva-talks#")


def test_a_process_searching_during_its_own_catch_up_keeps_its_graph(
    archive: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = fresh_process(archive)
    reader.vectors.warm()
    reader.dense.as_if_vectors = 10**9
    reader.dense.catch_up_behind = False
    vector = embedder.embed_query(QUESTION)
    reader.search_vectors(vector, 1)
    ingest_articles(NEWS, store=fresh_process(archive), embedder=embedder)  # left pending
    loaded, halfway, resume = reader.vectors.collection, threading.Event(), threading.Event()
    give = store_module.give_pending

    def paused(*args: Any) -> int:  # Chroma has been given some of the rows, not all
        given = give(*args)
        halfway.set()
        assert resume.wait(30)
        return given

    monkeypatch.setattr(store_module, "give_pending", paused)
    with ThreadPoolExecutor(1) as behind:
        catching_up = behind.submit(reader.catch_up)
        assert halfway.wait(30)
        assert reader.search_vectors(vector, 1)[0][0].startswith("geneva-talks#")
        assert reader.vectors.collection is loaded, "its own writes are no other process's"
        resume.set()
        assert catching_up.result() > 0
    assert reader.vectors.collection is loaded and caught_up(reader)


def test_another_processs_write_to_chroma_has_the_graph_read_again(
    archive: Settings, embedder: Embedder
) -> None:
    reader = fresh_process(archive)
    reader.vectors.warm()
    reader.dense.as_if_vectors = 10**9
    question = embedder.embed_query("Why did the dock workers strike?")
    assert not reader.search_vectors(question, 1)[0][0].startswith("harbour-strike#")
    loaded = reader.vectors.collection
    ingest_articles(NEWS[1:], store=fresh_process(archive, defer_from=10**9), embedder=embedder)
    assert reader.search_vectors(question, 1)[0][0].startswith("harbour-strike#")
    assert reader.vectors.collection is not loaded, "a write straight to Chroma is read again"


def test_a_process_without_the_graph_leaves_an_edited_articles_old_vectors_journaled(
    archive: Settings, embedder: Embedder
) -> None:
    ingest_articles(NEWS, store=fresh_process(archive, defer_from=10**9), embedder=embedder)
    old = {c for c in in_chroma(fresh_process(archive)) if c.startswith("geneva-talks#")}
    watcher = fresh_process(archive)  # a `watch` into a large archive
    written = watcher.vectors.written()
    edited = NEWS[0].model_copy(update={
        "text": "Negotiators resumed talks in Lausanne on Wednesday after a week's pause. The "
                "envoy said a ceasefire could be agreed before the spring."})
    ingest_articles([edited], store=watcher, embedder=embedder)
    watcher.remove(["harbour-strike"])
    assert watcher.vectors.written() == written, "Chroma was not written"
    assert not watcher.vectors.is_open, "nor its graph loaded"
    left = set(watcher.catalog.pending_vectors())
    assert old <= left and any(c.startswith("harbour-strike#") for c in left)
    assert f"{len(left)} old vectors left in Chroma" in watcher.stats()["scan_table"]
    reader = fresh_process(archive)
    reader.vectors.warm()
    reader.dense.catch_up_behind = False
    reader.dense.as_if_vectors = 10**9
    for question in (QUESTION, "Why did the dock workers strike?"):
        hits = reader.search_vectors(embedder.embed_query(question), 10)
        assert hits and not {c for c, _ in hits} & left, "journaled vectors are never found"
    reader.catch_up()
    assert caught_up(reader) and not reader.catalog.pending_vectors()
    assert "old vectors" not in reader.stats()["scan_table"]


def test_a_searching_process_catches_chroma_up_once_it_has_loaded_the_graph(
    archive: Settings, embedder: Embedder
) -> None:
    ingest_articles(NEWS, store=fresh_process(archive), embedder=embedder)
    server = fresh_process(archive)  # `serve`: scans while the graph loads on a thread
    server.dense.as_if_vectors = 10**9  # as in an archive Chroma's paths would search
    vector = embedder.embed_query(QUESTION)
    for _ in range(2):
        assert server.search_vectors(vector, 1)[0][0].startswith("geneva-talks#")
    warming = server.dense.warming()
    assert warming is not None
    warming.join()
    assert caught_up(server)


def test_a_pending_article_removed_is_never_given_to_chroma(
    archive: Settings, embedder: Embedder
) -> None:
    store = fresh_process(archive)
    before = in_chroma(store)
    ingest_articles(NEWS, store=store, embedder=embedder)
    store.remove(["geneva-talks"])
    store.catch_up()
    assert in_chroma(store) == store.catalog.dense_chunk_ids()
    assert not any(c.startswith("geneva-talks#") for c in in_chroma(store))
    assert in_chroma(store) - before
