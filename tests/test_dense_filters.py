"""Filtered dense search: the path is chosen by how much of the archive the filter admits.

With the scan table complete (``index.scan``; every index written by this version), a filter
admitting less than a tenth of the vectors (``POSTFILTER_SHARE``), or at most ``SCAN_ROWS`` of
them, is scored exactly from it.  A wider one is checked on the metadata of the nearest
vectors first, as many of them as it takes for ``POSTFILTER_MARGIN`` times the ``n`` wanted to
be expected to pass (``POSTFILTER_WIDTH`` to ``POSTFILTER_MAX_WIDTH`` times ``n``).  Without a
scan table, a narrower one admitting at most ``EXACT_MAX`` vectors has them read from Chroma
and scored exactly, and any other goes straight to Chroma's ``where``.  All give the nearest
admitted chunks.  Real Chroma and the real model throughout; the only observation is a
recorder around ``ChromaVectors.query``, ``ChromaVectors.nearest_exactly`` and
``ScanTable.search`` that passes every call through.  Embedded Chroma's SQLite file is given
table statistics when opened, so its ``where`` looks the admitted ids up instead of walking
the collection.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from assistant.fusion import article_of
from assistant.retrieve import DenseRetriever, Filters
from assistant.settings import Settings, get_settings
from index import Article, ingest, ingest_articles, open_store
from index.dates import day_number, day_of
from index.dense import (
    EXACT_MAX,
    POSTFILTER_MARGIN,
    POSTFILTER_MAX_WIDTH,
    POSTFILTER_WIDTH,
    SCAN_PER_NEAREST,
)
from index.embeddings import Embedder
from index.keywords import KeywordFilter
from index.sqlite_catalog import SqliteCatalog
from index.store import Store
from index.vectors import ChromaVectors, admits, give_statistics, where_clause
from tests.conftest import SAMPLES

WHERE_SQL = (  # chromadb 1.5.9's statement for where={"outlet": {"$in": [...]}} (sqlite_metadata.rs)
    "SELECT DISTINCT embeddings.id, embeddings.embedding_id FROM embeddings WHERE "
    "embeddings.segment_id = ? AND embeddings.id IN (SELECT id FROM embedding_metadata WHERE "
    "(embedding_metadata.key = ? AND embedding_metadata.key IS NOT NULL) AND "
    "embedding_metadata.string_value IN (?)) ORDER BY embeddings.id ASC"
)

QUESTIONS = ("When did Assad visit Moscow?", "Who carried out the air strikes?")


def exact_counts(store: Store) -> tuple[Counter[str], Counter[int]]:
    """Vectors per outlet ('' when unknown) and per publication day (0 undated), counted from
    the catalog's chunks and articles."""
    articles = {a.id: a for a in store.list_articles()}
    dense = [articles[article_of(c)] for c in store.catalog.dense_chunk_ids()]
    return Counter(a.outlet or "" for a in dense), Counter(day_number(a.published) for a in dense)


def check_dense_counts(store: Store) -> None:
    """The counts the catalog keeps with each write equal a recount, for every outlet and day."""
    outlets, days = exact_counts(store)
    total = sum(outlets.values())
    for outlet, n in outlets.items():
        assert store.catalog.dense_counts(KeywordFilter(outlets=(outlet,))) == (total, n, total)
    for day, n in days.items():
        if day:
            one_day = KeywordFilter(first_day=day, last_day=day)
            assert store.catalog.dense_counts(one_day) == (total, total, n), day
    dated = sum(n for d, n in days.items() if d)
    assert store.catalog.dense_counts(KeywordFilter(last_day=99991231)) == (total, total, dated)
    assert store.catalog.dense_counts(KeywordFilter(outlets=("no such outlet",)))[1] == 0


