"""`newsdesk optimize`: the index laid out for reading, with the same content and answers.

An archive written batch by batch has each keyword term's postings spread among the pages of
the articles' text, so a search on a cold disk reads them a page at a time from all over the
file.  Optimizing rewrites the catalog table by table (SQLite's VACUUM).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from itertools import pairwise
from pathlib import Path

import pytest

from assistant.retrieve import Filters, get_retriever
from assistant.settings import Settings, get_settings
from index.config import IndexConfig
from index.errors import StoreError
from index.sqlite_catalog import SqliteCatalog
from index.store import Store
from tests.test_cli import run
from tests.test_keywords import article, prepared

QUESTIONS = ["When did Assad visit Moscow?", "container ship Suez Canal aground"]


def runs_of_pages(db: sqlite3.Connection, table: str) -> int:
    """How many runs of consecutive page numbers the table's pages (overflow pages included)
    make in the file."""
    pages = [r[0] for r in db.execute(
        "SELECT pageno FROM dbstat WHERE name=? ORDER BY pageno", (table,))]
    return 1 + sum(b != a + 1 for a, b in pairwise(pages))


def built_batch_by_batch(folder: Path) -> SqliteCatalog:
    """A catalog written in 30 small batches, as a feed fills one."""
    catalog = SqliteCatalog(IndexConfig(data_dir=folder))
    for batch in range(30):
        catalog.replace([prepared(article(4 * batch + i)) for i in range(4)])
    return catalog


def test_optimizing_lays_the_keyword_postings_side_by_side(tmp_path: Path) -> None:
    catalog = built_batch_by_batch(tmp_path / "data")
    reader = SqliteCatalog(IndexConfig(data_dir=tmp_path / "data"))  # as another process

    def answers(c: SqliteCatalog) -> list[list[tuple[str, float]]]:
        return [c.keywords.chunks.search("w0 w3 w17", 10),
                c.keywords.articles.search("w5 w9 w120", 10)]

    before, scattered = answers(reader), runs_of_pages(catalog.db, "kw_postings")
    catalog.optimize()
    assert scattered > 10
    assert runs_of_pages(catalog.db, "kw_postings") <= 2
    assert answers(catalog) == answers(reader) == before  # the reader's cache is still good


def test_without_room_for_two_copies_it_says_how_much_it_needs_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = built_batch_by_batch(tmp_path / "data")
    size = (tmp_path / "data" / "catalog.sqlite3").stat().st_size
    layout = runs_of_pages(catalog.db, "kw_postings")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: real(path)._replace(free=size))  # room for one copy
    with pytest.raises(StoreError) as raised:
        catalog.optimize()
    assert "needs" in str(raised.value) and "GB free" in str(raised.value)
    assert "free some disk space" in raised.value.hint
    assert runs_of_pages(catalog.db, "kw_postings") == layout


@pytest.fixture
def own_index(sample_index: Settings, tmp_path: Path) -> Settings:
    """A copy of the sample index of this test's own."""
    shutil.copytree(sample_index.index.data_dir, tmp_path / "data")
    return get_settings(data_dir=tmp_path / "data")


def test_the_store_optimized_answers_every_question_as_before(
    own_index: Settings, embedder: object
) -> None:
    store = Store(own_index)
    hybrid = get_retriever("hybrid", settings=own_index, store=store, embedder=embedder)  # type: ignore[arg-type]

    def answers() -> list[list[str]]:
        return [[h.chunk_id for h in hybrid.retrieve(q, Filters(), 5).hits] for q in QUESTIONS]

    before, stats = answers(), store.stats()
    report = store.optimize()
    assert answers() == before and store.stats() == stats
    assert report["scan_table"] == "up to date"
    assert report["catalog"] == str(own_index.index.catalog_path)
    assert report["catalog_bytes_after"] <= report["catalog_bytes_before"]


def test_newsdesk_optimize_says_what_it_did(own_index: Settings) -> None:
    code, output = run("optimize", "--data-dir", str(own_index.index.data_dir))
    assert code == 0
    assert "optimized in" in output and "scan table up to date" in output
    assert re.search(r"\(\d+\.\d MB -> \d+\.\d MB\)", output), output
