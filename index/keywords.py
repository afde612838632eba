"""Keyword search: BM25 over every chunk and over every whole article, kept inside the catalog.

An inverted index in the catalog's own SQLite file: a row per (level, stemmed term, document)
with its term frequency, a row per document with its length and filter facets (article, outlet,
publication day), and per-level totals.  ``SqliteCatalog`` writes it in the same transaction as
the articles (the commit point), so it is crash-consistent by construction and an ingest or
removal costs only its own documents' rows, whatever the archive's size.

``KeywordIndex(db, lock)`` is what the query side reads: ``.chunks`` and ``.articles`` are
``KeywordLevel``s whose ``search(query, k, where)`` scores exactly as bm25s's Lucene BM25 did
(same tokens, k1, b and idf), reading only the postings of the question's terms, and applies
the ``KeywordFilter`` to them before the top-k cut.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from index.dates import day_number

# Anserini's defaults; on RealTime QA they beat bm25s's k1=1.5, b=0.75 (benchmarks/RESULTS.md):
# a lower b penalises long articles less, and news answers often sit deep in long ones.
BM25_PARAMS = {"k1": 0.9, "b": 0.4}

CHUNKS, ARTICLES = 0, 1
"""The two levels: every chunk (its embedded text), every article (title and text)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS kw_docs (
    doc INTEGER PRIMARY KEY,
    level INTEGER NOT NULL,
    key TEXT NOT NULL,
    article_id TEXT NOT NULL,
    outlet TEXT NOT NULL,
    day INTEGER NOT NULL,
    length INTEGER NOT NULL,
    UNIQUE(level, key)
);
CREATE INDEX IF NOT EXISTS kw_docs_article ON kw_docs(article_id);
CREATE TABLE IF NOT EXISTS kw_postings (
    level INTEGER NOT NULL,
    term TEXT NOT NULL,
    doc INTEGER NOT NULL,
    tf INTEGER NOT NULL,
    PRIMARY KEY(level, term, doc)
) WITHOUT ROWID;
DROP INDEX IF EXISTS kw_postings_doc;
CREATE TABLE IF NOT EXISTS kw_totals (
    level INTEGER PRIMARY KEY, docs INTEGER NOT NULL, length INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class KeywordDoc:
    """One document to index: its key (chunk or article id), level, facets and text."""

    level: int
    key: str
    article_id: str
    outlet: str
    day: int
    text: str


@dataclass(frozen=True)
class KeywordFilter:
    """Which documents a search may return: outlets, and a publication-day window (YYYYMMDD;
    an undated document, day 0, fails any bound)."""

    outlets: tuple[str, ...] | None = None
    first_day: int | None = None
    last_day: int | None = None

    def admits(self, outlets: Any, days: Any) -> Any:
        """A boolean mask over aligned outlet and day arrays."""
        import numpy as np

        keep = np.ones(len(days), dtype=bool)
        if self.outlets:
            keep &= np.isin(outlets, list(self.outlets))
        if self.first_day:
            keep &= days >= self.first_day
        if self.last_day:
            keep &= (days <= self.last_day) & (days > 0)
        return keep


def tokenize(texts: list[str], return_ids: bool = True) -> Any:
    """Tokens as bm25s makes them: lower-cased, English stop words out, Snowball-stemmed."""
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        texts,
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        show_progress=False,
        return_ids=return_ids,
    )


def add_documents(db: sqlite3.Connection, docs: Sequence[KeywordDoc]) -> None:
    """Index these documents (inside the caller's transaction); their keys must be new."""
    if not docs:
        return
    token_lists = tokenize([d.text for d in docs], return_ids=False)
    lengths = Counter[int]()
    counts = Counter[int]()
    for doc, tokens in zip(docs, token_lists, strict=True):
        cursor = db.execute(
            "INSERT INTO kw_docs(level, key, article_id, outlet, day, length) "
            "VALUES (?,?,?,?,?,?)",
            (doc.level, doc.key, doc.article_id, doc.outlet, doc.day, len(tokens)),
        )
        number = cursor.lastrowid
        db.executemany(
            "INSERT INTO kw_postings(level, term, doc, tf) VALUES (?,?,?,?)",
            [(doc.level, term, number, tf) for term, tf in Counter(tokens).items()],
        )
        lengths[doc.level] += len(tokens)
        counts[doc.level] += 1
    _add_totals(db, counts, lengths)


def add_articles(db: sqlite3.Connection, article_ids: Sequence[str]) -> None:
    """Index these articles as the catalog now holds them (inside the caller's transaction):
    each chunk's embedded text, and the article's title and text."""
    add_documents(db, _documents_of(db, article_ids))


def rebuild(db: sqlite3.Connection) -> None:
    """Index every article of the catalog afresh (inside the caller's transaction)."""
    for table in ("kw_postings", "kw_docs", "kw_totals"):
        db.execute(f"DELETE FROM {table}")
    ids = [r[0] for r in db.execute("SELECT id FROM articles")]
    for i in range(0, len(ids), 200):
        add_articles(db, ids[i : i + 200])


