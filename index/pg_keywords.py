"""Keyword search in server mode: the embedded mode's BM25, over an inverted index in PostgreSQL.

The same index as the embedded catalog's (``index.keywords``), in the catalog's own schema: a
row per keyword document (every chunk's embedded text, every article's title and text) with its
length and filter facets, a row per (document, term) with the term's frequency, and per-level
totals.  The terms are the project's own tokens (``index.keywords.tokenize``: bm25s's lower-
casing, English stop words and Snowball stemmer), so both modes score the same tokens with the
same BM25 (k1, b and Lucene idf of ``BM25_PARAMS``), over every document sharing a term: no
candidate cut, nothing approximated (benchmarks/RESULTS.md measures both modes on RealTime QA).

``PgCatalog`` writes the index in its commit transaction (``write`` after ``remove``, the
tokens made by ``documents`` before the transaction), so it is crash-consistent by
construction, every replica searches exactly what is committed, and an ingest or removal costs
only its own documents' rows.  ``PgKeywords.load(catalog)`` is the query side (what
``PgCatalog.keywords`` returns): one SQL statement per search reads the postings of the
question's terms, the totals and the filter facets in one snapshot, and applies the
``KeywordFilter`` before the top-k cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from index.catalog import PreparedArticle
from index.dates import day_number
from index.keywords import ARTICLES, BM25_PARAMS, CHUNKS, KeywordDoc, KeywordFilter, tokenize

SCHEMA = """
CREATE TABLE IF NOT EXISTS kw_docs (
    doc bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    level smallint NOT NULL,
    key text NOT NULL,
    article_id text NOT NULL REFERENCES articles(id),
    outlet text NOT NULL,
    day integer NOT NULL,
    length integer NOT NULL,
    UNIQUE (level, key)
);
CREATE INDEX IF NOT EXISTS kw_docs_article ON kw_docs(article_id);
CREATE TABLE IF NOT EXISTS kw_postings (
    doc bigint NOT NULL,
    term text NOT NULL,
    level smallint NOT NULL,
    tf integer NOT NULL,
    PRIMARY KEY (doc, term)
);
CREATE INDEX IF NOT EXISTS kw_postings_term ON kw_postings(level, term) INCLUDE (doc, tf);
CREATE TABLE IF NOT EXISTS kw_totals (
    level smallint PRIMARY KEY, docs bigint NOT NULL, length bigint NOT NULL
);
"""
"""The index's tables; ``kw_docs`` rows must go (``remove``) before their article's row."""

Tokenized = list[tuple[KeywordDoc, Counter[str]]]


def documents(batch: Sequence[PreparedArticle]) -> Tokenized:
    """The keyword documents of these articles with their terms' frequencies, as the embedded
    catalog makes them: each chunk's embedded text, and the article's title and text."""
    docs: list[KeywordDoc] = []
    for prepared in batch:
        article = prepared.article
        outlet, day = article.outlet or "", day_number(article.published)
        docs += [KeywordDoc(CHUNKS, cid, article.id, outlet, day, chunk.embed_text)
                 for cid, chunk in zip(prepared.chunk_ids(), prepared.chunks, strict=True)]
        docs.append(KeywordDoc(ARTICLES, article.id, article.id, outlet, day,
                               f"{article.title}\n{article.text}"))
    return _tokenized(docs)


def _tokenized(docs: list[KeywordDoc]) -> Tokenized:
    if not docs:
        return []
    tokens = tokenize([d.text for d in docs], return_ids=False)
    return [(d, Counter(t)) for d, t in zip(docs, tokens, strict=True)]


def write(conn: Any, tokenized: Tokenized) -> None:
    """Index these documents, inside the caller's transaction; their keys must be absent."""
    if not tokenized:
        return
    docs = [d for d, _ in tokenized]
    lengths = [sum(terms.values()) for _, terms in tokenized]
    numbers = {(level, key): doc for doc, level, key in conn.execute(
        "INSERT INTO kw_docs(level, key, article_id, outlet, day, length) SELECT * FROM "
        "unnest(%s::smallint[], %s::text[], %s::text[], %s::text[], %s::int[], %s::int[]) "
        "RETURNING doc, level, key",
        ([d.level for d in docs], [d.key for d in docs], [d.article_id for d in docs],
         [d.outlet for d in docs], [d.day for d in docs], lengths))}
    with conn.cursor().copy("COPY kw_postings (doc, term, level, tf) FROM STDIN") as copy:
        for d, terms in tokenized:
            number = numbers[(d.level, d.key)]
            for term, tf in terms.items():
                copy.write_row((number, term, d.level, tf))
    total = Counter[int]()
    for d, length in zip(docs, lengths, strict=True):
        total[d.level] += length
    _add_totals(conn, Counter(d.level for d in docs), total)


def remove(conn: Any, article_ids: Iterable[str]) -> None:
    """Unindex every document (chunks and article) of these articles, inside the caller's
    transaction, before their catalog rows are deleted or replaced."""
    gone = conn.execute(
        "WITH d AS (DELETE FROM kw_docs WHERE article_id = ANY(%s) RETURNING doc, level, length),"
        " p AS (DELETE FROM kw_postings WHERE doc IN (SELECT doc FROM d)) "
        "SELECT level, count(*), sum(length) FROM d GROUP BY level", (list(article_ids),)
    ).fetchall()
    _add_totals(conn, Counter({level: -n for level, n, _ in gone}),
                Counter({level: -int(length) for level, _, length in gone}))


