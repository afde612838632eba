"""The keyword index inside the SQLite catalog: kept by each write at the cost of its batch,
read through a per-process cache that sees every connection's commits, scored as bm25s."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index import keyword_tables, keywords, maxscore, postings
from index.catalog import PreparedArticle
from index.chunking import chunk_article
from index.config import IndexConfig
from index.keywords import BM25_PARAMS, KeywordFilter, bound, tokenize
from index.models import Article
from index.sqlite_catalog import SqliteCatalog
from tests.test_ingest import check_keywords_match_a_rebuild

WORDS = [f"w{k}" for k in range(400)]


def article(i: int, *, seed: int = 0, outlet: str = "Harbor Ledger", extra: str = "") -> Article:
    """A deterministic article of a few hundred Zipf-like words (several chunks)."""
    rng = random.Random(i * 1000 + seed)
    sentences = [
        " ".join(WORDS[min(int(rng.paretovariate(1.2)) - 1, 399)] for _ in range(12)).capitalize()
        + "."
        for _ in range(rng.randint(3, 30))
    ]
    return Article(id=f"a{i}", title=f"Story {i}", text=" ".join(sentences) + extra,
                   outlet=outlet, published=f"2021-05-{1 + i % 28:02d}")


def prepared(a: Article, version: str = "1") -> PreparedArticle:
    chunks = chunk_article(a, max_tokens=60, count_tokens=lambda ts: [len(t.split()) for t in ts])
    return PreparedArticle(a, f"h{version}", chunks, vectors=[])


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 16 documents, swept once 4 are removed: every path runs on a small archive."""
    monkeypatch.setattr(postings, "BLOCK", 16)
    monkeypatch.setattr(keyword_tables, "SWEEP_AT", 4)


def catalog(folder: Path) -> SqliteCatalog:
    return SqliteCatalog(IndexConfig(data_dir=folder))


class Catalogued:
    """What ``check_keywords_match_a_rebuild`` reads: a store's ``catalog``."""

    def __init__(self, c: SqliteCatalog) -> None:
        self.catalog = c


def test_writes_removals_and_sweeps_keep_what_a_rebuild_builds(
    small_blocks: None, tmp_path: Path
) -> None:
    c = catalog(tmp_path)
    for start in (0, 10, 20):
        c.replace([prepared(article(i)) for i in range(start, start + 10)])
    c.delete([f"a{i}" for i in range(0, 30, 3)])
    c.replace([prepared(article(i, seed=1), "2") for i in (1, 2, 25)])  # edited versions
    check_keywords_match_a_rebuild(Catalogued(c))  # type: ignore[arg-type]
    swept = [r[0] for r in c.db.execute("SELECT doc FROM kw_dead WHERE swept=1")]
    assert swept, "some block reached SWEEP_AT removed documents"
    for block, n, docs, tfs in c.db.execute("SELECT block, n, docs, tfs FROM kw_postings"):
        ids = set(postings.decode(block, n, docs, tfs)[0].tolist())
        assert not ids & set(swept), "a swept block holds no removed document"


def test_a_batch_rewrites_only_the_blocks_of_its_new_documents(
    small_blocks: None, tmp_path: Path
) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i)) for i in range(40)])
    first_new = c.db.execute("SELECT seq FROM sqlite_sequence WHERE name='kw_docs'").fetchone()[0]
    blocks_before = c.db.execute("SELECT COUNT(DISTINCT block) FROM kw_postings").fetchone()[0]
    c.replace([prepared(article(i)) for i in range(40, 42)])
    written = {r[0] for r in c.db.execute(
        "SELECT block FROM kw_postings WHERE version=?", (c.generation,))}
    assert blocks_before > 5
    assert min(written) == (first_new + 1) // postings.BLOCK
    facets = {r[0] for r in c.db.execute(
        "SELECT block FROM kw_facets WHERE version=?", (c.generation,))}
    assert facets == written


