"""The scan table: every vector again, beside its outlet and day, for exact filtered search.

It is written with every batch, under the data folder's write lock, and read by any process
sharing the folder.  The catalog stays the source of truth: rows of writes that never
committed, and rows of chunks since replaced, take no place in an answer.  An index built
before the table existed is read into it from Chroma by its next write.  Real Chroma and the
real model for the store's part; the table's own rules on small vectors written here.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from assistant.settings import Settings, get_settings
from index import Article, ingest, ingest_articles, open_store, scan
from index.embeddings import Embedder
from index.errors import StoreError
from index.keywords import KeywordFilter
from index.scan import ScanTable
from index.store import Store
from index.vectors import where_clause
from tests.conftest import SAMPLES

QUESTION = "When did Assad visit Moscow?"


def unit(*values: float) -> list[float]:
    vector = np.asarray(values, dtype=np.float32)
    return list(vector / np.linalg.norm(vector))


def same(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    """The same chunks in the same order, with the same similarities within float rounding."""
    return [c for c, _ in found] == [c for c, _ in expected] and all(
        abs(a - b) < 1e-5 for (_, a), (_, b) in zip(found, expected, strict=True))


@pytest.fixture
def table(tmp_path: Path) -> ScanTable:
    """Four rows: outlets A, A, B, undated A."""
    scan = ScanTable(tmp_path / "scan")
    scan.start_complete()
    scan.append(["a1", "a2", "b1", "a3"],
                [unit(1, 0, 0), unit(1, 1, 0), unit(1, 0.1, 0), unit(0, 0, 1)],
                ["A", "A", "B", "A"], [20240101, 20240105, 20240103, 0])
    return scan


def test_a_search_ranks_the_rows_the_filter_admits_by_cosine_similarity(table: ScanTable) -> None:
    query = unit(1, 0.02, 0)
    assert [c for c, _ in table.search(query, 10)] == ["a1", "b1", "a2", "a3"]
    assert [c for c, _ in table.search(query, 10, outlets=("A",))] == ["a1", "a2", "a3"]
    assert [c for c, _ in table.search(query, 2, outlets=("A", "B"))] == ["a1", "b1"]
    assert [c for c, _ in table.search(query, 10, last_day=20240104)] == ["a1", "b1"]  # undated out
    assert [c for c, _ in table.search(query, 10, first_day=20240104)] == ["a2"]
    assert table.search(query, 10, outlets=("nowhere",)) == []
    assert same(table.search(query, 10, outlets=()), table.search(query, 10))  # none named
    (_, score), = table.search(query, 1, outlets=("A",), last_day=20240101)
    assert score == pytest.approx(float(np.dot(query, unit(1, 0, 0))), abs=1e-6)


def test_chunks_found_elsewhere_are_checked_against_their_rows_outlets_and_days(
    table: ScanTable,
) -> None:
    found = ["b1", "a1", "a3", "never-written", "a2"]
    assert table.admitted(found) == {"a1", "a2", "a3", "b1"}
    assert table.admitted(found, outlets=("A",)) == {"a1", "a2", "a3"}
    assert table.admitted(found, outlets=("A",), last_day=20240104) == {"a1"}  # undated out
    assert table.admitted(found, first_day=20240103) == {"a2", "b1"}
    assert table.admitted(found, outlets=("nowhere",)) == set()
    assert table.admitted([]) == set()
    table.delete(["a1"])
    table.append(["a2"], [unit(0, 1, 0)], ["B"], [20240201])  # written again: only its new row
    assert table.admitted(found, outlets=("A",)) == {"a3"}
    assert table.admitted(found, outlets=("B",)) == {"a2", "b1"}


def test_rows_are_scored_a_block_at_a_time(
    table: ScanTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = unit(1, 0.02, 0)
    whole = table.search(query, 10)
    monkeypatch.setattr(scan, "BLOCK", 3)  # four rows: two blocks
    assert same(table.search(query, 10), whole)
    assert same(table.search(query, 2, outlets=("A", "B")), whole[:2])


def test_deleted_rows_are_never_returned_and_unknown_ids_are_ignored(table: ScanTable) -> None:
    table.delete(["a1", "never-written"])
    assert [c for c, _ in table.search(unit(1, 0, 0), 10)] == ["b1", "a2", "a3"]


def test_a_chunk_written_again_keeps_only_its_newest_row(table: ScanTable) -> None:
    table.append(["a1"], [unit(0, 1, 0)], ["B"], [20240201])  # a batch retried after a kill
    found = table.search(unit(0, 1, 0), 10)
    assert [c for c, _ in found].count("a1") == 1
    assert found[0] == ("a1", pytest.approx(1.0))
    assert [c for c, _ in table.search(unit(0, 1, 0), 10, outlets=("A",))] == ["a2", "a3"]


def test_an_append_a_kill_interrupted_is_never_read_and_the_next_append_cuts_it_off(
    table: ScanTable, tmp_path: Path
) -> None:
    for name, size in (("vectors.f32", 3 * 4), ("facets.i32", 2 * 4), ("alive.u8", 1)):
        with open(tmp_path / "scan" / name, "ab") as f:  # half a row, never committed
            f.write(b"\x01" * size)
    reader = ScanTable(tmp_path / "scan")
    assert reader.rows == 4
    assert len(reader.search(unit(1, 0, 0), 10)) == 4
    table.append(["b2"], [unit(0, 1, 0)], ["B"], [20240110])
    assert (tmp_path / "scan" / "vectors.f32").stat().st_size == 5 * 3 * 4
    assert (tmp_path / "scan" / "alive.u8").stat().st_size == 5
    assert reader.search(unit(0, 1, 0), 1) == [("b2", pytest.approx(1.0))]


def test_a_failed_write_of_the_table_says_where_and_what_to_do(table: ScanTable,
                                                                tmp_path: Path) -> None:
    (tmp_path / "scan" / "vectors.f32").unlink()
    (tmp_path / "scan" / "vectors.f32").mkdir()  # as unwritable as a full disk
    with pytest.raises(StoreError) as caught, table.writing():
        table.append(["b2"], [unit(0, 1, 0)], ["B"], [20240110])
    assert str(tmp_path / "scan") in str(caught.value)
    assert "free disk space" in caught.value.hint
    assert table.rows == 4, "nothing committed"


def test_a_new_index_keeps_its_scan_table_complete_through_every_write(
    settings: Settings, embedder: Embedder
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = open_store(settings)
    assert store.scan_ready()
    assert store.scan is not None
    live = sum(int(b) for b in (settings.index.data_dir / "scan" / "alive.u8").read_bytes())
    assert live == len(store.catalog.dense_chunk_ids())
    old = store.get_article("sample-assad-moscow-visit")
    old_chunks = [c for c in store.catalog.dense_chunk_ids() if c.startswith(old.id + "#")]
    ingest_articles([old.model_copy(update={"text": old.text + " Updated today."})],
                    config=settings, embedder=embedder)
    store.remove(["sample-lavrov-free-syrian-army"])
    found = store.scan.search(embedder.embed_query(QUESTION), 1000)
    assert {c for c, _ in found} == store.catalog.dense_chunk_ids()
    assert not set(old_chunks) & {c for c, _ in found}


def test_an_index_built_before_the_scan_table_is_read_into_it_by_its_next_write(
    settings: Settings, embedder: Embedder
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    data_dir = settings.index.data_dir
    shutil.rmtree(data_dir / "scan")  # as an index written by an earlier newsdesk
    store = Store(get_settings(data_dir=data_dir))
    assert not store.scan_ready()
    assert store.stats()["scan_table"].startswith("not yet built: the next ingest")
    outlet = store.list_articles()[0].outlet or ""
    within = KeywordFilter(outlets=(outlet,))
    vector = embedder.embed_query(QUESTION)
    before = store.search_vectors(vector, 5, within=within)  # read from Chroma meanwhile
    ingest_articles([Article(id="later", title="Later", text="Talks resumed in Geneva today.",
                             outlet="Elsewhere", published=date(2024, 3, 1))],
                    store=store, embedder=embedder)
    assert store.scan_ready()
    assert store.scan is not None
    assert store.scan.rows == len(store.catalog.dense_chunk_ids())
    assert store.stats()["scan_table"] == f"complete, {store.scan.rows} rows (0 dead)"
    assert same(store.search_vectors(vector, 5, within=within), before)
    assert same(before, store.vectors.query(vector, 5, where=where_clause(within)))


def test_rows_of_a_write_that_never_committed_take_no_place_and_are_dropped(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = open_store(settings)
    assert store.scan is not None
    monkeypatch.setattr(store.dense, "postfilter_share", 2.0)  # every filter to the scan table
    outlet = store.list_articles()[0].outlet or ""
    vector = embedder.embed_query(QUESTION)
    expected = store.search_vectors(vector, 3, within=KeywordFilter(outlets=(outlet,)))
    store.scan.append(["ghost#0#0"], [vector], [outlet], [20151020])  # nearest of all, uncommitted
    assert store.scan.search(vector, 1, outlets=(outlet,))[0][0] == "ghost#0#0"
    assert same(store.search_vectors(vector, 3, within=KeywordFilter(outlets=(outlet,))), expected)
    assert store.scan.search(vector, 1, outlets=(outlet,))[0][0] != "ghost#0#0"  # marked dead


def test_another_process_sees_the_rows_committed_after_it_opened(
    settings: Settings, embedder: Embedder
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    reader = Store(get_settings(data_dir=settings.index.data_dir))  # its own connections
    within = KeywordFilter(outlets=("Elsewhere",))
    vector = embedder.embed_query("Geneva talks resumed")
    assert reader.search_vectors(vector, 3, within=within) == []
    ingest_articles([Article(id="later", title="Later", text="Talks resumed in Geneva today.",
                             outlet="Elsewhere", published=date(2024, 3, 1))],
                    config=settings, embedder=embedder)
    assert [c.split("#")[0] for c, _ in reader.search_vectors(vector, 3, within=within)] == \
        ["later"]
