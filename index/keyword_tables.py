"""The keyword index's tables in the catalog's SQLite file, and how a write keeps them.

Every document (a chunk, or a whole article) gets an integer id from a counter that never goes
back, so a write only appends.  Ids fall in blocks of ``BLOCK`` documents:

- ``kw_postings``: one row per (level, stemmed term, block), the term's postings in that block as
  two packed arrays (uint16 offsets in the block, term frequencies), with the generation that
  last wrote the row.  A question reads a few blobs per term instead of a row per posting.
- ``kw_terms``: per (level, term), how many live documents hold it (for the idf) and the
  generation that last changed one of its ``kw_postings`` rows.
- ``kw_facets``: per block, each document's length, publication day and outlet code, packed.
- ``kw_docs``: per document, its level, key (chunk or article id) and article, to name hits
  and to find an article's documents when it is removed.  ``kw_totals``: per level, the live
  documents and their summed length.  ``kw_outlets``: outlet names and their codes.
- ``kw_dead``: removed documents (tombstones, with the generation that removed them).

A row's packed form, and a batch counted into rows, are ``index.postings``'.

A write runs inside the catalog's transaction, whose generation it stamps on what it changes
(readers refresh only rows newer than what they hold).  Adding a batch rewrites only the last
block of each of its terms; removing one costs its own documents: a tombstone, one lower
document frequency per term (the article's text, tokenized again, names them) and the totals.
Postings of removed documents are dropped when their block is next rewritten, or, once a
quarter of a block is dead, by rewriting that block's rows (``_sweep``): work bounded by the
block, never by the archive.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from index import postings
from index.dates import day_number
from index.lean_import import import_without
from index.postings import appended, count_postings, decode, encode

SWEEP_AT = postings.BLOCK // 4
"""A block whose unswept removed documents reach this many has its postings rewritten."""

CHUNKS, ARTICLES = 0, 1
"""The two levels: every chunk (its embedded text), every article (title and text)."""

VERSION = "3"
"""Bumped when the tokens or the layout change: the tables are then built afresh."""

TABLES = ("kw_docs", "kw_terms", "kw_postings", "kw_facets", "kw_outlets", "kw_dead", "kw_totals")

SCHEMA = [
    ("CREATE TABLE kw_docs (doc INTEGER PRIMARY KEY AUTOINCREMENT, level INTEGER NOT NULL, "
     "key TEXT NOT NULL, article_id TEXT NOT NULL, length INTEGER NOT NULL)"),
    "CREATE INDEX kw_docs_article ON kw_docs(article_id)",
    ("CREATE TABLE kw_terms (level INTEGER NOT NULL, term TEXT NOT NULL, df INTEGER NOT NULL, "
     "version INTEGER NOT NULL, PRIMARY KEY(level, term)) WITHOUT ROWID"),
    ("CREATE TABLE kw_postings (level INTEGER NOT NULL, term TEXT NOT NULL, block INTEGER NOT NULL, "
     "version INTEGER NOT NULL, n INTEGER NOT NULL, docs BLOB NOT NULL, tfs BLOB NOT NULL, "
     "PRIMARY KEY(level, term, block)) WITHOUT ROWID"),
    "CREATE INDEX kw_postings_block ON kw_postings(block)",
    ("CREATE TABLE kw_facets (block INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
     "lengths BLOB NOT NULL, days BLOB NOT NULL, outlets BLOB NOT NULL)"),
    "CREATE TABLE kw_outlets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    ("CREATE TABLE kw_dead (doc INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
     "swept INTEGER NOT NULL DEFAULT 0)"),
    "CREATE INDEX kw_dead_version ON kw_dead(version)",
    ("CREATE TABLE kw_totals (level INTEGER PRIMARY KEY, docs INTEGER NOT NULL, "
     "length INTEGER NOT NULL)"),
]


@dataclass(frozen=True)
class KeywordDoc:
    """One document to index: its key (chunk or article id), level, facets and text."""

    level: int
    key: str
    article_id: str
    outlet: str
    day: int
    text: str


# bm25s loads SciPy's sparse matrices and tqdm for its own in-memory index, which newsdesk does
# not use: only its tokenizer (a fifth of a second of every command's start-up otherwise).
_BM25S_OPTIONAL = ("scipy", "numba", "tqdm")


def tokenize(texts: list[str], return_ids: bool = True) -> Any:
    """Tokens as bm25s makes them: lower-cased, English stop words out, Snowball-stemmed."""
    import Stemmer

    return _bm25s().tokenize(
        texts,
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        show_progress=False,
        return_ids=return_ids,
    )


def stop_words() -> frozenset[str]:
    """The English stop words the tokens leave out."""
    return frozenset(_bm25s().stopwords.STOPWORDS_EN)


def _bm25s() -> Any:
    return import_without("bm25s", _BM25S_OPTIONAL)


def create(db: sqlite3.Connection) -> None:
    """Drop any keyword tables (of this or an older layout) and create empty ones, inside the
    caller's transaction (``executescript`` would commit it)."""
    for table in TABLES:  # the previous layouts' tables have some of these names
        db.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in SCHEMA:
        db.execute(statement)
    db.execute("DELETE FROM sqlite_sequence WHERE name='kw_docs'")  # ids start again: readers
    db.execute(  # must drop what they hold, and this tells them (``KeywordCache.refresh``)
        "INSERT INTO meta(key, value) VALUES('keywords_built', '1') ON CONFLICT(key) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )


def rebuild(db: sqlite3.Connection) -> None:
    """Index every article of the catalog afresh (inside the caller's transaction)."""
    create(db)
    ids = [r[0] for r in db.execute("SELECT id FROM articles ORDER BY rowid")]
    for i in range(0, len(ids), 500):
        add_articles(db, ids[i : i + 500])


def add_articles(db: sqlite3.Connection, article_ids: Sequence[str]) -> None:
    """Index these articles as the catalog now holds them (inside the caller's transaction):
    each chunk's embedded text, and the article's title and text."""
    add_documents(db, _documents_of(db, list(dict.fromkeys(article_ids))))


def add_documents(db: sqlite3.Connection, docs: Sequence[KeywordDoc]) -> None:
    """Index these documents (inside the caller's transaction); their keys must be new.

    The batch is counted in arrays: every (level, term, document) with its frequency, sorted,
    so each of its rows of postings is one slice of two packed buffers.  Only the block the
    batch starts in can already hold rows of its terms: the new postings are appended to their
    bytes (packed alike, and every stored document is older); a stored row is decoded and
    packed again only when its block holds removed documents (dropped as it is rewritten) or
    a frequency is too wide for uint16.
    """

    if not docs:
        return
    version = _generation(db)
    tokens = tokenize([d.text for d in docs])
    terms = [""] * len(tokens.vocab)
    for term, number in tokens.vocab.items():
        terms[number] = term
    lengths = [len(ids) for ids in tokens.ids]
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='kw_docs'").fetchone()
    first = (row[0] if row else 0) + 1
    db.executemany(
        "INSERT INTO kw_docs(doc, level, key, article_id, length) VALUES (?,?,?,?,?)",
        [(first + i, d.level, d.key, d.article_id, lengths[i]) for i, d in enumerate(docs)],
    )
    counted = count_postings([d.level for d in docs], tokens.ids, lengths, len(terms), first)
    if counted.size:
        first_block = first // postings.BLOCK
        stored = _stored_postings(db, first_block, [
            (level, terms[term]) for level, term, block, _, _ in counted.rows()
            if block == first_block])
        dead = _unswept_dead(db, first_block, first_block + 1) - first_block * postings.BLOCK
        wide = counted.wide()
        new_rows, updated = [], []
        for level, term, block, start, end in counted.rows():
            old = stored.get((level, terms[term])) if block == first_block else None
            n, packed, tfs = appended(old, counted, start, end, dead, start in wide)
            if old is None:
                new_rows.append((level, terms[term], block, version, n, packed, tfs))
            else:  # an UPDATE leaves the row's key, and so the block index, alone
                updated.append((version, n, packed, tfs, level, terms[term], block))
        db.executemany("INSERT INTO kw_postings(level, term, block, version, n, docs, tfs) "
                       "VALUES (?,?,?,?,?,?,?)", new_rows)
        db.executemany("UPDATE kw_postings SET version=?, n=?, docs=?, tfs=? "
                       "WHERE level=? AND term=? AND block=?", updated)
        db.executemany(
            "INSERT INTO kw_terms(level, term, df, version) VALUES (?,?,?,?) ON CONFLICT(level, "
            "term) DO UPDATE SET df = df + excluded.df, version = excluded.version",
            [(level, terms[term], df, version) for level, term, df in counted.frequencies()],
        )
    numbers = range(first, first + len(docs))
    _put_facets(db, numbers, docs, lengths, version)
    _add_totals(db, [(d.level, 1, length) for d, length in zip(docs, lengths, strict=True)])


def remove_articles(db: sqlite3.Connection, article_ids: Iterable[str]) -> None:
    """Unindex every document (chunks and article) of these articles, inside the caller's
    transaction, before the catalog deletes their rows: tombstones for the documents, and
    their terms' document frequencies (their text, tokenized again, names the terms)."""
    ids = list(dict.fromkeys(article_ids))
    numbers: dict[tuple[int, str], tuple[int, int]] = {}
    for part in range(0, len(ids), 500):
        chunk = ids[part : part + 500]
        for doc, level, key, length in db.execute(
            f"SELECT doc, level, key, length FROM kw_docs WHERE article_id IN "
            f"({','.join('?' * len(chunk))})", chunk,
        ):
            numbers[(level, key)] = (doc, length)
    if not numbers:
        return
    version = _generation(db)
    docs = [d for d in _documents_of(db, ids) if (d.level, d.key) in numbers]
    df: Counter[tuple[int, str]] = Counter()
    for doc, tokens in zip(docs, tokenize([d.text for d in docs], return_ids=False), strict=True):
        df.update((doc.level, term) for term in set(tokens))
    db.executemany("UPDATE kw_terms SET df = df - ? WHERE level=? AND term=?",
                   [(n, level, term) for (level, term), n in df.items()])
    db.executemany("DELETE FROM kw_terms WHERE level=? AND term=? AND df <= 0", list(df))
    gone = sorted(doc for doc, _ in numbers.values())
    db.executemany("INSERT INTO kw_dead(doc, version) VALUES (?,?)", [(d, version) for d in gone])
    db.executemany("DELETE FROM kw_docs WHERE doc=?", [(d,) for d in gone])
    _add_totals(db, [(level, -1, -length) for (level, _), (_, length) in numbers.items()])
    for block in sorted({d // postings.BLOCK for d in gone}):
        _sweep(db, block, version)


def _sweep(db: sqlite3.Connection, block: int, version: int) -> None:
    """Drop the removed documents' postings from one block once enough of it is dead."""
    import numpy as np

    dead = _unswept_dead(db, block, block + 1)
    if dead.size < SWEEP_AT:
        return
    rows, touched = [], []
    for level, term, n, docs, tfs in db.execute(
        "SELECT level, term, n, docs, tfs FROM kw_postings WHERE block=?", (block,)
    ).fetchall():
        ids, freqs = decode(block, n, docs, tfs)
        keep = ~np.isin(ids, dead)
        if not keep.all():
            rows.append((version, *encode(ids[keep] - block * postings.BLOCK, freqs[keep]), level, term))
            touched.append((version, level, term))
    db.executemany("UPDATE kw_postings SET version=?, n=?, docs=?, tfs=? "
                   f"WHERE level=? AND term=? AND block={int(block)}", rows)
    db.execute(f"DELETE FROM kw_postings WHERE block={int(block)} AND n=0")
    db.executemany("UPDATE kw_terms SET version=? WHERE level=? AND term=?", touched)
    db.execute("UPDATE kw_dead SET swept=1 WHERE doc >= ? AND doc < ?",
               (block * postings.BLOCK, (block + 1) * postings.BLOCK))


def _unswept_dead(db: sqlite3.Connection, first_block: int, end_block: int | None = None) -> Any:
    """Removed documents still in the postings of these blocks, as a sorted int64 array."""
    import numpy as np

    end = (end_block if end_block is not None else 1 << 40) * postings.BLOCK
    return np.array([r[0] for r in db.execute(
        "SELECT doc FROM kw_dead WHERE doc >= ? AND doc < ? AND swept=0 ORDER BY doc",
        (first_block * postings.BLOCK, end),
    )], dtype=np.int64)


def _stored_postings(
    db: sqlite3.Connection, block: int, keys: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], tuple[int, bytes, bytes]]:
    """The stored (n, docs, tfs) of these (level, term) rows of one block that exist.

    Asked level by level with the terms in an ``IN`` list, which SQLite answers by seeking
    each key (a row-value ``IN (VALUES ...)`` was a scan of the whole table)."""
    by_level: dict[int, list[str]] = defaultdict(list)
    for level, term in keys:
        by_level[level].append(term)
    found = {}
    for level, terms in by_level.items():
        for i in range(0, len(terms), 3000):
            part = terms[i : i + 3000]
            for term, n, docs, tfs in db.execute(
                "SELECT term, n, docs, tfs FROM kw_postings WHERE level=? AND block=? AND term "
                f"IN ({','.join('?' * len(part))})", (level, block, *part),
            ):
                found[(level, term)] = (n, docs, tfs)
    return found


def _put_facets(
    db: sqlite3.Connection, numbers: range, docs: Sequence[KeywordDoc], lengths: list[int],
    version: int,
) -> None:
    """Write the new documents' length, day and outlet code into their blocks' facets."""
    import numpy as np

    names = sorted({d.outlet for d in docs})
    db.executemany("INSERT OR IGNORE INTO kw_outlets(name) VALUES (?)", [(n,) for n in names])
    codes = dict(db.execute(
        f"SELECT name, id FROM kw_outlets WHERE name IN ({','.join('?' * len(names))})", names
    ))
    for block in range(numbers[0] // postings.BLOCK, numbers[-1] // postings.BLOCK + 1):
        row = db.execute("SELECT lengths, days, outlets FROM kw_facets WHERE block=?",
                         (block,)).fetchone()
        arrays = [np.frombuffer(b, dtype="<i4").copy() for b in row] if row else [
            np.zeros(0, "<i4")] * 3
        span = [i for i, n in enumerate(numbers) if n // postings.BLOCK == block]
        size = numbers[span[-1]] - block * postings.BLOCK + 1
        arrays = [np.concatenate([a, np.zeros(max(0, size - len(a)), "<i4")]) for a in arrays]
        for i in span:
            at = numbers[i] - block * postings.BLOCK
            arrays[0][at], arrays[1][at], arrays[2][at] = (
                lengths[i], docs[i].day, codes[docs[i].outlet])
        db.execute("INSERT OR REPLACE INTO kw_facets(block, version, lengths, days, outlets) "
                   "VALUES (?,?,?,?,?)", (block, version, *(a.tobytes() for a in arrays)))


def _documents_of(db: sqlite3.Connection, article_ids: Sequence[str]) -> list[KeywordDoc]:
    """The keyword documents of these stored articles: each chunk's embedded text, and the
    article's title and text."""
    docs: list[KeywordDoc] = []
    for article_id in article_ids:
        row = db.execute(
            "SELECT title, text, COALESCE(outlet, ''), published FROM articles WHERE id=?",
            (article_id,),
        ).fetchone()
        if row is None:
            continue
        title, text, outlet, published = row
        day = day_number(date.fromisoformat(published)) if published else 0
        docs += [
            KeywordDoc(CHUNKS, chunk_id, article_id, outlet, day, embed_text)
            for chunk_id, embed_text in db.execute(
                "SELECT id, embed_text FROM chunks WHERE article_id=? ORDER BY idx", (article_id,)
            )
        ]
        docs.append(KeywordDoc(ARTICLES, article_id, article_id, outlet, day, f"{title}\n{text}"))
    return docs


def _generation(db: sqlite3.Connection) -> int:
    """The catalog generation this transaction writes (bumped when the transaction began)."""
    row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
    return int(row[0]) if row else 0


def _add_totals(db: sqlite3.Connection, changes: list[tuple[int, int, int]]) -> None:
    """Add (level, documents, length) changes to the per-level totals."""
    by_level: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for level, documents, length in changes:
        by_level[level][0] += documents
        by_level[level][1] += length
    for level, (count, length) in by_level.items():
        db.execute(
            "INSERT INTO kw_totals(level, docs, length) VALUES (?,?,?) ON CONFLICT(level) DO "
            "UPDATE SET docs = docs + excluded.docs, length = length + excluded.length",
            (level, count, length),
        )
