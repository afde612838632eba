"""A process's first searches: scored from the scan table while Chroma's graph is not loaded.

Embedded Chroma reads its whole HNSW graph into a process on that process's first query
(seconds per hundred thousand vectors), and again after another process commits.  Until it
has, dense search scores the scan table exactly, which gives the same chunks; a process that
keeps searching loads the graph on another thread and then uses it.  A one-shot question
never loads Chroma at all (``tests/test_startup.py``).  Real Chroma and the real model; the stores here are made to choose
as in an archive too large to scan once the graph is loaded (``scan_rows`` 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from assistant.fusion import article_of
from assistant.settings import Settings, get_settings
from index import Article, ingest, ingest_articles
from index.dense import WARM_AFTER
from index.embeddings import Embedder
from index.store import Store
from tests.conftest import SAMPLES

QUESTION = "When did Assad visit Moscow?"


def fresh_store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, list[str]]:
    """A store as a new process opens it, choosing as in a large archive, with a record of
    each search's path: "scan" or "chroma"."""
    store = Store(get_settings(data_dir=settings.index.data_dir))
    monkeypatch.setattr(store.dense, "scan_rows", 0)
    calls: list[str] = []

    def recorded(path: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(path)
            return call(*args, **kwargs)
        return run

    assert store.scan is not None
    monkeypatch.setattr(store.scan, "search", recorded("scan", store.scan.search))
    monkeypatch.setattr(store.vectors, "query", recorded("chroma", store.vectors.query))
    return store, calls


def chroma_answer(settings: Settings, vector: list[float], n: int) -> list[str]:
    """The chunks Chroma itself gives, from a store of its own."""
    return [c for c, _ in Store(get_settings(data_dir=settings.index.data_dir)).vectors.query(
        vector, n)]


def test_the_first_search_is_scored_from_the_scan_table_without_loading_chroma(
    sample_index: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, calls = fresh_store(sample_index, monkeypatch)
    vector = embedder.embed_query(QUESTION)
    found = store.search_vectors(vector, 8)
    assert calls == ["scan"]
    assert not store.vectors.is_warm and store.dense.warming() is None
    assert [c for c, _ in found] == chroma_answer(sample_index, vector, 8)


def test_a_process_that_keeps_searching_loads_chroma_on_another_thread_then_uses_it(
    sample_index: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, calls = fresh_store(sample_index, monkeypatch)
    vector = embedder.embed_query(QUESTION)
    answers = [store.search_vectors(vector, 8) for _ in range(WARM_AFTER + 1)]
    assert calls == ["scan"] * (WARM_AFTER + 1)
    warming = store.dense.warming()
    assert warming is not None, "the search after the first cold ones starts loading Chroma"
    warming.join(timeout=120)
    assert store.vectors.is_warm
    calls.clear()
    answers.append(store.search_vectors(vector, 8))
    assert calls == ["chroma"]
    assert all([c for c, _ in a] == [c for c, _ in answers[0]] for a in answers)


def test_after_another_process_commits_searches_scan_again_until_chroma_is_reloaded(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    store, calls = fresh_store(settings, monkeypatch)
    store.vectors.warm()
    vector = embedder.embed_query("Who went on strike at the port?")
    store.search_vectors(vector, 3)
    assert calls == ["chroma"]

    strike = Article(id="strike", title="Port strike", text="Dock workers went on strike at "
                     "the port on Monday, halting the ferries.")
    ingest_articles([strike], config=settings, embedder=embedder)  # another store commits
    calls.clear()
    found = [store.search_vectors(vector, 3) for _ in range(WARM_AFTER + 1)]
    assert calls == ["scan"] * (WARM_AFTER + 1), "the old graph is dropped, not used"
    assert all(article_of(f[0][0]) == "strike" for f in found)
    warming = store.dense.warming()
    assert warming is not None
    warming.join(timeout=120)
    calls.clear()
    assert article_of(store.search_vectors(vector, 3)[0][0]) == "strike"
    assert calls == ["chroma"], "the reloaded graph holds the new batch"


def test_without_the_scan_table_every_search_goes_to_chroma(
    sample_index: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, calls = fresh_store(sample_index, monkeypatch)
    monkeypatch.setattr(store.dense, "scan_while_cold", False)
    store.search_vectors(embedder.embed_query(QUESTION), 8)
    assert calls == ["chroma"] and store.vectors.is_warm