def rebuild(conn: Any, batch_size: int = 200) -> None:
    """Index every article of the catalog afresh, inside the caller's transaction (a catalog
    made before this index existed)."""
    conn.execute("TRUNCATE kw_postings, kw_docs, kw_totals")
    ids = [r[0] for r in conn.execute("SELECT id FROM articles ORDER BY id")]
    for i in range(0, len(ids), batch_size):
        part = ids[i : i + batch_size]
        docs = [KeywordDoc(CHUNKS, cid, aid, outlet, day, embed_text)
                for cid, aid, outlet, day, embed_text in conn.execute(
                    "SELECT c.id, c.article_id, COALESCE(a.outlet, ''), a.day, c.embed_text "
                    "FROM chunks c JOIN articles a ON a.id = c.article_id "
                    "WHERE c.article_id = ANY(%s) ORDER BY c.article_id, c.idx", (part,))]
        docs += [KeywordDoc(ARTICLES, aid, aid, outlet, day, f"{title}\n{text}")
                 for aid, outlet, day, title, text in conn.execute(
                     "SELECT id, COALESCE(outlet, ''), day, title, text FROM articles "
                     "WHERE id = ANY(%s) ORDER BY id", (part,))]
        write(conn, _tokenized(docs))


def _add_totals(conn: Any, counts: Counter[int], lengths: Counter[int]) -> None:
    for level in set(counts) | set(lengths):
        conn.execute(
            "INSERT INTO kw_totals(level, docs, length) VALUES (%s, %s, %s) ON CONFLICT (level) "
            "DO UPDATE SET docs = kw_totals.docs + excluded.docs, "
            "length = kw_totals.length + excluded.length",
            (level, counts[level], lengths[level]),
        )


class Database(Protocol):
    """What the keyword search reads through: the ``PgCatalog`` whose tables it searches."""

    @property
    def generation(self) -> int: ...

    def _rows(self, query: Any, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]: ...


_SEARCH = """
WITH q AS (SELECT term, count(*) AS n FROM unnest(%(terms)s::text[]) AS term GROUP BY term),
t AS (SELECT docs::float8 AS docs, length::float8 / docs AS mean FROM kw_totals
      WHERE level = %(level)s AND docs > 0),
p AS (SELECT doc, term, tf FROM kw_postings WHERE level = %(level)s AND term = ANY(%(terms)s)),
w AS (SELECT q.term, q.n * ln(1 + (t.docs - count(*) + 0.5) / (count(*) + 0.5)) AS idf
      FROM q JOIN p USING (term) CROSS JOIN t GROUP BY q.term, q.n, t.docs)
SELECT d.key, sum(w.idf * p.tf / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * d.length / t.mean)))
    AS score
FROM p JOIN w USING (term) JOIN kw_docs d ON d.doc = p.doc CROSS JOIN t
WHERE {where}
GROUP BY d.doc, d.key ORDER BY score DESC, d.doc LIMIT %(k)s
"""
"""BM25 of every document sharing a query term (a term repeated in the query counts each
time, as in the embedded mode); idf and the mean length are over the whole level, the filter
applies before the cut."""


class PgKeywordLevel:
    """BM25 over chunks or over whole articles (a ``KeywordLevel``)."""

    def __init__(self, catalog: Database, level: int) -> None:
        self.catalog = catalog
        self.level = level

    def search(
        self, query: str, k: int, where: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (key, BM25 score > 0) for the query among the documents ``where`` admits
        (its outlets, '' for unknown; published from ``first_day`` to ``last_day``, YYYYMMDD;
        a date bound excludes undated documents)."""
        terms = tokenize([query], return_ids=False)[0]
        if not terms or k <= 0:
            return []
        clauses = ["true"]
        params: dict[str, Any] = {"terms": list(terms), "level": self.level, "k": k,
                                  "k1": BM25_PARAMS["k1"], "b": BM25_PARAMS["b"]}
        where = where or KeywordFilter()
        if where.outlets:
            clauses.append("d.outlet = ANY(%(outlets)s)")
            params["outlets"] = list(where.outlets)
        if where.first_day:
            clauses.append("d.day >= %(since)s")
            params["since"] = where.first_day
        if where.last_day:
            clauses.append("d.day <= %(until)s AND d.day > 0")
            params["until"] = where.last_day
        rows = self.catalog._rows(_SEARCH.format(where=" AND ".join(clauses)), params)
        return [(key, float(score)) for key, score in rows if score > 0]


class PgKeywords:
    """BM25 over chunks and articles in the catalog's database (a ``KeywordSearch``), tagged
    with the generation it was opened at; every search reads the committed state."""

    def __init__(self, catalog: Database, generation: int) -> None:
        self.chunks = PgKeywordLevel(catalog, CHUNKS)
        self.articles = PgKeywordLevel(catalog, ARTICLES)
        self.generation = generation

    @classmethod
    def load(cls, catalog: Database) -> PgKeywords:
        """The keyword search of ``catalog`` as committed now."""
        return cls(catalog, catalog.generation)
