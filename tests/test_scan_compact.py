"""The scan table drops its dead rows: ``index.scan_compact.compact``.

Rows of chunks replaced or removed stay in the table, marked dead, until they are a quarter of
it (and at least ``MIN_DEAD``); the next write or removal then rewrites the table with its live
rows into files of a new generation, switched to by one SQLite transaction.  Searches answer
the same before and after, in the writing process and in any other that had the old files
mapped, and a kill at any step leaves one whole table in use, old or new, whose leftovers the
next compaction deletes.  The table's own rules on small vectors written here; the store's
part with real Chroma and the real model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.settings import Settings, get_settings
from index import Article, ingest, ingest_articles, open_store, scan_compact
from index.embeddings import Embedder
from index.errors import StoreError
from index.keywords import KeywordFilter
from index.scan import ScanTable
from index.scan_compact import compact, due
from index.store import Store
from index.vectors import where_clause
from tests.conftest import REPO, SAMPLES

DIM = 8
QUERIES = np.random.default_rng(3).standard_normal((4, DIM)).astype(np.float32)
FILTERS: list[dict[str, Any]] = [{}, {"outlets": ("A",)}, {"outlets": ("B", "C")},
                                 {"first_day": 20240110}, {"last_day": 20240105}]


def grown(folder: Path, rows: int = 40, dead: int = 15) -> ScanTable:
    """A complete table of ``rows`` random rows (``c0``, ``c1``, ...), of outlets A, B, C in
    turn and days in January 2024, with ``dead`` of them marked dead: rows 0, 2, 4, ..."""
    table = ScanTable(folder)
    table.start_complete()
    rng = np.random.default_rng(rows)
    table.append([f"c{i}" for i in range(rows)], rng.standard_normal((rows, DIM)).tolist(),
                 ["ABC"[i % 3] for i in range(rows)], [20240101 + i % 20 for i in range(rows)])
    table.delete([f"c{i}" for i in range(0, 2 * dead, 2)])
    return table


def answers(table: ScanTable) -> list[list[tuple[str, float]]]:
    """Every query's answer under every filter."""
    return [table.search(q.tolist(), 6, **f) for q in QUERIES for f in FILTERS]


def same(found: list[list[tuple[str, float]]], expected: list[list[tuple[str, float]]]) -> bool:
    """The same chunks in the same order, with the same similarities within float rounding."""
    return len(found) == len(expected) and all(
        [c for c, _ in f] == [c for c, _ in e]
        and all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(f, e, strict=True))
        for f, e in zip(found, expected, strict=True))


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith("rows.sqlite3")}


GENERATION_0 = {"vectors.f32", "facets.i32", "alive.u8"}
GENERATION_1 = {"vectors.1.f32", "facets.1.i32", "alive.1.u8"}


@pytest.mark.parametrize(("dead", "rows", "expected"), [
    (20_000, 80_000, True),     # a quarter, and the minimum
    (19_999, 79_996, False),    # a quarter, under the minimum
    (20_000, 80_001, False),    # the minimum, under a quarter
    (500_000, 1_000_000, True),
    (0, 0, False),
])
def test_a_rewrite_is_due_at_a_quarter_of_the_rows_dead_and_at_least_the_minimum(
    dead: int, rows: int, expected: bool
) -> None:
    assert due(dead, rows) is expected


def test_a_compaction_keeps_the_live_rows_in_order_and_every_search_answers_the_same(
    tmp_path: Path
) -> None:
    table = grown(tmp_path / "scan")
    before = answers(table)
    assert (table.rows, table.dead) == (40, 15)
    assert compact(table) == 0, "15 dead rows are far under the minimum"
    assert compact(table, always=True) == 15
    assert table.state()["generation"] == 1
    assert (table.rows, table.dead) == (25, 0)
    assert files(tmp_path / "scan") == GENERATION_1, "the old files are deleted"
    assert (tmp_path / "scan" / "vectors.1.f32").stat().st_size == 25 * DIM * 4
    assert same(answers(table), before)
    assert compact(table, always=True) == 0, "nothing dead: nothing to do"

    table.append(["c1", "new"], [QUERIES[0].tolist(), QUERIES[1].tolist()], ["B", "B"],
                 [20240102, 20240103])  # one chunk replaced, one added, in the new files
    table.delete(["c3"])
    assert (table.rows, table.dead) == (27, 2)
    assert table.search(QUERIES[0].tolist(), 1) == [("c1", pytest.approx(1.0))]
    assert "c3" not in {c for c, _ in table.search(QUERIES[0].tolist(), 40)}
    assert compact(table, always=True) == 2
    assert files(tmp_path / "scan") == {"vectors.2.f32", "facets.2.i32", "alive.2.u8"}
    assert table.search(QUERIES[1].tolist(), 1, outlets=("B",)) == [("new", pytest.approx(1.0))]


