"""Find the chunks that answer a question: retrievers, chosen by name from a registry.

``retrieve(question, filters)`` is the entry point.  It picks a retriever from ``RETRIEVERS`` by
the ``retriever`` setting (or ``mode``) and runs it:

- ``DenseRetriever`` ("dense"): nearest chunk vectors in Chroma;
- ``KeywordRetriever`` ("bm25"): BM25 over chunks and over whole articles;
- ``HybridRetriever`` ("hybrid", the default): both.

Each retriever is handed its store (and embedder) when built, exposes one ``retrieve(question,
filters, k)``, and ranks its searches' signals with the same ``assistant.fusion.Fusion``
(weighted z-scores, articles first, recency).  Filters (outlets, date range, ``as_of``) are
applied inside each store, before the top-k cut: Chroma takes a ``where`` on outlet and day,
the keyword engine its own filter.  Adding a backend is one class with ``name``, ``from_settings``,
``search`` and ``retrieve`` (subclass ``FusedRetriever`` for the last) and one registry line.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel, Field, model_validator

from assistant.errors import ConfigError, NothingIndexed
from assistant.fusion import Fusion, Hit, Scored, Signal, article_of, asks_for_latest
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder, get_embedder
from index.store import IndexedChunk, KeywordFilter, Store, day_number, open_store

if TYPE_CHECKING:
    from index.catalog import KeywordLevel

__all__ = [
    "RETRIEVERS",
    "DenseRetriever",
    "Filters",
    "FusedRetriever",
    "Hit",
    "HybridRetriever",
    "KeywordRetriever",
    "Retrieval",
    "Retriever",
    "Search",
    "asks_for_latest",
    "get_retriever",
    "retrieve",
]


class Filters(BaseModel):
    """Which articles a question may draw on."""

    outlets: list[str] | None = Field(None, description="Only these outlets.")
    since: date | None = Field(None, description="Only articles published on or after this day.")
    until: date | None = Field(None, description="Only articles published on or before this day.")
    as_of: date | None = Field(
        None, description="Answer as of this day: only articles published on or before it."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Filters:
        if self.since and self.latest and self.since > self.latest:
            raise ValueError("'since' is after 'until'/'as_of': no article can match")
        return self

    @property
    def latest(self) -> date | None:
        """The effective upper bound on publication day."""
        bounds = [d for d in (self.until, self.as_of) if d]
        return min(bounds) if bounds else None

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return bool(self.outlets or self.since or self.latest)

    def keyword_filter(self) -> KeywordFilter | None:
        """The filters as the index's searches take them (keyword and vector); None when no
        filter is set."""
        if not self.active:
            return None
        return KeywordFilter(
            outlets=tuple(self.outlets) if self.outlets else None,
            first_day=day_number(self.since) if self.since else None,
            last_day=day_number(self.latest) if self.latest else None,
        )


class Retrieval(BaseModel):
    """Fused hits plus how long each part took."""

    hits: list[Hit]
    timings: dict[str, float]

    def chunks(self, store: Store) -> list[tuple[Hit, IndexedChunk]]:
        """The hits with their catalog rows, in rank order."""
        rows = store.chunks([h.chunk_id for h in self.hits])
        return [(h, rows[h.chunk_id]) for h in self.hits if h.chunk_id in rows]


class Retriever(Protocol):
    """Finds the chunks most likely to answer a question; built by ``from_settings``."""

    name: ClassVar[str]

    @classmethod
    def from_settings(
        cls, settings: Settings, *, store: Store, embedder: Embedder | None = None
    ) -> Retriever:
        """The retriever the settings describe, over ``store``; ``embedder`` defaults to the
        settings' (loaded only by retrievers that embed the question)."""
        ...

    def retrieve(self, question: str, filters: Filters, k: int) -> Retrieval:
        """At most ``k`` hits within ``filters``, best first, each a chunk the catalog holds,
        with the seconds each search took."""
        ...


class Search(Protocol):
    """One store-facing search whose scored candidates fusion can combine."""

    name: ClassVar[str]

    def search(self, question: str, filters: Filters) -> list[Signal]:
        """Scored candidates within ``filters``, one list per signal, before fusion."""
        ...