@pytest.fixture
def chroma_calls(sample_index: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The kind of each query the sample store sends to Chroma: "where" or "nearest-first"."""
    store = open_store(sample_index)
    query, exactly = store.vectors.query, store.vectors.nearest_exactly
    calls: list[str] = []

    def recorded(*args: Any, **kwargs: Any) -> list[tuple[str, float]]:
        calls.append("where" if kwargs.get("where") else "nearest-first")
        return query(*args, **kwargs)

    def recorded_exactly(*args: Any, **kwargs: Any) -> list[tuple[str, float]]:
        calls.append("exact")
        return exactly(*args, **kwargs)

    assert store.scan is not None
    scan = store.scan.search

    def recorded_scan(*args: Any, **kwargs: Any) -> list[tuple[str, float]]:
        calls.append("scan")
        return scan(*args, **kwargs)

    monkeypatch.setattr(store.vectors, "query", recorded)
    monkeypatch.setattr(store.vectors, "nearest_exactly", recorded_exactly)
    monkeypatch.setattr(store.scan, "search", recorded_scan)
    yield calls


def sample_days(store: Store) -> list[int]:
    return sorted(day_number(a.published) for a in store.list_articles() if a.published)


def narrow_filters(store: Store) -> list[KeywordFilter]:
    days = sample_days(store)
    first = min((a for a in store.list_articles() if a.published), key=lambda a: a.published)
    filters = [
        KeywordFilter(last_day=days[0]),  # as_of the first article's day
        KeywordFilter(last_day=days[2], outlets=(first.outlet or "",)),  # its outlet, as_of the third
        KeywordFilter(first_day=days[-1]),  # since the last day
    ]
    for within in filters:  # each admits less than the share checked on the nearest first
        total, of_outlets, of_days = store.catalog.dense_counts(within)
        assert of_outlets * of_days < store.dense.postfilter_share * total * total
    return filters


def too_large_to_scan(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the sample store choose as it would in an archive of a billion vectors once
    Chroma's graph is loaded in the process, and load it."""
    monkeypatch.setattr(store.dense, "as_if_vectors", 10**9)
    store.vectors.warm()


def paths_taken(
    store: Store, embedder: Embedder, chroma_calls: list[str], within: KeywordFilter
) -> list[list[str]]:
    """The Chroma calls each question's filtered dense search made (each finding something)."""
    taken = []
    for question in QUESTIONS:
        chroma_calls.clear()
        assert store.search_vectors(embedder.embed_query(question), 5, within=within), within
        taken.append(list(chroma_calls))
    return taken


def test_a_narrow_filter_is_scored_exactly_from_the_scan_table(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str]
) -> None:
    store = open_store(sample_index)
    assert store.scan_ready(), "an index built from empty keeps its scan table complete"
    for within in narrow_filters(store):
        assert paths_taken(store, embedder, chroma_calls, within) == [["scan"]] * len(QUESTIONS)


