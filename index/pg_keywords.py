"""Keyword search in server mode: PostgreSQL full-text search over the catalog's own tables.

``PgKeywords.load(catalog)`` is the entry point: the ``KeywordSearch`` of a ``PgCatalog`` as of
its current generation.  Nothing is kept on disk and nothing is rebuilt: the chunks' and
articles' ``tsvector`` columns (GIN-indexed, written in the catalog's own transaction) are the
index, so every replica searches exactly what is committed.  Each level keeps in memory only
the facets the query side filters with (id, outlet, day, has a vector), read in one snapshot
with the generation they belong to.

A question becomes an OR query of its stemmed words (``plainto_tsquery`` with its ``&`` turned
into ``|``: BM25 ranks any document sharing a word, and so must this).  Ranking has two stages
in one SQL statement: ``ts_rank`` (normalised by document length) picks the best
``RERANK_POOL`` documents using the GIN index, then BM25 with the embedded mode's parameters
re-scores them exactly (term frequencies and lengths from the ``tsvector``, document frequencies
counted through the GIN index and kept per generation), since ``ts_rank`` alone has no inverse
document frequency and loses to BM25 on RealTime QA (benchmarks/RESULTS.md).  Filters run in the
first stage, before any cut: by outlet and day (``search(..., outlets=, since=, until=)``) or by
a mask over the level's ids (the ``KeywordLevel`` protocol).
"""

from __future__ import annotations

import math
from typing import Any

from index.catalog import Facets
from index.keywords import BM25_PARAMS
from index.pg_catalog import TS_CONFIG, PgCatalog

RANK = "ts_rank(d.tsv, q.q, 1)"
"""First stage: how a document ``d`` ranks for the query ``q`` (term frequency divided by 1 +
log(document length); variants compared in benchmarks/RESULTS.md, `benchmarks/server_mode.py`)."""

RERANK_POOL = 300
"""Second stage: the first stage's best this many are re-scored with BM25 (0: no second stage)."""

