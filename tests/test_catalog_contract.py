"""The ``Catalog`` contract, one specification run against both backends: the SQLite file
(``SqliteCatalog``) and a real PostgreSQL server on loopback (``PgCatalog``).

Each test states what any catalog must do; the two backends must read back the same articles,
chunks, counts, journal and mentions from the same writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from functools import partial
from itertools import count
from pathlib import Path

import pytest

from index.catalog import Catalog, PreparedArticle
from index.config import IndexConfig
from index.errors import ArticleNotFound
from index.keywords import KeywordFilter
from index.models import Article, Chunk
from index.timex import Mention

_schemas = count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def open_catalog(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], Catalog]]:
    """Opens the catalog under test (each call a new connection to the same catalog); every
    test gets a fresh one: a new SQLite folder, or a new schema of the PostgreSQL server."""
    if request.param == "sqlite":
        from index.sqlite_catalog import SqliteCatalog

        config = IndexConfig(data_dir=tmp_path / "data")
        factory: Callable[[], Catalog] = partial(SqliteCatalog, config)
    else:
        from index.pg_catalog import PgCatalog

        config = IndexConfig(data_dir=tmp_path / "unused", chroma_host="127.0.0.1",
                             catalog_url=request.getfixturevalue("pg_url"),
                             collection=f"contract_{next(_schemas)}")
        factory = partial(PgCatalog, config)
    opened: list[Catalog] = []

    def open_one() -> Catalog:
        opened.append(factory())
        return opened[-1]

    yield open_one
    for catalog in opened:
        catalog.close()


@pytest.fixture
def catalog(open_catalog: Callable[[], Catalog]) -> Catalog:
    return open_catalog()


def prepared(
    article_id: str,
    *,
    version: int = 1,
    sentences: int = 3,
    dense: int = 2,
    title: str | None = None,
    outlet: str | None = "Harbor Ledger",
    published: date | None = date(2024, 3, 5),
    source: str | None = None,
    mentions: list[Mention] | None = None,
) -> PreparedArticle:
    """An article of ``sentences`` one-sentence chunks, the first ``dense`` with a vector."""
    said = [f"Sentence {n} of {article_id} in version {version}." for n in range(sentences)]
    text = " ".join(said)
    article = Article(id=article_id, title=title or f"Report {article_id}", text=text,
                      outlet=outlet, published=published, url=f"https://example.org/{article_id}",
                      authors=["Ana Ruiz", "Åsa Berg"], source=source)
    chunks, start = [], 0
    for n, sentence in enumerate(said):
        span = (start, start + len(sentence))
        chunks.append(Chunk(id=f"{article_id}-{n}", article_id=article_id, index=n,
                            sentences=[span], text=sentence,
                            embed_text=f"{article.title}\n{sentence}"))
        start = span[1] + 1
    return PreparedArticle(article, f"v{version}", chunks, [[0.0]] * dense, mentions or [])


def dense_ids(p: PreparedArticle) -> list[str]:
    return p.chunk_ids()[: len(p.vectors)]


def mention(text: str, start: int) -> Mention:
    return Mention(start=start, end=start + len(text), text=text, kind="absolute",
                   granularity="day", year=2024, month=3, day=4, until=date(2024, 3, 4))


# --- articles --------------------------------------------------------------------------------


def test_an_article_written_is_read_back_whole(catalog: Catalog) -> None:
    written = prepared("a1", source="feeds/harbor.jsonl:3")
    catalog.replace([written])
    assert catalog.get_article("a1") == written.article
    assert catalog.count_articles() == 1
    assert catalog.content_hashes(["a1", "missing"]) == {"a1": "v1"}
    assert catalog.ids_from_source("feeds/harbor.jsonl:3") == ["a1"]
    assert catalog.ids_from_source("elsewhere") == []
    with pytest.raises(ArticleNotFound):
        catalog.get_article("missing")


def test_articles_are_listed_newest_first_undated_last_then_by_id_without_their_text(
    catalog: Catalog,
) -> None:
    catalog.replace([
        prepared("b-old", published=date(2023, 1, 1)),
        prepared("a-new", published=date(2024, 6, 1), outlet="Meridian Wire"),
        prepared("Z-undated", published=None, title="Undated harbor news"),
        prepared("a-undated", published=None, outlet=None),
    ])
    listed = catalog.list_articles()
    assert [a.id for a in listed] == ["a-new", "b-old", "Z-undated", "a-undated"], \
        "ids compared byte by byte"
    assert all(a.text == "" for a in listed)
    assert listed[0].model_copy(update={"text": ""}) == catalog.get_article("a-new").model_copy(
        update={"text": ""})
    assert [a.id for a in catalog.list_articles(offset=1, limit=2)] == ["b-old", "Z-undated"]
    assert [a.id for a in catalog.list_articles(outlet="Meridian Wire")] == ["a-new"]
    assert [a.id for a in catalog.list_articles(search="HARBOR")] == ["Z-undated"], \
        "a title substring, whatever its case"


def test_stats_count_articles_chunks_vectors_and_outlets(catalog: Catalog) -> None:
    empty = catalog.stats()
    assert {k: empty[k] for k in ("articles", "chunks", "dense_chunks", "undated_articles",
                                  "first_published", "last_published", "outlets")} == {
        "articles": 0, "chunks": 0, "dense_chunks": 0, "undated_articles": 0,
        "first_published": None, "last_published": None, "outlets": {}}
    catalog.replace([
        prepared("a1", published=date(2023, 1, 2)),
        prepared("a2", published=date(2024, 6, 1), sentences=4, dense=1),
        prepared("a3", published=None, outlet=None, dense=0),
        prepared("a4", outlet="Meridian Wire"),
    ])
    stats = catalog.stats()
    assert stats["articles"] == 4
    assert stats["chunks"] == 3 + 4 + 3 + 3
    assert stats["dense_chunks"] == 2 + 1 + 0 + 2
    assert stats["undated_articles"] == 1
    assert (stats["first_published"], stats["last_published"]) == ("2023-01-02", "2024-06-01")
    assert list(stats["outlets"].items()) == [
        ("Harbor Ledger", 2), ("(unknown)", 1), ("Meridian Wire", 1)], "most first, then by name"


# --- chunks ----------------------------------------------------------------------------------


def test_chunks_keep_their_sentence_offsets_and_only_the_leading_ones_have_vectors(
    catalog: Catalog,
) -> None:
    b, a = prepared("b", sentences=2, dense=1), prepared("B", sentences=3, dense=3)
    catalog.replace([b, a])
    ids = b.chunk_ids()
    found = catalog.chunks([ids[1], "b#v1#9", ids[0]])
    assert set(found) == {ids[0], ids[1]}, "unknown ids are left out"
    second = found[ids[1]]
    assert (second.article_id, second.index, second.embed_text) == ("b", 1, b.chunks[1].embed_text)
    assert second.sentences == b.chunks[1].sentences
    assert [c.id for c in catalog.all_chunks()] == a.chunk_ids() + b.chunk_ids(), \
        "by article id (byte order), then position"
    assert catalog.dense_chunk_ids() == set(dense_ids(a) + dense_ids(b))


def test_the_chunks_of_many_articles_are_read_in_one_call(catalog: Catalog) -> None:
    batch = [prepared(f"n{i:04d}", sentences=1, dense=1) for i in range(1200)]
    catalog.replace(batch)
    wanted = [p.chunk_ids()[0] for p in batch]
    assert set(catalog.chunks(wanted)) == set(wanted)
    assert catalog.content_hashes(p.article.id for p in batch) == {
        p.article.id: "v1" for p in batch}
    assert len(catalog.published_days(p.article.id for p in batch)) == 1200


# --- writes ----------------------------------------------------------------------------------


def test_every_write_bumps_the_generation_by_one_and_records_the_embedding(
    catalog: Catalog,
) -> None:
    start = catalog.generation
    catalog.replace([prepared("a1"), prepared("a2")])
    assert catalog.generation == start + 1
    assert catalog.embedding == IndexConfig().embedding
    catalog.delete(["a2"])
    assert catalog.generation == start + 2
    catalog.intend(["x"])
    catalog.settle(["x"])
    catalog.keep_mentions("a1", [])
    assert catalog.generation == start + 2, "the journal and derived mentions are not writes"


def test_a_new_version_replaces_the_old_whole_and_returns_its_stale_vector_ids(
    catalog: Catalog,
) -> None:
    old = prepared("a1", version=1, sentences=3, dense=2)
    catalog.replace([old])
    new = prepared("a1", version=2, sentences=2, dense=1, outlet="Meridian Wire")
    assert sorted(catalog.replace([new])) == sorted(dense_ids(old))
    assert catalog.get_article("a1") == new.article
    assert [c.id for c in catalog.all_chunks()] == new.chunk_ids()
    assert catalog.content_hashes(["a1"]) == {"a1": "v2"}


def test_an_article_given_twice_in_one_batch_keeps_its_last_version(catalog: Catalog) -> None:
    first, last = prepared("a1", version=1), prepared("a1", version=2, sentences=1, dense=1)
    catalog.replace([first, last])
    assert [c.id for c in catalog.all_chunks()] == last.chunk_ids()
    assert catalog.dense_counts(KeywordFilter()) == (1, 1, 1)


def test_deleting_removes_articles_with_their_chunks_and_returns_their_vector_ids(
    catalog: Catalog,
) -> None:
    keep, gone = prepared("keep"), prepared("gone", mentions=[mention("March 4", 0)])
    catalog.replace([keep, gone])
    assert sorted(catalog.delete(["gone", "never-there"])) == sorted(dense_ids(gone))
    assert catalog.content_hashes(["keep", "gone"]) == {"keep": "v1"}
    assert {c.article_id for c in catalog.all_chunks()} == {"keep"}
    assert catalog.mentions("gone") is None
    assert catalog.delete(["gone"]) == []


def test_an_article_without_chunks_is_stored_and_deleted(catalog: Catalog) -> None:
    catalog.replace([prepared("empty", sentences=0, dense=0)])
    assert catalog.count_articles() == 1 and catalog.all_chunks() == []
    assert catalog.delete(["empty"]) == []
    assert catalog.count_articles() == 0


# --- the journal of vector ids ---------------------------------------------------------------


def test_intended_ids_are_journaled_until_settled(catalog: Catalog) -> None:
    many = [f"v{i}" for i in range(1100)]
    catalog.intend(many)
    catalog.intend(many[:3])
    assert sorted(catalog.pending_vectors()) == sorted(many), "each id once"
    catalog.settle(many[1:])
    assert catalog.pending_vectors() == ["v0"]
    catalog.settle([])
    assert catalog.pending_vectors() == ["v0"]


def test_a_write_settles_its_new_vector_ids_and_journals_the_stale_ones(catalog: Catalog) -> None:
    old = prepared("a1", version=1)
    catalog.intend(dense_ids(old))
    catalog.replace([old])
    assert catalog.pending_vectors() == [], "committed with their chunk rows"
    new = prepared("a1", version=2)
    catalog.intend(dense_ids(new))
    stale = catalog.replace([new])
    assert sorted(catalog.pending_vectors()) == sorted(stale) == sorted(dense_ids(old))
    catalog.settle(stale)
    removed = catalog.delete(["a1"])
    assert sorted(catalog.pending_vectors()) == sorted(removed) == sorted(dense_ids(new))


# --- derived data: counts, days, mentions, keywords ------------------------------------------


def test_vector_counts_per_outlet_and_day_follow_every_write(catalog: Catalog) -> None:
    march, june = date(2024, 3, 5), date(2024, 6, 1)
    catalog.replace([
        prepared("a1", published=march, dense=2),
        prepared("a2", published=june, dense=3, sentences=3, outlet="Meridian Wire"),
        prepared("a3", published=None, outlet=None, dense=1),
    ])
    harbor = KeywordFilter(outlets=("Harbor Ledger",))
    assert catalog.dense_counts(KeywordFilter()) == (6, 6, 6), "no bound: all"
    assert catalog.dense_counts(harbor) == (6, 2, 6)
    assert catalog.dense_counts(KeywordFilter(outlets=("",))) == (6, 1, 6), "'' is unknown"
    assert catalog.dense_counts(KeywordFilter(first_day=20240401)) == (6, 6, 3)
    assert catalog.dense_counts(KeywordFilter(last_day=20240305)) == (6, 6, 2), "undated fail"
    catalog.replace([prepared("a2", version=2, published=march, dense=1)])
    assert catalog.dense_counts(KeywordFilter(outlets=("Harbor Ledger",), last_day=20240305)) \
        == (4, 3, 3)
    catalog.delete(["a1", "a3"])
    assert catalog.dense_counts(KeywordFilter(first_day=20240101)) == (1, 1, 1)


def test_published_days_are_yyyymmdd_and_zero_when_undated(catalog: Catalog) -> None:
    catalog.replace([prepared("a1", published=date(2024, 3, 5)), prepared("a2", published=None)])
    assert catalog.published_days(["a1", "a2", "missing"]) == {"a1": 20240305, "a2": 0}


def test_mentions_are_written_with_the_article_and_kept_apart(catalog: Catalog) -> None:
    first = [mention("March 4", 10), mention("4 March 2024", 30)]
    catalog.replace([prepared("a1", mentions=first), prepared("a2")])
    assert catalog.mentions("a1") == first
    assert catalog.mentions("a2") == []
    derived = [mention("yesterday", 5)]
    catalog.keep_mentions("a2", derived)
    assert catalog.mentions("a2") == derived
    assert catalog.mentions("missing") is None


def test_keyword_search_sees_each_committed_write(catalog: Catalog) -> None:
    catalog.replace([prepared("a1", title="Saltmarsh bridge reopens"), prepared("a2")])
    assert [i for i, _ in catalog.keywords.articles.search("saltmarsh", 5)] == ["a1"]
    chunk_hits = catalog.keywords.chunks.search("saltmarsh", 5)
    assert {i for i, _ in chunk_hits} == set(prepared("a1").chunk_ids()), "titles head chunks"
    catalog.replace([prepared("a1", version=2, title="Harbor dredging ends")])
    assert catalog.keywords.articles.search("saltmarsh", 5) == []
    assert [i for i, _ in catalog.keywords.articles.search("dredging", 5)] == ["a1"]
    catalog.delete(["a1"])
    assert catalog.keywords.articles.search("dredging", 5) == []



def test_optimizing_keeps_every_article_count_generation_and_keyword_answer(
    open_catalog: Callable[[], Catalog],
) -> None:
    catalog = open_catalog()
    catalog.replace([prepared(f"a{i}", title=f"Saltmarsh report {i}", sentences=2 + i % 4)
                     for i in range(12)])
    catalog.delete(["a3", "a7"])

    def held(c: Catalog) -> tuple[object, ...]:
        return (c.generation, c.stats(), c.list_articles(limit=50), c.chunks(["a1-0", "a2-1"]),
                c.keywords.articles.search("saltmarsh report", 20),
                c.keywords.chunks.search("sentence saltmarsh", 30))

    before = held(catalog)
    catalog.optimize()
    assert held(catalog) == before
    assert held(open_catalog()) == before

# --- reopening -------------------------------------------------------------------------------


def test_a_catalog_reopened_reads_what_was_committed(
    open_catalog: Callable[[], Catalog],
) -> None:
    writer = open_catalog()
    writer.replace([prepared("a1", mentions=[mention("March 4", 0)]),
                    prepared("a2", published=None)])
    writer.intend(["stray"])
    reader = open_catalog()
    assert reader.generation == writer.generation
    assert reader.embedding == writer.embedding
    assert reader.list_articles() == writer.list_articles()
    assert reader.all_chunks() == writer.all_chunks()
    assert reader.mentions("a1") == writer.mentions("a1")
    assert reader.pending_vectors() == ["stray"]
    for within in (KeywordFilter(), KeywordFilter(outlets=("Harbor Ledger",), first_day=20240101)):
        assert reader.dense_counts(within) == writer.dense_counts(within)
    writer.delete(["a2"])
    assert reader.content_hashes(["a1", "a2"]) == {"a1": "v1"}, "another connection's commit"
    assert reader.generation == writer.generation