def test_each_batch_reads_back_as_its_documents_tokens_counted(
    small_blocks: None, tmp_path: Path
) -> None:
    """Batches that start inside a block append to its stored rows, one after a removal drops
    the removed documents from them, and a frequency above 65,535 is stored wide: every live
    document's postings are its tokens counted, every row packed as layout 3 packs it."""
    c = catalog(tmp_path)
    c.replace([prepared(article(i)) for i in range(7)])
    short = Article(id="short", title="Brief", text="Two w1 words.", outlet="Harbor Ledger")
    c.replace([prepared(article(i)) for i in range(7, 12)] + [prepared(short)])
    c.delete(["short"])  # two documents, fewer than SWEEP_AT: they stay in the last block
    (dead,) = c.db.execute("SELECT MAX(doc) FROM kw_dead WHERE swept=0").fetchone()
    c.replace([prepared(article(i)) for i in range(12, 15)])  # rewrites the rows of that block
    rewritten = c.db.execute("SELECT COUNT(*) FROM kw_postings WHERE block=? AND version=?",
                             (dead // postings.BLOCK, c.generation)).fetchone()[0]
    assert rewritten, "the batch after the removal starts in the removed documents' block"
    c.replace([prepared(article(15, extra=" Zebra." + " zebra" * 70_000))])
    c.replace([prepared(article(i)) for i in range(16, 18)])
    live = dict(c.db.execute("SELECT doc, key FROM kw_docs"))
    expected = {}
    for doc in keyword_tables._documents_of(c.db, [f"a{i}" for i in range(18)]):
        for term, tf in Counter(tokenize([doc.text], return_ids=False)[0]).items():
            expected.setdefault((doc.level, term), {})[doc.key] = tf
    got: dict[tuple[int, str], dict[str, int]] = {}
    wide = 0
    for level, term, block, n, docs, tfs in c.db.execute(
        "SELECT level, term, block, n, docs, tfs FROM kw_postings"
    ):
        ids, freqs = postings.decode(block, n, docs, tfs)
        assert (n, docs, tfs) == postings.encode(ids - block * postings.BLOCK, freqs)
        assert list(ids) == sorted(set(ids.tolist()))
        assert all(i // postings.BLOCK == block for i in ids.tolist())
        wide += len(tfs) == 4 * n
        for doc, tf in zip(ids.tolist(), freqs.tolist(), strict=True):
            if doc in live:  # a removed document waits for its block's sweep
                got.setdefault((level, term), {})[live[doc]] = tf
    assert got == expected
    assert got[(keyword_tables.ARTICLES, "zebra")] == {"a15": 70_001}
    assert wide >= 1
    df = {(level, term): n for level, term, n in c.db.execute("SELECT level, term, df FROM kw_terms")}
    assert df == {key: len(docs) for key, docs in expected.items()}


def test_a_reader_sees_each_commit_of_another_connection(small_blocks: None, tmp_path: Path) -> None:
    writer, reader = catalog(tmp_path), catalog(tmp_path)  # two connections, as two processes
    writer.replace([prepared(article(i)) for i in range(20)])
    assert reader.keywords.articles.search("w0 w1", 5)  # the reader's cache is now warm
    writer.replace([prepared(article(20, extra=" Zanzibar zanzibar."))])
    assert [a for a, _ in reader.keywords.articles.search("zanzibar", 5)] == ["a20"]
    writer.replace([prepared(article(3, seed=9, extra=" Zanzibar."), "2")])
    fresh = catalog(tmp_path)
    for query in ("zanzibar", "w0 w3 w17", "w5 w5 w250"):
        for level in ("articles", "chunks"):
            got = getattr(reader.keywords, level).search(query, 10)
            assert got == getattr(fresh.keywords, level).search(query, 10)
    writer.delete(["a20"])
    assert [a for a, _ in reader.keywords.articles.search("zanzibar", 5)] == ["a3"]


def test_scores_equal_bm25s_after_removals(small_blocks: None, tmp_path: Path) -> None:
    import bm25s

    c = catalog(tmp_path)
    c.replace([prepared(article(i)) for i in range(30)])
    c.delete([f"a{i}" for i in range(0, 30, 4)])
    ids = [r[0] for r in c.db.execute("SELECT id FROM articles ORDER BY id")]
    texts = [f"{c.get_article(i).title}\n{c.get_article(i).text}" for i in ids]
    reference = bm25s.BM25(**BM25_PARAMS)
    reference.index(tokenize(texts), show_progress=False)
    for query in ("w0 w3 w17", "w40 w41 w42 w42", "story w9"):
        words = [w for w in tokenize([query], return_ids=False)[0] if w in reference.vocab_dict]
        docs, scores = reference.retrieve([words], k=5, show_progress=False)
        expected = [(ids[d], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
        got = c.keywords.articles.search(query, 5)
        assert [a for a, _ in got] == [a for a, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-5)


@pytest.mark.parametrize(
    ("where", "admitted"),
    [
        (KeywordFilter(outlets=("Quay Times",)), {"a1", "a3", "a5"}),
        (KeywordFilter(outlets=("Nobody's Gazette",)), set()),
        (KeywordFilter(first_day=20210503, last_day=20210505), {"a2", "a3", "a4"}),
        (KeywordFilter(outlets=("Harbor Ledger",), last_day=20210503), {"a0", "a2"}),
    ],
)
def test_filters_use_each_documents_outlet_and_day(
    tmp_path: Path, where: KeywordFilter, admitted: set[str]
) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i, outlet="Quay Times" if i % 2 else "Harbor Ledger",
                                extra=" Lighthouse.")) for i in range(6)])
    hits = c.keywords.articles.search("lighthouse", 10, where)
    assert {a for a, _ in hits} == admitted
    chunks = c.keywords.chunks.search("lighthouse", 50, where)
    assert {key.split("#")[0] for key, _ in chunks} == admitted



def test_a_removed_article_passes_no_filter_and_the_others_score_as_if_alone(
    tmp_path: Path,
) -> None:
    def outlet(i: int) -> str:
        return "Quay Times" if i % 2 else "Harbor Ledger"

    c = catalog(tmp_path / "all")
    c.replace([prepared(article(i, outlet=outlet(i), extra=" Lighthouse.")) for i in range(12)])
    wheres = [KeywordFilter(outlets=("Quay Times",)), KeywordFilter(last_day=20210508),
              KeywordFilter(outlets=("Harbor Ledger", "Quay Times"), first_day=20210503)]
    for where in wheres:  # the filters' look-ups made before the removal
        assert c.keywords.articles.search("lighthouse w0", 12, where)
    c.delete(["a3", "a4", "a5"])
    alone = catalog(tmp_path / "alone")
    alone.replace([prepared(article(i, outlet=outlet(i), extra=" Lighthouse."))
                   for i in range(12) if i not in (3, 4, 5)])
    for where in wheres:
        for level in ("articles", "chunks"):
            got = getattr(c.keywords, level).search("lighthouse w0", 40, where)
            assert not {key.split("#")[0] for key, _ in got} & {"a3", "a4", "a5"}
            expected = dict(getattr(alone.keywords, level).search("lighthouse w0", 40, where))
            assert dict(got) == pytest.approx(expected)

def test_the_bounded_search_ranks_as_adding_up_every_posting(
    small_blocks: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i, outlet="Quay Times" if i % 3 else "Harbor Ledger"))
               for i in range(150)])
    c.delete([f"a{i}" for i in range(0, 150, 7)])
    summed: list[int] = []  # per search, the postings it added up
    add_up = c._keyword_cache.sum_by_document

    def counted(asked: Any, *level: Any) -> Any:
        summed[-1] += sum(len(p.docs) for _, p in asked)
        return add_up(asked, *level)

    monkeypatch.setattr(c._keyword_cache, "sum_by_document", counted)
    wheres = [None, KeywordFilter(outlets=("Harbor Ledger",)), KeywordFilter(last_day=20210510)]
    queries = ["w0 w1 w350", "w2 w5 w9 w120 w399", "story w3 w3 w40", "w0 w7 w77"]

    def search(level: str, query: str, k: int, where: Any) -> list[tuple[str, float]]:
        summed.append(0)
        return getattr(c.keywords, level).search(query, k, where)

    def every_search() -> list[list[tuple[str, float]]]:
        return [search(level, query, k, where) for level in ("chunks", "articles")
                for query in queries for k in (1, 5, 20) for where in wheres]

    monkeypatch.setattr(maxscore, "EXHAUSTIVE_BELOW", 1 << 40)
    exhaustive = every_search()
    every_posting = list(summed)
    summed.clear()
    monkeypatch.setattr(maxscore, "EXHAUSTIVE_BELOW", 0)
    assert every_search() == exhaustive
    assert all(exhaustive)
    fewer = sum(b < e for b, e in zip(summed, every_posting, strict=True))
    assert fewer >= len(summed) // 4, "many searches added up only some of their postings"