def test_a_table_is_compacted_only_once_its_dead_rows_are_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_compact, "MIN_DEAD", 10)
    table = grown(tmp_path / "scan", rows=40, dead=9)
    assert compact(table) == 0, "9 dead rows: under the minimum"
    table.delete(["c27"])
    assert compact(table) == 10, "10 of 40: the minimum, and a quarter"
    table.append([f"n{i}" for i in range(30)], np.ones((30, DIM)).tolist(), ["A"] * 30,
                 [20240101] * 30)
    table.delete([f"n{i}" for i in range(12)])
    assert (table.rows, table.dead) == (60, 12)
    assert compact(table) == 0, "12 of 60: the minimum, but under a quarter"
    assert table.state()["generation"] == 1


def test_a_reader_that_mapped_the_table_before_a_compaction_answers_right_then_reads_the_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = grown(tmp_path / "scan")
    expected = answers(writer)
    reader = ScanTable(tmp_path / "scan")  # its own connection and maps, as another process's
    bystander = ScanTable(tmp_path / "scan")
    assert same(answers(reader), expected)
    assert same(answers(bystander), expected)

    ranked = reader._ranked
    compactions: list[int] = []

    def compacted_meanwhile(*args: Any, **kwargs: Any) -> Any:
        """Rank the old rows, then let the writer compact before their chunks are named."""
        found = ranked(*args, **kwargs)
        if not compactions:
            compactions.append(compact(writer, always=True))
        return found

    monkeypatch.setattr(reader, "_ranked", compacted_meanwhile)
    assert same(answers(reader), expected)
    assert compactions == [15]
    assert not (tmp_path / "scan" / "vectors.f32").exists()

    writer.append([f"n{i}" for i in range(15)], np.ones((15, DIM)).tolist(), ["C"] * 15,
                  [20240120] * 15)  # back to the 40 rows the bystander mapped
    for table in (reader, bystander):
        assert table.rows == 40
        assert [c for c, _ in table.search(np.ones(DIM).tolist(), 15, outlets=("C",))] == \
            [f"n{i}" for i in range(15)]


KILL = """
import os, signal, sys
from pathlib import Path
from index import scan_compact
from index.scan import ScanTable

step, after = sys.argv[2], int(sys.argv[3])
original, calls = getattr(scan_compact, step), []

def killed(*args, **kwargs):
    result = original(*args, **kwargs)
    calls.append(step)
    if len(calls) == after:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(scan_compact, step, killed)
scan_compact.compact(ScanTable(Path(sys.argv[1])), always=True)
"""


