"""Retrievers and fusion: the registry, the fusion rules as tables, the retrievers' contract.

Fusion is tested on hand-made signals; the retrievers on the real sample index.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any, ClassVar, Literal

import pytest

from assistant.errors import ConfigError
from assistant.fusion import Fusion, Hit, Recency, Signal, article_of, asks_for_latest, zscores
from assistant.retrieve import (
    RETRIEVERS,
    DenseRetriever,
    Filters,
    HybridRetriever,
    KeywordRetriever,
    Search,
    get_retriever,
    retrieve,
)
from assistant.settings import Settings
from index import maxscore, open_store
from index.embeddings import Embedder

WEIGHTS = {"dense": 0.3, "chunk_bm25": 0.2, "article_bm25": 0.5}


# --- fusion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({}, {}),
        ({"a": 5.0}, {"a": 0.0}),
        ({"a": 2.0, "b": 2.0}, {"a": 0.0, "b": 0.0}),
        ({"a": 3.0, "b": 1.0}, {"a": 1.0, "b": -1.0}),
        ({"a": 0.0, "b": 1.0, "c": 2.0}, {"a": -1.224745, "b": 0.0, "c": 1.224745}),
    ],
)
def test_zscores(scores: dict[str, float], expected: dict[str, float]) -> None:
    assert zscores(scores) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("chunk_id", "article"),
    [("a#h#0", "a"), ("sample-x#0123#12", "sample-x"), ("id#with#hash#h#3", "id#with#hash")],
)
def test_article_of(chunk_id: str, article: str) -> None:
    assert article_of(chunk_id) == article


def ids(hits: list[Hit]) -> list[str]:
    return [h.chunk_id for h in hits]


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        ([], []),
        ([Signal("dense", [])], []),
        # one signal: articles first (a's best beats b), then chunks within a
        ([Signal("dense", [("b#h#0", 0.9), ("a#h#0", 0.8), ("a#h#1", 0.85)])],
         ["b#h#0", "a#h#1", "a#h#0"]),
        # whole-article BM25 reorders articles but proposes no chunk of its own
        ([Signal("dense", [("b#h#0", 0.9), ("a#h#0", 0.8)]),
          Signal("article_bm25", [("a", 9.0), ("b", 1.0), ("c", 5.0)], level="article")],
         ["a#h#0", "b#h#0"]),
        # a chunk one signal lacks takes that signal's lowest z
        ([Signal("dense", [("a#h#0", 0.9), ("b#h#0", 0.1)]),
          Signal("chunk_bm25", [("c#h#0", 7.0), ("a#h#0", 1.0)])],
         ["a#h#0", "c#h#0", "b#h#0"]),
        # equal scores: the smaller chunk id first
        ([Signal("dense", [("b#h#0", 0.5), ("a#h#0", 0.5)])], ["a#h#0", "b#h#0"]),
    ],
)
def test_fusion_ranks_articles_then_chunks(signals: list[Signal], expected: list[str]) -> None:
    assert ids(Fusion(WEIGHTS).fuse(signals)) == expected


def test_a_zero_weight_signal_proposes_chunks_but_scores_nothing() -> None:
    fusion = Fusion({**WEIGHTS, "dense": 0.0})
    hits = fusion.fuse([Signal("dense", [("a#h#0", 0.9)]), Signal("chunk_bm25", [("b#h#0", 3.0)])])
    assert ids(hits) == ["a#h#0", "b#h#0"] and {h.score for h in hits} == {0.0}


def test_hits_carry_each_retrievers_rank() -> None:
    hits = Fusion(WEIGHTS).fuse(
        [Signal("dense", [("a#h#0", 0.9), ("a#h#1", 0.5)]), Signal("chunk_bm25", [("a#h#1", 2.0)])]
    )
    ranks = {h.chunk_id: (h.dense_rank, h.keyword_rank) for h in hits}
    assert ranks == {"a#h#0": (1, None), "a#h#1": (2, 1)}


def test_a_signal_without_a_weight_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no fusion weight for the signal 'splade'"):
        Fusion(WEIGHTS).fuse([Signal("splade", [("a#h#0", 1.0)])])


OLD_AND_NEW = [Signal("dense", [("old#h#0", 0.9), ("new#h#0", 0.8)])]
PUBLISHED = {"old": 20210301, "new": 20210320}


@pytest.mark.parametrize(
    ("recency", "first"),
    [
        (None, "old#h#0"),
        (Recency(anchor=date(2021, 3, 21), weight=5, scale_days=60), "new#h#0"),
        (Recency(anchor=None, weight=5, scale_days=60), "new#h#0"),  # anchored to the newest
        (Recency(anchor=date(2021, 3, 10), weight=5, scale_days=60), "old#h#0"),  # new is later
        (Recency(anchor=date(2031, 3, 21), weight=5, scale_days=60), "old#h#0"),  # both stale
    ],
)
def test_recency_boosts_articles_published_shortly_before_the_anchor(
    recency: Recency | None, first: str
) -> None:
    hits = Fusion(WEIGHTS).fuse(OLD_AND_NEW, recency=recency, published=PUBLISHED)
    assert hits[0].chunk_id == first


@pytest.mark.parametrize(
    ("policy", "question", "as_of", "anchor"),
    [
        ("auto", "Who won the vote?", None, "none"),
        ("auto", "Who is the current president?", None, None),
        ("auto", "Who won the vote?", date(2021, 3, 1), date(2021, 3, 1)),
        ("on", "Who won the vote?", None, None),
        ("off", "Who is the current president?", date(2021, 3, 1), "none"),
    ],
)
def test_when_recency_counts(
    policy: Literal["auto", "on", "off"], question: str, as_of: date | None, anchor: object
) -> None:
    recency = Fusion(WEIGHTS, recency=policy).recency_for(question, as_of)
    if anchor == "none":
        assert recency is None
    else:
        assert recency is not None and recency.anchor == anchor
    assert Fusion(WEIGHTS, recency_weight=0).recency_for(question, as_of) is None


def test_latest_questions_are_recognised() -> None:
    assert asks_for_latest("What happened this week?") and not asks_for_latest("Who won in 1998?")


# --- the registry ----------------------------------------------------------------------------


def test_the_registry_names_each_retriever() -> None:
    assert RETRIEVERS == {"dense": DenseRetriever, "bm25": KeywordRetriever,
                          "hybrid": HybridRetriever}
    assert all(cls.name == name for name, cls in RETRIEVERS.items())


def test_an_unknown_retriever_is_a_config_error_naming_the_known_ones(
    sample_index: Settings,
) -> None:
    store = open_store(sample_index)
    with pytest.raises(ConfigError, match="unknown retriever 'psychic'") as info:
        get_retriever("psychic", settings=sample_index, store=store)
    assert info.value.hint == "use one of dense, bm25, hybrid"
    with pytest.raises(ConfigError, match="unknown retriever"):
        retrieve("x", mode="psychic", settings=sample_index, store=store)


# --- the retrievers' contract ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(RETRIEVERS))
def test_every_retriever_keeps_its_contract(
    name: str, sample_index: Settings, embedder: Embedder
) -> None:
    store = open_store(sample_index)
    retriever = get_retriever(name, settings=sample_index, store=store, embedder=embedder)
    filters = Filters(as_of=date(2021, 3, 27))

    result = retriever.retrieve("container ship Suez Canal", filters, 5)

    assert 0 < len(result.hits) <= 5
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert set(store.chunks([h.chunk_id for h in result.hits])) == {h.chunk_id for h in result.hits}
    published = {a.id: a.published for a in store.list_articles() if a.published}
    assert all(published[h.article_id] <= date(2021, 3, 27) for h in result.hits)
    expected = {"hybrid": {"dense", "bm25"}}.get(name, {name})
    assert set(result.timings) == expected


def test_hybrid_fuses_the_signals_of_its_parts(sample_index: Settings, embedder: Embedder) -> None:
    store = open_store(sample_index)
    hybrid = HybridRetriever.from_settings(sample_index, store=store, embedder=embedder)
    signals = hybrid.search("When did Assad visit Moscow?", Filters())
    assert [(s.name, s.level) for s in signals] == [
        ("dense", "chunk"), ("chunk_bm25", "chunk"), ("article_bm25", "article")
    ]
    assert all(s.scored for s in signals)



def test_hybrid_runs_its_searches_at_once_and_fuses_them_in_order(
    sample_index: Settings, embedder: Embedder
) -> None:
    store = open_store(sample_index)
    hybrid = HybridRetriever.from_settings(sample_index, store=store, embedder=embedder)
    question = "When did Assad visit Moscow?"
    alone = hybrid.retrieve(question, Filters(), 5)
    meeting = threading.Barrier(len(hybrid.parts), timeout=20)  # broken if they run in turn

    def meets(part: Search) -> Search:
        class Meeting:
            name: ClassVar[str] = part.name

            def search(self, question: str, filters: Filters) -> list[Signal]:
                meeting.wait()
                return part.search(question, filters)

        return Meeting()

    hybrid.parts = [meets(part) for part in hybrid.parts]
    together = hybrid.retrieve(question, Filters(), 5)
    assert ids(together.hits) == ids(alone.hits)
    assert list(together.timings) == ["dense", "bm25"]


def test_keyword_search_runs_its_two_levels_at_once(
    sample_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(sample_index)
    keyword = KeywordRetriever.from_settings(sample_index, store=store)
    alone = keyword.search("When did Assad visit Moscow?", Filters())
    meeting, add_up = threading.Barrier(2, timeout=20), maxscore.candidates

    def meets(*args: Any) -> Any:  # broken if the levels are searched in turn
        meeting.wait()
        return add_up(*args)

    monkeypatch.setattr(maxscore, "candidates", meets)
    assert keyword.search("When did Assad visit Moscow?", Filters()) == alone

# --- the keyword engine ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["When did Assad visit Moscow?", "container ship Suez Canal aground", "referendum result",
     "comet landing probe", "vote vote vote"],
)
def test_keyword_scores_equal_bm25s_over_the_same_documents(
    sample_index: Settings, query: str
) -> None:
    """The catalog's inverted index scores exactly as a bm25s index built over everything."""
    import bm25s

    from index.keywords import BM25_PARAMS, tokenize

    store = open_store(sample_index)
    articles = [store.get_article(a.id) for a in store.list_articles()]
    chunks = store.all_chunks()
    for level, ids, texts in (
        (store.keyword_index().articles, [a.id for a in articles],
         [f"{a.title}\n{a.text}" for a in articles]),
        (store.keyword_index().chunks, [c.id for c in chunks], [c.embed_text for c in chunks]),
    ):
        reference = bm25s.BM25(**BM25_PARAMS)
        reference.index(tokenize(texts), show_progress=False)
        words = [w for w in tokenize([query], return_ids=False)[0] if w in reference.vocab_dict]
        docs, scores = reference.retrieve([words], k=5, show_progress=False)
        expected = [(ids[d], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
        got = level.search(query, 5)
        assert [i for i, _ in got] == [i for i, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-5)


def test_keyword_filters_apply_before_the_top_k_cut(sample_index: Settings) -> None:
    store = open_store(sample_index)
    everything = store.keyword_index().articles.search("said", 100)
    days = store.catalog.published_days([a for a, _ in everything])
    cut = sorted(d for d in days.values() if d)[len(days) // 2]
    where = Filters(until=date(cut // 10000, cut // 100 % 100, cut % 100)).keyword_filter()
    admitted = store.keyword_index().articles.search("said", 3, where)
    assert len(admitted) == 3
    assert all(0 < days[a] <= cut for a, _ in admitted)
    outlet = store.get_article(admitted[0][0]).outlet
    only = store.keyword_index().articles.search(
        "said", 100, Filters(outlets=[outlet]).keyword_filter()
    )
    assert only and {store.get_article(a).outlet for a, _ in only} == {outlet}
