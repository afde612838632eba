"""Keyword search in server mode: PostgreSQL full-text search over the catalog's own tables.

``PgKeywords.load(catalog)`` is the entry point (what ``PgCatalog.keywords`` returns): the
``KeywordSearch`` of a ``PgCatalog`` as of its current generation.  Nothing is kept on disk and
nothing is rebuilt: the chunks' and articles' ``tsvector`` columns (GIN-indexed, written in the
catalog's own transaction) are the index, so every replica searches exactly what is committed.
Each level keeps in memory only its document count and mean length, read in one snapshot with
the generation they belong to, and the document frequencies its queries needed.

A question becomes an OR query of its stemmed words (``plainto_tsquery`` with its ``&`` turned
into ``|``: BM25 ranks any document sharing a word, and so must this).  Ranking has two stages
in one SQL statement: ``ts_rank`` (normalised by document length) picks the best
``RERANK_POOL`` documents using the GIN index, then BM25 with the embedded mode's parameters
re-scores them exactly (term frequencies and lengths from the ``tsvector``, document frequencies
counted through the GIN index and kept per generation), since ``ts_rank`` alone has no inverse
document frequency and loses to BM25 on RealTime QA (benchmarks/RESULTS.md).  The
``KeywordFilter`` (outlets, publication-day window) runs in the first stage, before any cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from index.keywords import BM25_PARAMS, KeywordFilter

TS_CONFIG = "english"  # PostgreSQL's Snowball English stemmer and stop words, as bm25s uses

RANK = "ts_rank(d.tsv, q.q, 1)"
"""First stage: how a document ``d`` ranks for the query ``q`` (term frequency divided by 1 +
log(document length); variants compared in benchmarks/RESULTS.md, `benchmarks/server_mode.py`)."""

RERANK_POOL = 300
"""Second stage: the first stage's best this many are re-scored with BM25 (0: no second stage)."""

_QUERY = (
    f"regexp_replace(plainto_tsquery('{TS_CONFIG}', %(q)s)::text, "
    r"' (&|<->|<\d+>) ', ' | ', 'g')::tsquery"
)
class Database(Protocol):
    """What the keyword search reads through: the ``PgCatalog`` whose tables it searches."""

    @property
    def generation(self) -> int: ...

    def snapshot(self) -> AbstractContextManager[None]: ...

    def _rows(self, query: Any, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]: ...

    def _one(self, query: Any, params: Sequence[Any] = ()) -> Any: ...


class PgKeywordLevel:
    """Full-text search over chunks or over whole articles (a ``KeywordLevel``)."""

    def __init__(self, catalog: Database, *, chunks: bool) -> None:
        self.catalog = catalog
        self.level = "chunks" if chunks else "articles"
        count, mean = catalog._one(f"SELECT count(*), avg(tokens) FROM {self.level}")
        self.documents, self.mean_tokens = int(count), float(mean or 1.0)
        self._df: dict[str, int] = {}  # document frequency per lexeme, at this generation

    def search(
        self, query: str, k: int, where: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (id, score > 0) for the query, best first, among the documents ``where``
        admits (its outlets, published from ``first_day`` to ``last_day``, YYYYMMDD; a date
        bound excludes undated articles)."""
        if k <= 0:
            return []
        chunks = self.level == "chunks"
        facet = "a" if chunks else "d"  # where outlet and day live
        clauses = ["d.tsv @@ q.q"]
        params: dict[str, Any] = {"q": query, "k": k}
        where = where or KeywordFilter()
        if where.outlets:
            unknown = f" OR {facet}.outlet IS NULL" if "" in where.outlets else ""
            clauses.append(f"({facet}.outlet = ANY(%(outlets)s){unknown})")
            params["outlets"] = list(where.outlets)
        if where.first_day:
            clauses.append(f"{facet}.day >= %(since)s")
            params["since"] = where.first_day
        if where.last_day:
            clauses.append(f"{facet}.day <= %(until)s AND {facet}.day > 0")
            params["until"] = where.last_day
        source = "articles d"
        if chunks:
            filtered = where.outlets or where.first_day or where.last_day
            source = "chunks d JOIN articles a ON a.id = d.article_id" if filtered else "chunks d"
        first = (f"SELECT d.id, d.tsv, d.tokens, {RANK} AS rank "
                 f"FROM {source} CROSS JOIN (SELECT {_QUERY} AS q) q "
                 f"WHERE {' AND '.join(clauses)} ORDER BY rank DESC, d.id")
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
    """Keyword search over chunks and articles in the catalog's database, at one generation
    (a ``KeywordSearch``)."""

    def __init__(self, chunks: PgKeywordLevel, articles: PgKeywordLevel, generation: int) -> None:
        self.chunks = chunks
        self.articles = articles
        self.generation = generation

    @classmethod
    def load(cls, catalog: Database) -> PgKeywords:
        """The keyword search of ``catalog`` as committed now."""
        with catalog.snapshot():
            return cls(
                PgKeywordLevel(catalog, chunks=True),
                PgKeywordLevel(catalog, chunks=False),
                catalog.generation,
            )
