"""Keyword search: BM25 over every chunk and over every whole article, derived from the catalog.

``KeywordSearch`` and ``KeywordLevel`` are the interface the query side reads; ``KeywordIndex``
implements them with bm25s.  ``load_or_build(catalog, path)`` is the entry point: the index saved
at ``path`` when it matches the catalog's generation, else one built from the catalog and saved
there.  Each level carries the catalog's facets of its ids (article, outlet, day, has a vector),
aligned with its ids, so filters become a boolean mask applied before the top-k cut.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Protocol

from index.catalog import Catalog, Facets, IndexedChunk

# Anserini's defaults; on RealTime QA they beat bm25s's k1=1.5, b=0.75 (benchmarks/RESULTS.md):
# a lower b penalises long articles less, and news answers often sit deep in long ones.
BM25_PARAMS = {"k1": 0.9, "b": 0.4}


class KeywordLevel(Protocol):
    """Keyword search over one kind of document (chunks, or whole articles), filterable."""

    @property
    def ids(self) -> list[str]:
        """The indexed ids, in the order of the facet arrays."""

    @property
    def outlets(self) -> Any:
        """Outlet of each id ('' when unknown), a numpy array aligned with ``ids``."""

    @property
    def days(self) -> Any:
        """Publication day of each id as YYYYMMDD (0 when undated), aligned with ``ids``."""

    def select(self, mask: Any, *, dense: bool = False) -> list[str]:
        """The ids where ``mask`` is true (and, with ``dense``, that have a vector)."""

    def published_days(self) -> dict[str, int]:
        """Indexed id → publication day as YYYYMMDD (0 when unknown)."""

    def search(self, query: str, k: int, mask: Any = None) -> list[tuple[str, float]]:
        """Top-k (id, score > 0) for the query, only where ``mask`` (aligned with ``ids``) is true."""


class KeywordSearch(Protocol):
    """Keyword search over chunks and over articles, as of one catalog generation."""

    @property
    def chunks(self) -> KeywordLevel:
        """Search over every chunk (vector or not)."""

    @property
    def articles(self) -> KeywordLevel:
        """Search over every article's title and text."""

    @property
    def generation(self) -> int:
        """The catalog generation this index reflects."""


class Bm25Level:
    """One bm25s index (over chunks or over whole articles) with per-document facets."""

    def __init__(self, retriever: Any, ids: list[str]) -> None:
        self.retriever = retriever
        self.ids = ids
        self.article_ids: Any = None
        self.outlets: Any = None
        self.days: Any = None
        self.dense: Any = None

    @classmethod
    def build(cls, ids: list[str], texts: list[str]) -> Bm25Level:
        """Index these texts under these ids."""
        import bm25s

        retriever = bm25s.BM25(**BM25_PARAMS)
        if ids:
            retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever, ids)

    def attach_facets(self, facets: Facets) -> None:
        """Article id, outlet, day and vector flag of each id, aligned with ``ids``, for filtering."""
        import numpy as np

        rows = [facets.get(i, ("", "", 0, False)) for i in self.ids]
        self.article_ids = np.array([r[0] for r in rows], dtype=object)
        self.outlets = np.array([r[1] for r in rows], dtype=object)
        self.days = np.array([r[2] for r in rows], dtype=np.int64)
        self.dense = np.array([r[3] for r in rows], dtype=bool)

    def select(self, mask: Any, *, dense: bool = False) -> list[str]:
        """The ids where ``mask`` is true (and, with ``dense``, that have a vector in Chroma)."""
        import numpy as np

        keep = mask & self.dense if dense else mask
        return np.asarray(self.ids, dtype=object)[keep].tolist()

    def published_days(self) -> dict[str, int]:
        """Indexed id → publication day as YYYYMMDD (0 when unknown)."""
        return dict(zip(self.ids, (int(d) for d in self.days), strict=True))

    def search(self, query: str, k: int, mask: Any = None) -> list[tuple[str, float]]:
        """Top-k (id, BM25 score) for the query, only where ``mask`` is true."""
        import numpy as np

        if not self.ids:
            return []
        known = self.retriever.vocab_dict
        words = [[w for w in tokenize([query], return_ids=False)[0] if w in known]]
        if not words[0]:
            return []
        weights = None if mask is None else mask.astype(np.float32)
        docs, scores = self.retriever.retrieve(
            words, k=min(k, len(self.ids)), show_progress=False, weight_mask=weights, n_threads=1
        )
        return [
            (self.ids[int(d)], float(sc)) for d, sc in zip(docs[0], scores[0], strict=True) if sc > 0
        ]

    def save(self, path: Path) -> None:
        """Write into ``path`` (a fresh folder)."""
        path.mkdir(parents=True)
        if self.ids:
            self.retriever.save(str(path))
        (path / "ids.json").write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, path: Path) -> Bm25Level:
        """Read what ``save`` wrote."""
        import bm25s

        ids = json.loads((path / "ids.json").read_text())
        return cls(bm25s.BM25.load(str(path)) if ids else bm25s.BM25(), ids)


def tokenize(texts: list[str], return_ids: bool = True) -> Any:
    """Tokens as bm25s wants them: lower-cased, English stop words out, Snowball-stemmed."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        texts,
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        show_progress=False,
        return_ids=return_ids,
    )


class KeywordIndex:
    """BM25 over every chunk and over every whole article, tagged with the catalog generation."""

    def __init__(self, chunks: Bm25Level, articles: Bm25Level, generation: int) -> None:
        self.chunks = chunks
        self.articles = articles
        self.generation = generation

    @property
    def chunk_ids(self) -> list[str]:
        """Ids of the indexed chunks."""
        return self.chunks.ids

    tokenize = staticmethod(tokenize)

    @classmethod
    def build(
        cls, chunks: list[IndexedChunk], articles: list[tuple[str, str]], generation: int
    ) -> KeywordIndex:
        """Index these chunks and these (article id, title + text) pairs."""
        return cls(
            Bm25Level.build([c.id for c in chunks], [c.embed_text for c in chunks]),
            Bm25Level.build([a for a, _ in articles], [t for _, t in articles]),
            generation,
        )

    def save(self, path: Path) -> None:
        """Persist at ``path``; written to a temporary folder, then swapped in."""
        tmp = path.with_name(path.name + ".tmp")
        old = path.with_name(path.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.chunks.save(tmp / "chunks")
        self.articles.save(tmp / "articles")
        (tmp / "newsdesk.json").write_text(
            json.dumps({"generation": self.generation, "params": BM25_PARAMS})
        )
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, path: Path, generation: int) -> KeywordIndex | None:
        """The saved index if it matches this catalog generation, else None."""
        try:
            info = json.loads((path / "newsdesk.json").read_text())
            if info.get("generation") != generation or info.get("params") != BM25_PARAMS:
                return None
            return cls(
                Bm25Level.load(path / "chunks"), Bm25Level.load(path / "articles"), generation
            )
        except Exception:  # noqa: BLE001 - a missing or damaged derived index is rebuilt
            return None


def load_or_build(catalog: Catalog, path: Path) -> KeywordIndex:
    """The BM25 index of the catalog as it is now, with its facets attached: the one saved at
    ``path`` if it has the catalog's generation, else one built from the catalog and saved."""
    with catalog.snapshot():
        generation = catalog.generation
        index = KeywordIndex.load(path, generation)
        if index is None:
            index = KeywordIndex.build(catalog.all_chunks(), catalog.article_texts(), generation)
            index.save(path)
        index.chunks.attach_facets(catalog.facets(chunks=True))
        index.articles.attach_facets(catalog.facets(chunks=False))
        return index