class FusedRetriever(ABC):
    """Base of the shipped retrievers: run the searches, fuse their signals, cut to ``k``.

    A subclass sets ``name`` and implements ``search``; a composite overrides ``searches``.
    """

    name: ClassVar[str]

    def __init__(self, store: Store, fusion: Fusion) -> None:
        self.store = store
        self.fusion = fusion

    @property
    def searches(self) -> Sequence[Search]:
        """The searches whose signals are fused, each timed under its own name: itself."""
        return [self]

    @abstractmethod
    def search(self, question: str, filters: Filters) -> list[Signal]:
        """Scored candidates within ``filters``, one list per signal, before fusion."""

    def retrieve(self, question: str, filters: Filters, k: int) -> Retrieval:
        """At most ``k`` fused hits within ``filters``, best first.

        Hits whose chunk the catalog does not hold (vectors of an interrupted write) are
        skipped.  ``timings`` has the seconds each search took, under its name.  Several
        searches run at once: the first on this thread, the others on ``_SEARCHES``'
        threads (numpy, SQLite and the model release the interpreter, so dense and keyword
        search share the machine's cores); their signals are fused in the order of
        ``searches``.
        """
        parts = list(self.searches)
        pending = [_SEARCHES.submit(_timed, part, question, filters) for part in parts[1:]]
        done = [_timed(parts[0], question, filters), *(f.result() for f in pending)]
        signals = [s for found, _ in done for s in found]
        timings = {part.name: seconds for part, (_, seconds) in zip(parts, done, strict=True)}
        recency = self.fusion.recency_for(question, filters.as_of)
        published = self.store.catalog.published_days(_articles(signals)) if recency else None
        hits = self.fusion.fuse(signals, recency=recency, published=published)
        known = self.store.chunks([h.chunk_id for h in hits[: 4 * k]])
        return Retrieval(hits=[h for h in hits if h.chunk_id in known][:k], timings=timings)


_SEARCHES = ThreadPoolExecutor(4, thread_name_prefix="newsdesk-search")
"""Threads for a retriever's searches after its first (they submit work only to ``_LEVELS``)."""

_LEVELS = ThreadPoolExecutor(4, thread_name_prefix="newsdesk-keyword-level")
"""Threads for the article level of keyword searches (they submit no work of their own)."""


def _timed(part: Search, question: str, filters: Filters) -> tuple[list[Signal], float]:
    """The search's signals, and the seconds it took."""
    started = time.perf_counter()
    found = part.search(question, filters)
    return found, time.perf_counter() - started


class DenseRetriever(FusedRetriever):
    """Nearest chunk vectors in Chroma to the embedded question."""

    name = "dense"

    def __init__(
        self, store: Store, embedder: Embedder, fusion: Fusion, *, candidates: int
    ) -> None:
        super().__init__(store, fusion)
        self.embedder = embedder
        self.candidates = candidates

    @classmethod
    def from_settings(
        cls, settings: Settings, *, store: Store, embedder: Embedder | None = None
    ) -> DenseRetriever:
        """A dense retriever taking ``2 * candidates`` chunks (most articles have several)."""
        return cls(
            store,
            embedder or get_embedder(settings),
            Fusion.from_settings(settings),
            candidates=2 * settings.retrieval.candidates,
        )

    def search(self, question: str, filters: Filters) -> list[Signal]:
        """One signal, "dense": the ``candidates`` chunks most cosine-similar to the question
        among those the filters admit, scored 1 - cosine distance.  The store applies the
        filter on outlet and publication day by the way its selectivity makes cheaper, and
        counts only chunks the catalog holds (``Store.search_vectors``).  In a new process
        the vectors are made ready on other threads while the model loads and embeds the
        question: the scan table read into memory from the start, or Chroma opened once
        both threads' imports are done (in turn)."""
        if not self.store.read_scan_ahead():
            self.embedder.load_libraries()
            self.store.open_vectors_in_background()
        vector = self.embedder.embed_query(question)
        found = self.store.search_vectors(
            vector, self.candidates, within=filters.keyword_filter()
        )
        return [Signal("dense", found)]


