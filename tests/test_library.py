"""The library service every face calls: uploads, records, listing, reading, removing, stats.

Real Chroma in a temporary folder and the real bundled embedding model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import ArticleNotFound, ConfigError, InputError
from assistant.library import Library, upload_name
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder

BAKERS = b"""---
title: Bakers strike over flour prices
outlet: Test Gazette
published: 2024-03-05
---
Bakers in the capital walked out on Monday over the rising price of flour.
"""


def record(n: int, **extra: object) -> dict[str, object]:
    """A corpus record: article ``n``, published on day ``n`` of March 2024."""
    return {"id": f"a{n}", "title": f"Headline {n}", "text": f"Story number {n} happened.",
            "published": f"2024-03-{n:02d}", **extra}


@pytest.fixture
def library(settings: Settings, embedder: Embedder) -> Library:
    """A library over a fresh, empty index."""
    return Library(settings, embedder=embedder)


# --- uploads --------------------------------------------------------------------------------


def test_an_uploaded_file_is_indexed_under_its_upload_name(library: Library) -> None:
    report = library.ingest_upload("bakers.md", BAKERS)
    (article_id,) = report.added
    article = library.get_article(article_id)
    assert article.title == "Bakers strike over flour prices" and article.outlet == "Test Gazette"
    assert article.source == "upload:bakers.md"  # never the temporary path it was read from
    assert library.ingest_upload("bakers.md", BAKERS).unchanged == [article_id]


def test_a_batch_reports_one_result_per_file_and_a_bad_file_is_a_skip_naming_it(
    library: Library,
) -> None:
    wire = (b'{"id": "w1", "title": "Ferry resumes", "text": "The ferry sailed on Friday."}\n'
            b'{"id": "w2", "title": "No text here"}\n')
    seen: list[tuple[int, int]] = []
    upload = library.ingest_files(
        [("bakers.md", BAKERS), ("wire.jsonl", wire), ("scan.pdf", b"%PDF-1.7"), ("e.txt", b"")],
        progress=lambda report, total: seen.append((len(report.added), total)),
    )
    results = {r.name: r for r in upload.files}
    assert list(results) == ["bakers.md", "wire.jsonl", "scan.pdf", "e.txt"]
    assert (results["bakers.md"].status, results["bakers.md"].summary()) == ("added", "added 1")
    assert (results["wire.jsonl"].status, results["wire.jsonl"].summary()) == (
        "partial", "added 1 · skipped 1")
    assert results["wire.jsonl"].skipped[0].startswith("line 2: ")
    assert results["scan.pdf"].status == "skipped"
    assert "unsupported file type '.pdf'" in results["scan.pdf"].skipped[0]
    assert results["e.txt"].skipped == ["file is empty"]
    skipped = {s.source for s in upload.report.skipped}
    assert skipped == {"upload:wire.jsonl:2", "upload:scan.pdf", "upload:e.txt"}
    assert seen[-1] == (2, 2), "progress counts the articles indexed"


def test_a_bad_file_uploaded_alone_is_an_input_error_naming_it(library: Library) -> None:
    with pytest.raises(InputError, match=r"nothing was ingested: upload:photo\.txt: .*binary"):
        library.ingest_upload("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def test_an_oversize_upload_is_an_input_error_and_nothing_is_indexed(
    tmp_path: Path, embedder: Embedder
) -> None:
    library = Library(get_settings(data_dir=tmp_path / "d", api_max_upload_mb=0.001),
                      embedder=embedder)
    big = b"Headline\n" + b"x" * 2000
    with pytest.raises(InputError, match="big.txt is 0.0 MB, over the 0.001 MB upload limit") as e:
        library.ingest_files([("bakers.md", BAKERS), ("big.txt", big)])
    assert "NEWSDESK_API_MAX_UPLOAD_MB" in (e.value.hint or "")
    with pytest.raises(InputError, match="upload limit"):
        library.ingest_upload("big.txt", big)
    assert library.stats()["articles"] == 0


@pytest.mark.parametrize(
    ("given", "name"),
    [("fares.txt", "fares.txt"), ("..", "upload"), (None, "upload"),
     ("../../etc/passwd.txt", "passwd.txt"), ("b:c*d?.txt", "b_c_d_.txt"),
     ("x" * 300 + ".md", "x" * 117 + ".md")],
)
def test_upload_names_are_sanitised(given: str | None, name: str) -> None:
    assert upload_name(given) == name


def test_files_with_the_same_name_keep_results_of_their_own(library: Library) -> None:
    upload = library.ingest_files([("a.txt", b"One\nFirst body."), ("a.txt", b"")])
    assert [(r.name, r.status) for r in upload.files] == [("a.txt", "added"),
                                                          ("a (2).txt", "skipped")]


# --- JSON records -----------------------------------------------------------------------------


def test_records_are_indexed_and_bad_ones_reported(library: Library) -> None:
    assert library.ingest_records(record(1)).added == ["a1"]
    assert library.get_article("a1").source == "request"
    report = library.ingest_records([record(2), {"title": "no text"}])
    assert report.added == ["a2"]
    ((source, reason),) = [(s.source, s.reason) for s in report.skipped]
    assert source == "request[2]" and "field 'text'" in reason


@pytest.mark.parametrize(
    ("payload", "says"),
    [([], "the list of records is empty"), ({"title": "no text"}, "request: "),
     ([{"text": ""}, {"text": 3}], "request[2]: record has no text"),
     ("just a string", "expected a JSON object")],
)
def test_unusable_records_are_an_input_error(library: Library, payload: object, says: str) -> None:
    with pytest.raises(InputError) as caught:
        library.ingest_records(payload)
    assert says in str(caught.value)
    assert library.stats()["articles"] == 0


# --- listing, reading, removing ----------------------------------------------------------------


def test_list_pages_newest_first_and_filters(library: Library) -> None:
    library.ingest_records([record(n, outlet="Even" if n % 2 == 0 else "Odd") for n in range(1, 6)])
    first = library.list_articles(limit=2)
    assert [a.id for a in first.articles] == ["a5", "a4"]
    assert (first.next_offset, first.total) == (2, 5)
    assert all(a.text == "" for a in first.articles), "a page carries metadata only"
    last = library.list_articles(offset=4, limit=2)
    assert [a.id for a in last.articles] == ["a1"] and last.next_offset is None
    assert len(library.list_articles(limit=None).articles) == 5
    assert [a.id for a in library.list_articles(outlet="Even").articles] == ["a4", "a2"]
    assert [a.id for a in library.list_articles(search="headline 3").articles] == ["a3"]
    assert library.list_articles(limit=5).next_offset is None


def test_remove_then_get_is_article_not_found(library: Library) -> None:
    library.ingest_records([record(1), record(2)])
    library.remove("a1")
    with pytest.raises(ArticleNotFound, match="no article with id 'a1'"):
        library.get_article("a1")
    with pytest.raises(ArticleNotFound):
        library.remove("a1")
    assert library.remove_many(["a2", "ghost"]) == ["a2"]
    assert library.stats()["articles"] == 0


def test_stats_describe_the_index(library: Library) -> None:
    library.ingest_records([record(1, outlet="Harbor Ledger"), record(3)])
    stats = library.stats()
    assert stats["articles"] == 2 and stats["chunks"] >= 2
    assert (stats["first_published"], stats["last_published"]) == ("2024-03-01", "2024-03-03")
    assert stats["outlets"] == {"(unknown)": 1, "Harbor Ledger": 1}


def test_reading_and_removing_need_no_embedding_model(tmp_path: Path) -> None:
    # An embedding model that cannot load (no OpenAI key) is only an error when ingesting.
    settings = get_settings(data_dir=tmp_path / "d", embedding="openai:text-embedding-3-small")
    library = Library(settings)
    assert library.list_articles().articles == [] and library.stats()["articles"] == 0
    assert library.remove_many(["ghost"]) == []
    with pytest.raises(ConfigError, match="needs an OpenAI API key"):
        library.ingest_records(record(1))
