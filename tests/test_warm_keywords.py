"""A new process's keyword cache warmed with the terms earlier processes were asked
(``index.warm_keywords``), as PostgreSQL's autoprewarm warms its buffers."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from assistant.settings import Settings, get_settings
from index import warm_keywords
from index.config import IndexConfig
from index.sqlite_catalog import SqliteCatalog
from index.store import Store
from tests.test_keywords import article, prepared

QUERIES = ["w0 w3 w17", "w5 w9 w120", "story w40"]


def catalog(folder: Path) -> SqliteCatalog:
    return SqliteCatalog(IndexConfig(data_dir=folder))


def answers(c: SqliteCatalog) -> list[list[tuple[str, float]]]:
    return [getattr(c.keywords, level).search(q, 10) for q in QUERIES
            for level in ("chunks", "articles")]


def test_a_new_process_starts_with_the_terms_the_last_one_was_asked(tmp_path: Path) -> None:
    first = catalog(tmp_path)
    first.replace([prepared(article(i)) for i in range(20)])
    asked = answers(first)
    written = warm_keywords.remember(first.keywords, tmp_path)
    lines = (tmp_path / warm_keywords.FILE).read_text().splitlines()
    assert written == len(lines) == len(first.keywords.asked()) > 0
    assert lines[0].split("\t")[1] in {"stori", "w40"}  # a term of the last question

    second = catalog(tmp_path)  # another process: its own cache, empty
    assert second.keywords.asked() == []
    assert warm_keywords.warm(second.keywords, tmp_path) == written
    assert set(second.keywords.asked()) == set(first.keywords.asked())
    assert answers(second) == asked


def test_warming_stops_at_its_budget_and_skips_terms_gone_since(tmp_path: Path) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i)) for i in range(10)])
    terms = [(0, "nosuchterm"), (0, "w0"), (1, "w3"), (9, "w5")]
    assert c.keywords.prefetch(terms, budget=1) == 1  # w0, after which the cache is over 1 byte
    assert c.keywords.asked() == [(0, "w0")]
    assert c.keywords.prefetch(terms) == 2  # w0 and w3; neither the missing term nor level 9


def test_a_long_running_store_warms_on_a_thread_then_writes_down_what_it_holds(
    sample_index: Settings, tmp_path: Path
) -> None:
    shutil.copytree(sample_index.index.data_dir, tmp_path / "data")
    settings = get_settings(data_dir=tmp_path / "data")
    earlier = Store(settings)
    earlier.keyword_index().articles.search("Suez Canal container ship", 5)
    warm_keywords.remember(earlier.keyword_index(), settings.index.data_dir)

    store = Store(settings)
    stop = warm_keywords.keep_warm(store, every=0.05)
    try:
        index = store.keyword_index()
        deadline = time.monotonic() + 20
        while set(index.asked()) != set(earlier.keyword_index().asked()):
            assert time.monotonic() < deadline, "the cache was not warmed"
            time.sleep(0.02)
        index.chunks.search("referendum", 5)
        path = settings.index.data_dir / warm_keywords.FILE
        while "referendum" not in path.read_text():
            assert time.monotonic() < deadline, "what it holds was not written down"
            time.sleep(0.02)
    finally:
        stop.set()