def test_a_term_only_looked_up_for_the_documents_within_reach_has_no_other_share_computed(
    small_blocks: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i)) for i in range(150)])
    query = "w2 w5 w9 w120 w399"  # three common words, two rare ones
    monkeypatch.setattr(maxscore, "EXHAUSTIVE_BELOW", 1 << 40)
    exhaustive = c.keywords.chunks.search(query, 5)
    c._keyword_cache.terms.clear()
    monkeypatch.setattr(maxscore, "EXHAUSTIVE_BELOW", 0)
    assert c.keywords.chunks.search(query, 5) == exhaustive
    held = {term: entry for (_, term), entry in c._keyword_cache.terms.items()}
    assert held["w120"].computed is not None and held["w399"].computed is not None
    assert all(held[common].computed is None for common in ("w2", "w5", "w9"))
    c.keywords.prefetch([(keyword_tables.CHUNKS, "w5")])  # a warmed term has them all
    assert held["w5"].computed is not None


def test_a_search_decodes_its_postings_outside_the_catalogs_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i)) for i in range(30)])
    alone = c.keywords.chunks.search("w0 w3 w17", 5)
    c._keyword_cache.terms.clear()
    free: list[bool] = []
    decode = keywords.decode_rows

    def watched(rows: Any) -> Any:  # may another thread take the catalog's lock meanwhile?
        def take() -> bool:
            if not c._lock.acquire(timeout=0):
                return False
            c._lock.release()
            return True

        with ThreadPoolExecutor(1) as other:
            free.append(other.submit(take).result())
        return decode(rows)

    monkeypatch.setattr(keywords, "decode_rows", watched)
    assert c.keywords.chunks.search("w0 w3 w17", 5) == alone
    assert len(free) == 3 and all(free)