_QUERY = (
    f"regexp_replace(plainto_tsquery('{TS_CONFIG}', %(q)s)::text, "
    r"' (&|<->|<\d+>) ', ' | ', 'g')::tsquery"
)
class PgKeywordLevel:
    """Full-text search over chunks or over whole articles, with the facets of each id."""

    def __init__(self, catalog: PgCatalog, *, chunks: bool, facets: Facets) -> None:
        import numpy as np

        self.catalog = catalog
        self.level = "chunks" if chunks else "articles"
        self.ids: list[str] = list(facets)
        rows = list(facets.values())
        self.article_ids = np.array([r[0] for r in rows], dtype=object)
        self.outlets = np.array([r[1] for r in rows], dtype=object)
        self.days = np.array([r[2] for r in rows], dtype=np.int64)
        self.dense = np.array([r[3] for r in rows], dtype=bool)
        count, mean = catalog._one(f"SELECT count(*), avg(tokens) FROM {self.level}")
        self.documents, self.mean_tokens = int(count), float(mean or 1.0)
        self._df: dict[str, int] = {}  # document frequency per lexeme, at this generation

    def select(self, mask: Any, *, dense: bool = False) -> list[str]:
        """The ids where ``mask`` is true (and, with ``dense``, that have a vector)."""
        import numpy as np

        keep = mask & self.dense if dense else mask
        return np.asarray(self.ids, dtype=object)[keep].tolist()

    def published_days(self) -> dict[str, int]:
        """Indexed id → publication day as YYYYMMDD (0 when unknown)."""
        return dict(zip(self.ids, (int(d) for d in self.days), strict=True))

    def search(
        self,
        query: str,
        k: int,
        mask: Any = None,
        *,
        outlets: list[str] | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[tuple[str, float]]:
        """Top-k (id, rank > 0) for the query, best first, among the ids where ``mask`` (aligned
        with ``ids``) is true, of the given ``outlets``, published from day ``since`` to day
        ``until`` (YYYYMMDD; a date bound excludes undated articles)."""
        if mask is not None and not mask.any():
            return []
        chunks = self.level == "chunks"
        facet = "a" if chunks else "d"  # where outlet and day live
        where = ["d.tsv @@ q.q"]
        params: dict[str, Any] = {"q": query, "k": k}
        if mask is not None and not mask.all():
            # send the shorter list: date bounds such as as_of usually leave out few ids
            admitted = int(mask.sum())
            if admitted <= len(self.ids) - admitted:
                where.append("d.id = ANY(%(ids)s)")
                params["ids"] = self.select(mask)
            else:
                where.append("NOT d.id = ANY(%(ids)s)")
                params["ids"] = self.select(~mask)
        if outlets:
            where.append(f"{facet}.outlet = ANY(%(outlets)s)")
            params["outlets"] = list(outlets)
        if since:
            where.append(f"{facet}.day >= %(since)s")
            params["since"] = since
        if until:
            where.append(f"{facet}.day <= %(until)s AND {facet}.day > 0")
            params["until"] = until
        source = "articles d"
        if chunks:
            filtered = outlets or since or until
            source = "chunks d JOIN articles a ON a.id = d.article_id" if filtered else "chunks d"
        first = (f"SELECT d.id, d.tsv, d.tokens, {RANK} AS rank "
                 f"FROM {source} CROSS JOIN (SELECT {_QUERY} AS q) q "
                 f"WHERE {' AND '.join(where)} ORDER BY rank DESC, d.id")
        if not RERANK_POOL:
            rows = self.catalog._rows(f"SELECT id, rank FROM ({first} LIMIT %(k)s) c", params)
            return [(i, float(r)) for i, r in rows if r > 0]
        idf = self._idf(query)
        if not idf:
            return []
        params |= {"pool": max(RERANK_POOL, k), "lexemes": list(idf), "idf": list(idf.values()),
                   "k1": BM25_PARAMS["k1"], "b": BM25_PARAMS["b"], "mean": self.mean_tokens}
        rows = self.catalog._rows(
            f"WITH c AS ({first} LIMIT %(pool)s), "
            "w AS (SELECT * FROM unnest(%(lexemes)s::text[], %(idf)s::float8[]) AS w(lexeme, idf)) "
            "SELECT c.id, sum(w.idf * t.tf / (t.tf + %(k1)s * (1 - %(b)s + %(b)s * c.tokens "
            "/ %(mean)s))) AS score FROM c CROSS JOIN LATERAL (SELECT u.lexeme, "
            "COALESCE(array_length(u.positions, 1), 1)::float8 AS tf FROM unnest(c.tsv) u) t "
            "JOIN w ON w.lexeme = t.lexeme GROUP BY c.id ORDER BY score DESC, c.id LIMIT %(k)s",
            params,
        )
        return [(i, float(r)) for i, r in rows if r > 0]

    def _idf(self, query: str) -> dict[str, float]:
        """The query's lexemes with their BM25 (Lucene) inverse document frequency."""
        lexemes = [r[0] for r in self.catalog._rows(
            f"SELECT unnest(tsvector_to_array(to_tsvector('{TS_CONFIG}', %s)))", (query,))]
        missing = [x for x in lexemes if x not in self._df]
        if missing:
            quoted = ["'" + x.replace("\\", "\\\\").replace("'", "''") + "'" for x in missing]
            self._df.update(self.catalog._rows(
                f"SELECT t.lexeme, (SELECT count(*) FROM {self.level} x WHERE x.tsv @@ t.q::tsquery) "
                "FROM unnest(%s::text[], %s::text[]) AS t(lexeme, q)", (missing, quoted)))
        n = self.documents
        return {x: math.log(1 + (n - self._df[x] + 0.5) / (self._df[x] + 0.5)) for x in lexemes}


class PgKeywords:
    """Keyword search over chunks and articles in the catalog's database, at one generation."""

    def __init__(self, chunks: PgKeywordLevel, articles: PgKeywordLevel, generation: int) -> None:
        self.chunks = chunks
        self.articles = articles
        self.generation = generation

    @property
    def chunk_ids(self) -> list[str]:
        """Ids of the searchable chunks."""
        return self.chunks.ids

    @classmethod
    def load(cls, catalog: Any) -> PgKeywords:
        """The keyword search of ``catalog`` (a ``PgCatalog``) as committed now."""
        with catalog.snapshot():
            return cls(
                PgKeywordLevel(catalog, chunks=True, facets=catalog.facets(chunks=True)),
                PgKeywordLevel(catalog, chunks=False, facets=catalog.facets(chunks=False)),
                catalog.generation,
            )