@pytest.mark.parametrize(("step", "after", "switched", "left"), [
    ("_write_file", 1, False, {"vectors.1.f32"}),  # the new vectors written
    ("_write_file", 3, False, GENERATION_1),       # every new file written
    ("_record", 1, False, GENERATION_1),           # rows renumbered, not yet committed
    ("_switch", 1, True, GENERATION_1),            # committed, the old files not yet deleted
])
def test_a_compaction_killed_at_any_step_leaves_one_whole_table_and_the_next_finishes_it(
    tmp_path: Path, step: str, after: int, switched: bool, left: set[str]
) -> None:
    expected = answers(grown(tmp_path / "scan"))
    killed = subprocess.run([sys.executable, "-c", KILL, str(tmp_path / "scan"), step,
                             str(after)], capture_output=True, text=True, check=False,
                            env=os.environ | {"PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    table = ScanTable(tmp_path / "scan")
    assert table.state()["generation"] == int(switched)
    assert table.rows == (25 if switched else 40)
    assert files(tmp_path / "scan") == GENERATION_0 | left
    assert same(answers(table), expected), "the table in use is whole, old or new"
    assert compact(table, always=True) == (0 if switched else 15)
    assert files(tmp_path / "scan") == GENERATION_1, "redone, or its old files deleted"
    assert (table.state()["generation"], table.rows, table.dead) == (1, 25, 0)
    assert same(answers(table), expected)


def test_a_compaction_that_cannot_write_its_files_says_so_and_leaves_the_table_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = grown(tmp_path / "scan")
    expected = answers(table)
    (tmp_path / "scan" / "facets.1.i32").mkdir()  # as unwritable as a full disk
    with pytest.raises(StoreError) as caught:
        compact(table, always=True)
    assert str(tmp_path / "scan") in str(caught.value)
    assert "free disk space" in (caught.value.hint or "")
    assert files(tmp_path / "scan") == GENERATION_0 | {"facets.1.i32"}, "the new vectors deleted"
    assert (table.state()["generation"], table.rows, table.dead) == (0, 40, 15)
    assert same(answers(table), expected)

    (tmp_path / "scan" / "facets.1.i32").rmdir()
    monkeypatch.setattr(scan_compact, "ROW_OVERHEAD", 2**50)  # more than any disk holds
    with pytest.raises(StoreError, match="MiB free on the disk"):
        compact(table, always=True)
    assert files(tmp_path / "scan") == GENERATION_0


def test_an_append_a_kill_interrupted_after_a_compaction_is_cut_off_by_the_next(
    tmp_path: Path
) -> None:
    table = grown(tmp_path / "scan")
    compact(table, always=True)
    for name, size in (("vectors.1.f32", 3 * 4), ("facets.1.i32", 4), ("alive.1.u8", 1)):
        with open(tmp_path / "scan" / name, "ab") as f:  # part of a row, never committed
            f.write(b"\x01" * size)
    assert len(ScanTable(tmp_path / "scan").search(QUERIES[0].tolist(), 100)) == 25
    table.append(["b2"], [QUERIES[2].tolist()], ["B"], [20240110])
    assert (tmp_path / "scan" / "vectors.1.f32").stat().st_size == 26 * DIM * 4
    assert (tmp_path / "scan" / "alive.1.u8").stat().st_size == 26
    assert table.search(QUERIES[2].tolist(), 1) == [("b2", pytest.approx(1.0))]


# -- in the store: real Chroma, the real model ----------------------------------------------

QUESTION = "When did Assad visit Moscow?"


def edited(store: Store, article_ids: list[str]) -> list[Article]:
    return [store.get_article(a).model_copy(update={"text": store.get_article(a).text +
                                                    " Updated today."}) for a in article_ids]


def dense_answers(store: Store, embedder: Embedder) -> list[list[tuple[str, float]]]:
    """Dense search's answers to a few questions and filters, all scored from the scan table."""
    return [store.search_vectors(embedder.embed_query(question), 5, within=within)
            for question in (QUESTION, "Who landed on the Moon?", "the port strike")
            for within in (None, KeywordFilter(outlets=("Northgate Post",)),
                           KeywordFilter(first_day=20190101, last_day=20221231))]


def chroma_answers(store: Store, embedder: Embedder) -> list[list[tuple[str, float]]]:
    """The same from Chroma itself."""
    return [store.vectors.query(embedder.embed_query(question), 5,
                                where=where_clause(within) if within else None)
            for question in (QUESTION, "Who landed on the Moon?", "the port strike")
            for within in (None, KeywordFilter(outlets=("Northgate Post",)),
                           KeywordFilter(first_day=20190101, last_day=20221231))]


def scanning(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setattr(store.dense, "postfilter_share", 2.0)  # every filter to the scan table
    return store


def test_replacing_and_removing_articles_compacts_the_table_and_searches_answer_the_same(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_compact, "MIN_DEAD", 12)
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = scanning(open_store(settings), monkeypatch)
    assert store.scan is not None
    reader = scanning(Store(get_settings(data_dir=settings.index.data_dir)), monkeypatch)
    assert same(dense_answers(reader, embedder), chroma_answers(store, embedder))  # mapped

    ids = [a.id for a in store.list_articles()]
    ingest_articles(edited(store, ids[:4]), store=store, embedder=embedder)
    assert store.stats()["scan_table"] == "complete, 40 rows (8 dead)", "8 of 40: not due"
    assert sorted(store.remove(ids[4:7])) == sorted(ids[4:7])
    assert store.scan.state()["generation"] == 1, "14 of 40 dead: compacted by the removal"
    assert store.stats()["scan_table"] == "complete, 26 rows (0 dead)"
    assert store.scan.rows == len(store.catalog.dense_chunk_ids())
    assert same(dense_answers(store, embedder), chroma_answers(store, embedder))
    assert same(dense_answers(reader, embedder), chroma_answers(store, embedder))

    ingest_articles([Article(id="strike", title="Port strike", outlet="Northgate Post",
                             published=date(2020, 6, 1), text="Dock workers went on strike "
                             "at the port on Monday, halting the ferries.")],
                    store=store, embedder=embedder)
    found = reader.search_vectors(embedder.embed_query("the port strike"), 1,
                                  within=KeywordFilter(outlets=("Northgate Post",)))
    assert found[0][0].startswith("strike#"), "the reader reads the compacted table on"


class Killed(Exception):
    """A kill, as far as the code under test can tell: nothing catches it."""


@pytest.mark.parametrize("step", ["_copy", "_record", "_sweep"])
def test_a_compaction_interrupted_after_a_removal_is_finished_by_the_next_write(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    monkeypatch.setattr(scan_compact, "MIN_DEAD", 12)
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = scanning(open_store(settings), monkeypatch)
    assert store.scan is not None
    ids = [a.id for a in store.list_articles()]
    original, calls = getattr(scan_compact, step), []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        """Stop after copying, or inside the switch's transaction, or (the second sweep)
        after the switch, before the old files are deleted."""
        calls.append(step)
        if step == "_sweep":
            if len(calls) == 1:
                return original(*args, **kwargs)
            raise Killed
        original(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(scan_compact, step, interrupted)
    with pytest.raises(Killed):
        store.remove(ids[:8])  # 16 of 32 dead
    assert store.count_articles() == 8, "the removal committed before the compaction"
    switched = step == "_sweep"
    assert store.scan.state()["generation"] == int(switched)
    assert store.scan.rows == (16 if switched else 32)
    assert same(dense_answers(store, embedder), chroma_answers(store, embedder))

    monkeypatch.setattr(scan_compact, step, original)
    ingest_articles(edited(store, ids[8:9]), store=store, embedder=embedder)
    assert store.scan.rows == (18 if switched else 16), "2 dead of 18 are not due; 18 of 34 are"
    assert files(settings.index.data_dir / "scan") == GENERATION_1
    assert same(dense_answers(store, embedder), chroma_answers(store, embedder))


def test_a_small_table_with_few_dead_rows_is_not_compacted_until_asked(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = scanning(open_store(settings), monkeypatch)
    assert store.scan is not None
    ids = [a.id for a in store.list_articles()]
    ingest_articles(edited(store, ids), store=store, embedder=embedder)
    store.remove(ids[:4])
    assert store.stats()["scan_table"] == "complete, 64 rows (40 dead)", "under MIN_DEAD"
    assert files(settings.index.data_dir / "scan") == GENERATION_0
    monkeypatch.setattr(scan_compact, "MIN_DEAD", 40)
    assert store.prepare_scan()
    assert store.stats()["scan_table"] == "complete, 24 rows (0 dead)"
    assert same(dense_answers(store, embedder), chroma_answers(store, embedder))


def test_a_compaction_that_fails_after_a_write_is_a_warning_and_the_write_stands(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_compact, "MIN_DEAD", 12)
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = scanning(open_store(settings), monkeypatch)
    (settings.index.data_dir / "scan" / "vectors.1.f32").mkdir()  # as unwritable as a full disk
    with pytest.warns(RuntimeWarning, match="compacting the scan table"):
        store.remove([a.id for a in store.list_articles()][:8])
    assert store.count_articles() == 8
    assert store.stats()["scan_table"] == "complete, 32 rows (16 dead)"
    assert same(dense_answers(store, embedder), chroma_answers(store, embedder))