def test_no_share_exceeds_the_bound_of_its_terms_largest_frequency() -> None:
    rng = np.random.default_rng(3)
    k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
    for avg in (1.0, 7.5, 180.0, 2400.0):
        tfs = rng.integers(1, 60, 20_000)
        lengths = tfs + rng.integers(0, 4000, len(tfs))  # a document holds its term's tokens
        lengths[:50] = tfs[:50]  # some hold nothing else
        shares = tfs / (tfs + k1 * (1 - b + b * lengths / avg))
        for tf_max in (1, 5, 59):
            within = tfs <= tf_max
            assert shares[within].max() <= bound(tf_max, avg) * (1 + 1e-12)
        for tf, share in zip(tfs[:50], shares[:50], strict=True):  # and it is reached
            assert bound(int(tf), avg) == pytest.approx(share, rel=1e-12)


def test_the_two_levels_add_up_their_postings_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i)) for i in range(30)])
    levels = ("chunks", "articles")

    def both() -> list[list[tuple[str, float]]]:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda lv: getattr(c.keywords, lv).search("w0 w3 w17", 5), levels))

    alone = [getattr(c.keywords, level).search("w0 w3 w17", 5) for level in levels]
    meeting, add_up = threading.Barrier(2, timeout=20), maxscore.candidates

    def meets(*args: Any) -> Any:  # each waits for the other, inside its adding up
        meeting.wait()
        return add_up(*args)

    monkeypatch.setattr(maxscore, "candidates", meets)
    assert both() == alone


def test_a_catalog_with_the_previous_keyword_layout_is_rebuilt_on_open(tmp_path: Path) -> None:
    c = catalog(tmp_path)
    c.replace([prepared(article(i, extra=" Lighthouse.")) for i in range(5)])
    for table in keyword_tables.TABLES:  # what layout 2 held: rows per posting
        c.db.execute(f"DROP TABLE {table}")
    c.db.execute("CREATE TABLE kw_postings (level INTEGER, term TEXT, doc INTEGER, tf INTEGER)")
    c.db.execute("CREATE TABLE kw_docs (doc INTEGER PRIMARY KEY, level INTEGER, key TEXT)")
    c.db.execute("UPDATE meta SET value='2' WHERE key='keywords'")
    c.close()
    reopened = catalog(tmp_path)
    assert reopened._meta("keywords") == keyword_tables.VERSION
    assert {a for a, _ in reopened.keywords.articles.search("lighthouse", 10)} == {
        f"a{i}" for i in range(5)}
    check_keywords_match_a_rebuild(Catalogued(reopened))  # type: ignore[arg-type]


def test_a_reader_drops_what_it_holds_when_the_tables_are_rebuilt(
    small_blocks: None, tmp_path: Path
) -> None:
    writer, reader = catalog(tmp_path), catalog(tmp_path)
    writer.replace([prepared(article(i, extra=" Lighthouse.")) for i in range(8)])
    writer.delete(["a0", "a1"])
    assert len(reader.keywords.articles.search("lighthouse", 10)) == 6  # a0, a1: tombstones
    with writer.snapshot():
        writer.db.execute("BEGIN IMMEDIATE")
        writer.db.execute("UPDATE meta SET value = value + 1 WHERE key='generation'")
        keyword_tables.rebuild(writer.db)  # document ids start again from 1
        writer.db.execute("COMMIT")
    assert {a for a, _ in reader.keywords.articles.search("lighthouse", 10)} == {
        f"a{i}" for i in range(2, 8)}
    assert reader.keywords.chunks.search("w0", 20) == catalog(tmp_path).keywords.chunks.search(
        "w0", 20)