def _documents_of(db: sqlite3.Connection, article_ids: Sequence[str]) -> list[KeywordDoc]:
    """The keyword documents of these stored articles: each chunk's embedded text, and the
    article's title and text."""
    docs: list[KeywordDoc] = []
    for article_id in article_ids:
        title, text, outlet, published = db.execute(
            "SELECT title, text, COALESCE(outlet, ''), published FROM articles WHERE id=?",
            (article_id,),
        ).fetchone()
        day = day_number(date.fromisoformat(published)) if published else 0
        docs += [
            KeywordDoc(CHUNKS, chunk_id, article_id, outlet, day, embed_text)
            for chunk_id, embed_text in db.execute(
                "SELECT id, embed_text FROM chunks WHERE article_id=? ORDER BY idx", (article_id,)
            )
        ]
        docs.append(KeywordDoc(ARTICLES, article_id, article_id, outlet, day, f"{title}\n{text}"))
    return docs


def remove_articles(db: sqlite3.Connection, article_ids: Iterable[str]) -> None:
    """Unindex every document (chunks and article) of these articles, inside the caller's
    transaction, before the catalog deletes their rows: their text, tokenized again, names the
    postings to delete (so postings need no second index by document)."""
    ids = list(article_ids)
    docs = _documents_of(db, [i for i in ids if _stored(db, i)])
    numbers: dict[tuple[int, str], tuple[int, int]] = {}
    for article_id in ids:
        for doc, level, key, length in db.execute(
            "SELECT doc, level, key, length FROM kw_docs WHERE article_id=?", (article_id,)
        ):
            numbers[(level, key)] = (doc, length)
    lengths = Counter[int]()
    counts = Counter[int]()
    for doc, tokens in zip(docs, tokenize([d.text for d in docs], return_ids=False), strict=True):
        if (doc.level, doc.key) not in numbers:
            continue
        number, length = numbers.pop((doc.level, doc.key))
        db.executemany(
            "DELETE FROM kw_postings WHERE level=? AND term=? AND doc=?",
            [(doc.level, term, number) for term in set(tokens)],
        )
        lengths[doc.level] -= length
        counts[doc.level] -= 1
    for article_id in ids:
        db.execute("DELETE FROM kw_docs WHERE article_id=?", (article_id,))
    _add_totals(db, counts, lengths)


def _stored(db: sqlite3.Connection, article_id: str) -> bool:
    return db.execute("SELECT 1 FROM articles WHERE id=?", (article_id,)).fetchone() is not None


def _add_totals(db: sqlite3.Connection, counts: Counter[int], lengths: Counter[int]) -> None:
    for level in set(counts) | set(lengths):
        db.execute(
            "INSERT INTO kw_totals(level, docs, length) VALUES (?,?,?) ON CONFLICT(level) DO "
            "UPDATE SET docs = docs + excluded.docs, length = length + excluded.length",
            (level, counts[level], lengths[level]),
        )


class KeywordLevel:
    """BM25 over one level (chunks or articles) of the catalog's inverted index."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock, level: int) -> None:
        self.db, self.lock, self.level = db, lock, level

    def search(
        self, query: str, k: int, where: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (key, BM25 score > 0) for the query among the documents ``where`` admits.

        Reads the postings of the query's terms only (a term repeated in the query counts
        each time, as in bm25s); idf and the average length are over the whole level.
        """
        import numpy as np

        terms = tokenize([query], return_ids=False)[0]
        if not terms or k <= 0:
            return []
        k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
        with self.lock, _snapshot(self.db):
            totals = self.db.execute(
                "SELECT docs, length FROM kw_totals WHERE level=?", (self.level,)
            ).fetchone()
            if not totals or not totals[0]:
                return []
            n_docs, avg_length = totals[0], totals[1] / totals[0]
            postings = {
                term: self.db.execute(
                    "SELECT p.doc, p.tf, d.length, d.outlet, d.day, d.key FROM kw_postings p "
                    "JOIN kw_docs d ON d.doc = p.doc WHERE p.level=? AND p.term=?",
                    (self.level, term),
                ).fetchall()
                for term in set(terms)
            }
        parts = []
        for term in terms:
            rows = postings[term]
            if rows:
                idf = np.log(1 + (n_docs - len(rows) + 0.5) / (len(rows) + 0.5))
                parts.append((rows, idf))
        if not parts:
            return []
        rows = [r for part, _ in parts for r in part]
        docs = np.array([r[0] for r in rows], dtype=np.int64)
        tf = np.array([r[1] for r in rows], dtype=np.float64)
        length = np.array([r[2] for r in rows], dtype=np.float64)
        idf = np.concatenate([np.full(len(part), w) for part, w in parts])
        values = idf * tf / (k1 * ((1 - b) + b * length / avg_length) + tf)
        unique, first, inverse = np.unique(docs, return_index=True, return_inverse=True)
        totals = np.bincount(inverse, weights=values)
        if where is not None:
            keep = where.admits(
                np.array([rows[i][3] for i in first], dtype=object),
                np.array([rows[i][4] for i in first], dtype=np.int64),
            )
            unique, totals = unique[keep], totals[keep]
        order = np.lexsort((unique, -totals))[:k]
        best = [(int(unique[i]), float(totals[i])) for i in order]
        keys = {rows[i][0]: rows[i][5] for i in first}  # read in the same snapshot
        return [(keys[d], float(s)) for d, s in best if s > 0]


@contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so the totals and postings come from the same commit."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


class KeywordIndex:
    """BM25 over every chunk and over every whole article, read from the catalog's tables."""

    tokenize = staticmethod(tokenize)

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.chunks = KeywordLevel(db, lock, CHUNKS)
        self.articles = KeywordLevel(db, lock, ARTICLES)