def test_without_a_scan_table_a_narrow_filter_admitting_few_vectors_is_read_from_chroma(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(sample_index)
    monkeypatch.setattr(store, "scan", None)  # a Chroma server keeps the vectors: no scan table
    for within in narrow_filters(store):
        total, of_outlets, of_days = store.catalog.dense_counts(within)
        assert of_outlets * of_days <= EXACT_MAX * total
        assert paths_taken(store, embedder, chroma_calls, within) == [["exact"]] * len(QUESTIONS)


def test_without_a_scan_table_a_narrow_filter_admitting_more_goes_to_chromas_where(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(sample_index)
    monkeypatch.setattr(store, "scan", None)
    monkeypatch.setattr(store.dense, "exact_max", 0)  # as if each admitted more than EXACT_MAX
    for within in narrow_filters(store):
        assert paths_taken(store, embedder, chroma_calls, within) == [["where"]] * len(QUESTIONS)


def test_scoring_exactly_ranks_every_admitted_vector_by_cosine_similarity(
    sample_index: Settings, embedder: Embedder
) -> None:
    store = open_store(sample_index)
    within = narrow_filters(store)[1]
    vector = embedder.embed_query(QUESTIONS[0])
    scored = store.vectors.nearest_exactly(vector, where_clause(within))
    admitted = store.collection.get(where=where_clause(within), include=[])["ids"]
    assert sorted(c for c, _ in scored) == sorted(admitted)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    by_chroma = store.vectors.query(vector, len(admitted), where=where_clause(within))
    assert [c for c, _ in scored] == [c for c, _ in by_chroma]
    for (_, mine), (_, chromas) in zip(scored, by_chroma, strict=True):
        assert mine == pytest.approx(chromas, abs=1e-5)


def test_a_wide_filter_admitting_few_enough_vectors_is_scored_from_the_scan_table_too(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str]
) -> None:
    store = open_store(sample_index)
    days = sample_days(store)
    for within in (KeywordFilter(last_day=days[-1]), KeywordFilter(first_day=days[0])):
        total, of_outlets, of_days = store.catalog.dense_counts(within)
        assert of_outlets * of_days >= store.dense.postfilter_share * total * total
        assert of_outlets * of_days <= store.dense.scan_rows * total
        assert paths_taken(store, embedder, chroma_calls, within) == [["scan"]] * len(QUESTIONS)


def test_a_wide_filter_is_scanned_while_its_rows_cost_less_than_the_nearest_it_needs(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checking the nearest vectors costs about ``SCAN_PER_NEAREST`` scanned rows per vector
    checked: up to that many times ``width * n`` admitted rows, a scan is cheaper (the
    archive's size is set by ``as_if_vectors``)."""
    store = open_store(sample_index)
    store.vectors.warm()
    monkeypatch.setattr(store.dense, "scan_rows", 0)
    within = KeywordFilter(last_day=sample_days(store)[-1])
    total, of_outlets, of_days = store.catalog.dense_counts(within)
    share = of_outlets * of_days / total / total
    assert share >= store.dense.postfilter_share
    width = max(POSTFILTER_WIDTH, min(POSTFILTER_MAX_WIDTH, math.ceil(POSTFILTER_MARGIN / share)))
    limit = SCAN_PER_NEAREST * width * 5
    vector = embedder.embed_query(QUESTIONS[0])
    for vectors, path in ((int(limit / share) - 1, "scan"), (int(limit / share) + 2,
                                                               "nearest-first")):
        monkeypatch.setattr(store.dense, "as_if_vectors", vectors)
        chroma_calls.clear()
        store.search_vectors(vector, 5, within=within)
        assert chroma_calls == [path], (vectors, share * vectors, limit)


def test_a_wide_filter_checks_the_nearest_vectors_first(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(sample_index)
    too_large_to_scan(store, monkeypatch)
    days = sample_days(store)
    for within in (KeywordFilter(last_day=days[-1]), KeywordFilter(first_day=days[0])):
        for question in QUESTIONS:
            chroma_calls.clear()
            store.search_vectors(embedder.embed_query(question), 5, within=within)
            assert chroma_calls == ["nearest-first"], "all of the nearest pass: one query"


def test_when_too_few_of_the_nearest_pass_the_admitted_rows_are_scanned_not_wheres(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chroma's ``where`` costs grow with the archive; the scan table's, with what it admits."""
    store = open_store(sample_index)
    within = narrow_filters(store)[1]  # one outlet as_of its third day: few of the nearest
    too_large_to_scan(store, monkeypatch)
    monkeypatch.setattr(store.dense, "postfilter_share", 0.0)  # every filter nearest-first
    vector = embedder.embed_query(QUESTIONS[0])
    chroma_calls.clear()
    scanned = store.search_vectors(vector, 5, within=within)
    assert chroma_calls == ["nearest-first", "scan"]
    monkeypatch.setattr(store, "scan", None)  # a Chroma server: no scan table
    chroma_calls.clear()
    by_where = store.search_vectors(vector, 5, within=within)
    assert chroma_calls == ["nearest-first", "where"]
    assert [c for c, _ in by_where] == [c for c, _ in scanned]


def test_the_fewer_a_filter_admits_the_more_nearest_vectors_are_checked(
    sample_index: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(sample_index)
    query = store.vectors.query
    asked: list[int] = []

    def recorded(vector: list[float], n: int, **kwargs: Any) -> list[tuple[str, float]]:
        asked.append(n)
        return query(vector, n, **kwargs)

    monkeypatch.setattr(store.vectors, "query", recorded)
    too_large_to_scan(store, monkeypatch)
    days = sample_days(store)
    outlet = store.list_articles()[0].outlet or ""
    vector = embedder.embed_query(QUESTIONS[0])
    widths = []
    for within in (KeywordFilter(first_day=days[0]), KeywordFilter(last_day=days[len(days) // 2]),
                   KeywordFilter(outlets=(outlet,))):
        total, of_outlets, of_days = store.catalog.dense_counts(within)
        share = of_outlets * of_days / total / total
        asked.clear()
        store.search_vectors(vector, 4, within=within)
        widths.append((share, asked[0] // 4))
    assert [w for _, w in widths] == sorted(w for _, w in widths), widths
    for share, width in widths:
        assert POSTFILTER_WIDTH <= width <= POSTFILTER_MAX_WIDTH
        assert share * width >= min(POSTFILTER_MARGIN, share * POSTFILTER_MAX_WIDTH)


def test_the_dense_retriever_lets_the_store_choose_by_selectivity(
    sample_index: Settings, embedder: Embedder, chroma_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(sample_index)
    dense = DenseRetriever.from_settings(sample_index, store=store, embedder=embedder)
    outlet = store.list_articles()[0].outlet
    dense.search(QUESTIONS[0], Filters(outlets=[outlet], as_of=day_of(sample_days(store)[2])))
    assert chroma_calls == ["scan"]
    chroma_calls.clear()
    dense.search(QUESTIONS[0], Filters(as_of=day_of(sample_days(store)[-1])))
    assert chroma_calls == ["scan"], "a wide filter, but few enough vectors to scan"
    too_large_to_scan(store, monkeypatch)
    chroma_calls.clear()
    dense.search(QUESTIONS[0], Filters(as_of=day_of(sample_days(store)[-1])))
    assert chroma_calls[0] == "nearest-first"


def test_every_path_finds_the_nearest_admitted_chunks(
    sample_index: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the path (chosen, always nearest-first checked on Chroma's metadata or on the
    scan table's outlets and days, always ``where``, read from Chroma and scored exactly
    whenever narrower than a tenth, the scan table whenever narrower than a tenth), narrow or
    wide, the answer is the same and every chunk in it passes the filter; a filter too narrow
    for the nearest vectors still fills the ``n`` when forced nearest-first."""
    store = open_store(sample_index)
    store.vectors.warm()  # else the scan table answers every path while Chroma's graph is cold
    articles = {a.id: a for a in store.list_articles()}
    days = sample_days(store)
    filters = [
        KeywordFilter(outlets=(next(iter(articles.values())).outlet or "",)),
        KeywordFilter(last_day=days[2]),
        KeywordFilter(last_day=days[len(days) // 2]),
        KeywordFilter(first_day=days[0]),
        KeywordFilter(first_day=days[3], last_day=days[-4]),
    ]
    for question in QUESTIONS:
        vector = embedder.embed_query(question)
        for within in filters:
            answers = []
            scan = store.scan
            chosen = (store.dense.postfilter_share, store.dense.exact_max, scan,
                      store.dense.as_if_vectors)
            paths = [chosen, (0.0, 0, None, None), (0.0, 0, scan, 10**9), (2.0, 0, None, None),
                     (2.0, 10**9, None, None), (2.0, 0, scan, None)]
            # chosen, nearest-first (metadata), nearest-first (scan facets), where, exact, scan
            for share, exact_max, table, as_if in paths:
                monkeypatch.setattr(store.dense, "postfilter_share", share)
                monkeypatch.setattr(store.dense, "exact_max", exact_max)
                monkeypatch.setattr(store.dense, "as_if_vectors", as_if)
                monkeypatch.setattr(store, "scan", table)
                answers.append(store.search_vectors(vector, 5, within=within))
            assert len(answers[0]) == 5
            for answer in answers[1:]:
                assert [c for c, _ in answer] == [c for c, _ in answers[0]], within
            for chunk_id, _ in answers[0]:
                article = articles[article_of(chunk_id)]
                meta = {"outlet": article.outlet or "", "published": day_number(article.published)}
                assert admits(within, meta)


@pytest.mark.parametrize(
    ("within", "where"),
    [
        (None, None),
        (KeywordFilter(), None),
        (KeywordFilter(outlets=("A", "B")), {"outlet": {"$in": ["A", "B"]}}),
        (KeywordFilter(first_day=20150101), {"published": {"$gte": 20150101}}),
        (KeywordFilter(last_day=20151021), {"$and": [{"published": {"$lte": 20151021}},
                                                      {"published": {"$gt": 0}}]}),
    ],
)
def test_where_clauses(within: KeywordFilter | None, where: dict[str, Any] | None) -> None:
    assert where_clause(within) == where


@pytest.mark.parametrize(
    ("within", "outlet", "day", "admitted"),
    [
        (KeywordFilter(outlets=("A",)), "A", 0, True),
        (KeywordFilter(outlets=("A",)), "", 20150101, False),
        (KeywordFilter(first_day=20150101), "A", 20150101, True),
        (KeywordFilter(first_day=20150101), "A", 20141231, False),
        (KeywordFilter(last_day=20151021), "A", 20151021, True),
        (KeywordFilter(last_day=20151021), "A", 0, False),  # undated fails any date bound
        (KeywordFilter(last_day=20151021), "A", 20151022, False),
    ],
)
def test_admits_is_the_where_clause_as_a_test(
    within: KeywordFilter, outlet: str, day: int, admitted: bool
) -> None:
    assert admits(within, {"outlet": outlet, "published": day}) is admitted


def test_vector_counts_follow_every_write_and_survive_reopening(
    settings: Settings, embedder: Embedder
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = open_store(settings)
    check_dense_counts(store)
    moved = store.get_article("sample-assad-moscow-visit")
    ingest_articles(  # a new version under another outlet and day, one undated article
        [moved.model_copy(update={"outlet": "Elsewhere", "published": date(2024, 1, 2),
                                  "text": moved.text + " Updated."}),
         Article(id="undated", title="Undated", text="Talks went on. Nobody signed.")],
        config=settings, embedder=embedder,
    )
    check_dense_counts(store)
    assert store.catalog.dense_counts(KeywordFilter(outlets=("Elsewhere",)))[1] > 0
    assert store.remove(["undated", "sample-lavrov-free-syrian-army"])
    check_dense_counts(store)
    reopened = Store(get_settings(data_dir=settings.index.data_dir))
    assert reopened.catalog.dense_counts(KeywordFilter(last_day=20151231)) == \
        store.catalog.dense_counts(KeywordFilter(last_day=20151231))


def test_a_catalog_without_current_counts_is_recounted_on_open(
    settings: Settings, embedder: Embedder
) -> None:
    """A catalog made before the counts, or last written by a newsdesk that did not keep them
    (its generation moved past the counts' stamp), gets them counted afresh when opened."""
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = open_store(settings)
    expected = store.catalog.dense_counts(KeywordFilter(first_day=20150101))
    catalog = SqliteCatalog(settings.index)
    catalog.db.execute("DELETE FROM dense_by_day")
    catalog.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    catalog.close()
    assert SqliteCatalog(settings.index).dense_counts(KeywordFilter(first_day=20150101)) == expected


def test_vectors_opened_in_the_background_answer_the_first_search_and_see_later_commits(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new process starts opening Chroma while it embeds the question; the search that follows
    waits for it, and a batch another store commits afterwards is still seen."""
    ferry = Article(id="ferry", title="Ferry strike", text="The ferry crews struck on Monday.")
    ingest_articles([ferry], config=settings, embedder=embedder)
    reader = Store(get_settings(data_dir=settings.index.data_dir))
    assert not reader.vectors.is_open
    monkeypatch.setattr(reader, "scan", None)  # as with a Chroma server: no scan table
    assert not reader.read_scan_ahead()
    reader.open_vectors_in_background()
    reader.open_vectors_in_background()  # a second call while it opens changes nothing
    question = embedder.embed_query("Who went on strike?")
    assert [article_of(c) for c, _ in reader.search_vectors(question, 3)] == ["ferry"]
    assert reader.vectors.is_open

    tram = Article(id="tram", title="Tram strike", text="Tram drivers went on strike today.")
    ingest_articles([tram], config=settings, embedder=embedder)  # another store commits
    assert {article_of(c) for c, _ in reader.search_vectors(question, 3)} == {"ferry", "tram"}


def where_plan(chroma_file: Any) -> str:
    """SQLite's plan for the statement Chroma runs for an outlet's ``where``."""
    with sqlite3.connect(chroma_file) as db:
        segment = db.execute("SELECT id FROM segments WHERE scope = 'METADATA'").fetchone()[0]
        rows = db.execute("EXPLAIN QUERY PLAN " + WHERE_SQL, (segment, "outlet", "X")).fetchall()
    return " | ".join(r[-1] for r in rows)


def test_opening_embedded_chroma_lets_its_where_look_up_the_ids_it_admits(
    settings: Settings,
) -> None:
    """Without table statistics SQLite answers Chroma's ``where`` by walking every embedding
    of the collection; once given them (on open) it looks the admitted ids up by rowid, and the
    same filter still returns the same vectors.  (A collection of a few dozen vectors is walked
    either way, as it should be: 3,000 stored vectors here, of 30 outlets.)"""
    import numpy as np

    vectors = ChromaVectors(settings.index)
    rows = np.random.default_rng(0).standard_normal((3000, 384)).astype(np.float32)
    for start in range(0, len(rows), 1000):
        vectors.collection.add(
            ids=[f"v{i}" for i in range(start, start + 1000)],
            embeddings=rows[start : start + 1000],
            metadatas=[{"outlet": f"outlet {i % 30}"} for i in range(start, start + 1000)],
        )
    chroma_file = settings.index.chroma_path / "chroma.sqlite3"
    assert "USING COVERING INDEX sqlite_autoindex_embeddings_1 (segment_id=?)" in \
        where_plan(chroma_file)
    where = where_clause(KeywordFilter(outlets=("outlet 7",)))
    admitted = sorted(vectors.collection.get(where=where, include=[])["ids"])

    vectors.reopen()
    assert vectors.collection is not None  # opened again: statistics given
    assert "USING INTEGER PRIMARY KEY (rowid=?)" in where_plan(chroma_file)
    assert sorted(vectors.collection.get(where=where, include=[])["ids"]) == admitted
    assert admitted == sorted(f"v{i}" for i in range(7, 3000, 30))


def test_statistics_are_taken_again_once_the_collection_has_doubled(
    settings: Settings, embedder: Embedder
) -> None:
    ingest([SAMPLES], config=settings, embedder=embedder)
    chroma_file = settings.index.chroma_path / "chroma.sqlite3"
    give_statistics(chroma_file)

    def counted() -> int:
        with sqlite3.connect(chroma_file) as db:
            stat = db.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'embeddings'").fetchone()
        return int(stat[0].split()[0])

    vectors = counted()
    half = (vectors + 1) // 2
    with sqlite3.connect(chroma_file) as db:
        db.execute("UPDATE sqlite_stat1 SET stat = ? WHERE tbl = 'embeddings'",
                   (f"{half} {half} 1",))  # taken when there were half as many
    give_statistics(chroma_file)
    assert counted() == half, "not yet more than doubled: kept"
    with sqlite3.connect(chroma_file) as db:
        db.execute("UPDATE sqlite_stat1 SET stat = ? WHERE tbl = 'embeddings'",
                   (f"{vectors // 3} {vectors // 3} 1",))
    give_statistics(chroma_file)
    assert counted() == vectors, "more than doubled: taken again"
