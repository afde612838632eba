"""The scale benchmark's synthetic archives are deterministic, and its smallest run works end to end
(real catalog, keyword index and Chroma; document vectors from the labelled RecycledEmbedder)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from benchmarks import scale, scale_corpus, scale_report
from index.embeddings import Embedder
from index.store import Store


def test_an_article_depends_only_on_its_seed_and_number() -> None:
    first, again = scale_corpus.article(7, 42), scale_corpus.article(7, 42)
    assert first.article == again.article and first.spans == again.spans
    assert scale_corpus.article(8, 42).article.text != first.article.text
    assert scale_corpus.article(7, 43).article.text != first.article.text


def test_articles_look_like_news_of_ten_years_and_200_outlets() -> None:
    made = [scale_corpus.article(7, i) for i in range(200)]
    days = [m.article.published for m in made if m.article.published]
    assert len(days) == 200 and date(2015, 1, 1) <= min(days) <= max(days) <= date(2024, 12, 31)
    assert len({d.year for d in days}) == 10
    for item in made:
        words = len(item.article.text.split())
        assert 400 <= words <= 960, words
        assert item.article.outlet in scale_corpus.OUTLETS
        assert all(item.article.text[s:e].endswith(".") for s, e in item.spans)
    assert len(scale_corpus.OUTLETS) == 200 == len(set(scale_corpus.OUTLETS))


def test_recycled_vectors_are_unit_length_and_the_same_for_the_same_text(
    embedder: Embedder,
) -> None:
    pool = scale_corpus.vector_pool(embedder, 7, 16)
    recycled = scale_corpus.RecycledEmbedder(embedder, pool)
    a, b, a_again = recycled.embed_documents(["one text", "another text", "one text"])
    assert a == a_again and a != b
    assert sum(x * x for x in a) == pytest.approx(1.0, abs=1e-5)
    assert recycled.count_tokens(["one text"]) == embedder.count_tokens(["one text"])


def test_a_build_resumes_from_a_smaller_archive_and_the_measurement_leaves_it_unchanged(
    tmp_path: Path, embedder: Embedder
) -> None:
    assert scale.build(tmp_path, 40, 3, budget=600, pool_size=32)
    assert scale.build(tmp_path, 80, 3, budget=600, pool_size=32)  # copies the 40, adds 40
    folder = scale.archive(tmp_path, 80, 3)
    result = scale.measure(
        tmp_path, 80, 3, n_questions=3, parts=("cold", "queries", "batches", "disk", "paths")
    )

    store = Store(scale.settings_for(folder))
    ids = [scale_corpus.article(3, i).article.id for i in range(80)]
    assert store.count_articles() == 80 and len(store.content_hashes(ids)) == 80
    assert store.scan_ready(), "built through Store.write, copied with its scan table"
    assert len(result["batches"]["ingest_100_s"]) == 3 == len(result["batches"]["remove_100_s"])
    assert len(result["batches"]["ingest_100_graph_loaded_s"]) == 3
    assert set(result["queries"]) == {
        f"{r}/{f}" for r in ("bm25", "dense", "hybrid") for f in ("none", "outlet", "as_of")
    }
    assert result["cold_open_evicted"]["first_query_parts_s"].keys() == {"dense", "bm25"}
    paths = result["dense_paths"]
    assert set(paths) == {f"{r}/{f}" for r in ("dense", "hybrid") for f in ("outlet", "as_of")}
    assert paths["dense/outlet"]["where"]["chroma_queries_per_search"] == 1
    assert paths["dense/outlet"]["before scan"]["chroma_queries_per_search"] == 1, "one of 200"
    assert paths["dense/outlet"]["chosen"]["chroma_queries_per_search"] == 0, "the scan table"
    assert len(paths["dense/as_of"]["per_question"]) == 3
    assert result["disk"]["bytes"]["keywords"] > 0 and result["chunks"] > 80
    assert json.loads((tmp_path / "results-a80-s3.json").read_text())["size"] == 80
    assert "| 80 articles |" in scale.report(tmp_path, 3)
    assert "80 articles" not in scale.report(tmp_path, 3, sizes=[40])


def test_an_interrupted_measurement_is_undone_on_the_next_open(
    tmp_path: Path, embedder: Embedder
) -> None:
    assert scale.build(tmp_path, 20, 5, budget=600, pool_size=16)
    folder = scale.archive(tmp_path, 20, 5)
    store = Store(scale.settings_for(folder))
    recycled = scale.recycled(folder, 5)
    (folder / "measuring.json").write_text(json.dumps({"added": [20, 21], "removed": [3, 9]}))
    store.write(scale.prepare(5, [20, 21], recycled))  # what a killed measurement left
    store.remove([scale_corpus.article(5, i).article.id for i in (3, 9)])

    scale.restore(store, folder, 5)

    expected = [scale_corpus.article(5, i).article.id for i in range(20)]
    assert store.count_articles() == 20 and len(store.content_hashes(expected)) == 20
    assert not (folder / "measuring.json").exists()


def test_an_archive_of_another_vector_count_is_a_series_of_its_own(
    tmp_path: Path, embedder: Embedder
) -> None:
    assert scale.build(tmp_path, 20, 5, budget=600, pool_size=16)  # 4 vectors per article
    assert scale.build(tmp_path, 30, 5, budget=600, pool_size=16, vectors=1)

    folder = scale.archive(tmp_path, 30, 5, vectors=1)
    assert folder.name.endswith("-v1") and scale.vectors_of(folder) == 1
    built = json.loads((folder / "built.json").read_text())
    assert built["dense_chunks"] == 30, "one vector per article, not a copy of the 4-vector 20"
    four = json.loads((scale.archive(tmp_path, 20, 5) / "built.json").read_text())
    assert four["dense_chunks"] > 20
    scale.measure(tmp_path, 30, 5, n_questions=2, parts=("disk",), vectors=1)
    assert scale.results_file(tmp_path, 30, 5, vectors=1).exists()
    assert "30 articles" in scale.report(tmp_path, 5, series="-v1")
    assert "30 articles" not in scale.report(tmp_path, 5)


@pytest.mark.parametrize(
    ("values", "fit", "at_a_million"),
    [
        ([2.0, 2.0], "power", 2.0),  # flat stays flat
        ([1.0, 10.0], "power", 100.0),  # grows with the archive: 10x per 10x
        ([1.0, 10.0], "linear", 10.0 + 9.0 / 90_000 * 900_000),
    ],
)
def test_through_two_sizes_the_projection_to_a_million_passes_through_both(
    values: list[float], fit: str, at_a_million: float
) -> None:
    assert scale.extrapolate([10_000, 100_000], values, fit) == pytest.approx(at_a_million)


@pytest.mark.parametrize(
    ("values", "fit", "at_a_million"),
    [
        ([4.0, 4.0, 4.0], "power", 4.0),
        ([1.0, 3.0, 10.0], "power", 100.0),  # y = n / 10k: linear growth found as b = 1
        ([0.5, 1.5, 5.0], "linear", 50.0),  # 0.05 per 1k articles, from nothing
        ([13.6, 13.8, 13.7], "same", 13.7),  # a ratio: the largest size's
    ],
)
def test_three_sizes_on_one_law_project_that_law(
    values: list[float], fit: str, at_a_million: float
) -> None:
    assert scale.extrapolate([10_000, 30_000, 100_000], values, fit) == pytest.approx(
        at_a_million, rel=0.03
    )


def test_one_size_measured_under_load_bends_a_three_point_projection_less_than_two() -> None:
    sizes, flat_then_noisy = [10_000, 30_000, 100_000], [2.0, 3.0, 2.0]  # 30k measured loaded
    three = scale.extrapolate(sizes, flat_then_noisy, "power")
    two = scale.extrapolate(sizes[:2], flat_then_noisy[:2], "power")
    assert abs(three - 2.0) < abs(two - 2.0)
    assert scale_report.growth_exponent(sizes, [1.0, 3.0, 10.0]) == pytest.approx(1.0, abs=0.03)
    assert scale_report.growth_exponent(sizes, [2.0, 2.0, 2.0]) == pytest.approx(0.0)


def test_a_cold_open_against_a_chroma_server_answers_from_a_copy_of_the_archive(
    tmp_path: Path,
) -> None:
    from benchmarks import cold_server

    assert scale.build(tmp_path, 20, 5, budget=600, pool_size=16)
    folder = scale.archive(tmp_path, 20, 5)

    result = cold_server.measure(folder, runs=1)

    (probe,) = result["with_server"]
    assert probe["chroma"].startswith("server 127.0.0.1:")
    assert set(probe["first_query_parts_s"]) >= {"dense", "bm25"}
    assert result["embedded"]["chroma"] == "embedded"
    copy = tmp_path / f"{folder.name}-chroma-server"
    assert (copy / ".complete").exists() and (copy / "chroma.sqlite3").exists()