class KeywordRetriever(FusedRetriever):
    """BM25 over every chunk and over every whole article (title and text)."""

    name = "bm25"

    def __init__(self, store: Store, fusion: Fusion, *, candidates: int) -> None:
        super().__init__(store, fusion)
        self.candidates = candidates

    @classmethod
    def from_settings(
        cls, settings: Settings, *, store: Store, embedder: Embedder | None = None
    ) -> KeywordRetriever:
        """A keyword retriever; ``embedder`` is not used."""
        return cls(store, Fusion.from_settings(settings), candidates=settings.retrieval.candidates)

    def search(self, question: str, filters: Filters) -> list[Signal]:
        """Two signals: "chunk_bm25", the ``4 * candidates`` best chunks, and "article_bm25"
        (article level), the ``2 * candidates`` best articles, each among those the filters
        admit and with a positive score.  The two levels are searched at once, the articles
        on one of ``_LEVELS``' threads."""
        index = self.store.keyword_index()
        n = self.candidates
        articles = _LEVELS.submit(_bm25, index.articles, question, filters, 2 * n)
        chunks = _bm25(index.chunks, question, filters, 4 * n)
        return [
            Signal("chunk_bm25", chunks),
            Signal("article_bm25", articles.result(), level="article"),
        ]


class HybridRetriever(FusedRetriever):
    """Dense and keyword searches, fused (timings under "dense" and "bm25")."""

    name = "hybrid"

    def __init__(self, parts: Sequence[Search], store: Store, fusion: Fusion) -> None:
        super().__init__(store, fusion)
        self.parts = list(parts)

    @property
    def searches(self) -> Sequence[Search]:
        """The composed searches."""
        return self.parts

    def search(self, question: str, filters: Filters) -> list[Signal]:
        """Every part's signals, in the order of ``parts``."""
        return [s for part in self.parts for s in part.search(question, filters)]

    @classmethod
    def from_settings(
        cls, settings: Settings, *, store: Store, embedder: Embedder | None = None
    ) -> HybridRetriever:
        """Dense then keyword search, fused with the settings' weights."""
        parts = [
            DenseRetriever.from_settings(settings, store=store, embedder=embedder),
            KeywordRetriever.from_settings(settings, store=store),
        ]
        return cls(parts, store, Fusion.from_settings(settings))


RETRIEVERS: dict[str, type[Retriever]] = {
    "dense": DenseRetriever,
    "bm25": KeywordRetriever,
    "hybrid": HybridRetriever,
}
"""Retriever classes by the name the ``retriever`` setting gives."""


def get_retriever(
    name: str, *, settings: Settings, store: Store, embedder: Embedder | None = None
) -> Retriever:
    """The registered retriever called ``name``, built from ``settings`` over ``store``.
    Raises ConfigError, naming the known retrievers, for an unknown name."""
    return retriever_class(name).from_settings(settings, store=store, embedder=embedder)


def retriever_class(name: str) -> type[Retriever]:
    """The retriever class registered as ``name``; ConfigError naming the known ones if none."""
    try:
        return RETRIEVERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown retriever {name!r}", hint=f"use one of {', '.join(RETRIEVERS)}"
        ) from None


def retrieve(
    question: str,
    filters: Filters | None = None,
    *,
    mode: str | None = None,
    k: int | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
) -> Retrieval:
    """The ``k`` chunks (default: the ``top_k`` setting) most likely to answer ``question``
    within ``filters``, best first.

    ``mode`` names the retriever in ``RETRIEVERS`` (default: the ``retriever`` setting): "dense"
    (Chroma only), "bm25" (keyword signals only) or "hybrid" (both).  Raises ConfigError for
    an unknown mode and NothingIndexed when the index is empty.
    """
    settings = settings or get_settings()
    store = store or open_store(settings)
    retriever = get_retriever(
        mode or settings.retrieval.retriever, settings=settings, store=store, embedder=embedder
    )
    if store.count_articles() == 0:
        raise NothingIndexed(settings.index.data_dir)
    return retriever.retrieve(question, filters or Filters(), k or settings.retrieval.top_k)


def _bm25(level: KeywordLevel, question: str, filters: Filters, n: int) -> Scored:
    """The ``n`` best-scoring ids of one keyword level among those the filters admit."""
    return level.search(question, n, filters.keyword_filter())


def _articles(signals: Sequence[Signal]) -> set[str]:
    """The article ids the signals' candidates belong to."""
    return {
        cid if s.level == "article" else article_of(cid) for s in signals for cid, _ in s.scored
    }
