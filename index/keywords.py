"""Keyword search: BM25 over every chunk and over every whole article, kept inside the catalog.

The index lives in the catalog's own SQLite file (``index.keyword_tables``: postings packed per
term and block of documents, per-document facets, removal tombstones), written by
``SqliteCatalog`` in the same transaction as the articles (the commit point), so it is
crash-consistent by construction and a write costs its own batch, whatever the archive's size.

``KeywordIndex(db, lock, cache)`` is what the query side reads: ``.chunks`` and ``.articles``
are ``KeywordLevel``s whose ``search(query, k, where)`` scores exactly as bm25s's Lucene BM25
(same tokens, k1, b and idf over the live documents), reading only the postings of the
question's terms, and applies the ``KeywordFilter`` before the top-k cut.  A ``KeywordCache``
(one per catalog and process) keeps the decoded arrays of the terms asked and of the documents'
facets; at each search it reads, in one snapshot with the postings, what commits (any
process's) changed since: the rows stamped with a newer generation, nothing else.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from index import maxscore, postings
from index.keyword_tables import (
    ARTICLES,
    CHUNKS,
    KeywordDoc,
    add_articles,
    add_documents,
    rebuild,
    remove_articles,
    tokenize,
)
from index.postings import decode_rows

__all__ = [
    "ARTICLES",
    "BM25_PARAMS",
    "CHUNKS",
    "KeywordCache",
    "KeywordDoc",
    "KeywordFilter",
    "KeywordIndex",
    "KeywordLevel",
    "add_articles",
    "add_documents",
    "rebuild",
    "remove_articles",
    "tokenize",
]

# Anserini's defaults; on RealTime QA they beat bm25s's k1=1.5, b=0.75 (benchmarks/RESULTS.md):
# a lower b penalises long articles less, and news answers often sit deep in long ones.
BM25_PARAMS = {"k1": 0.9, "b": 0.4}

CACHE_BYTES = 768 << 20
"""Decoded postings kept per process at most (least recently asked terms go first)."""


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


@dataclass
class _Postings:
    """One term's postings as of generation ``seen``: document ids (``docs``, ascending) and
    term frequencies (``tfs``, as stored).

    Rows read from the catalog are kept as read (``take``) and decoded when first used, so
    that the decoding is done outside the catalog's lock.  Each posting's BM25 share
    (tf / (tf + k1 * norm), which the term's idf multiplies) is for the average length and
    document lengths of a snapshot (``bind``), and computed only when asked: all of them
    (``unit``) for a term whose postings are added up, a few (``at``) for a term looked up
    only for the documents within reach of the top k.  ``top`` is no less than any share: the
    largest once ``unit`` is computed, before that a bound from the largest frequency
    (``bound``).
    """

    seen: int
    stored: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)  # not decoded
    decoded: tuple[Any, Any] | None = None  # (docs, tfs)
    tf_max: int = 0
    lengths: Any = None  # every document's length, as of the bound snapshot
    avg: float = 0.0
    computed: Any = None  # ``unit`` for ``avg``, once asked
    counted: int = 0  # what the cache counts it as holding (``nbytes`` when last asked)

    @property
    def nbytes(self) -> int:
        """What the postings hold with every share computed (about 14 bytes a posting)."""
        if self.decoded is not None and not self.stored:
            docs, tfs = self.decoded
            return int(docs.nbytes + tfs.nbytes + 8 * len(docs))
        held = len(self.decoded[0]) if self.decoded is not None else 0
        return 14 * (held + sum(row[1] for row in self.stored))

    def take(self, rows: list[tuple[int, int, bytes, bytes]]) -> None:
        """Stored rows (block, n, docs, tfs) written since: each replaces what is held of its
        block (when decoded)."""
        if rows:
            self.stored += rows
            self.computed = None

    def bind(self, lengths: Any, avg_length: float) -> None:
        """Compute shares, from now on, for these document lengths and average length."""
        if avg_length != self.avg:
            self.computed = None
        self.lengths, self.avg = lengths, avg_length

    @property
    def docs(self) -> Any:
        return self._decode()[0]

    @property
    def tfs(self) -> Any:
        return self._decode()[1]

    @property
    def unit(self) -> Any:
        """Every posting's share."""
        if self.computed is None:
            self.computed = _shares(self.lengths, self.docs, self.tfs, self.avg)
        return self.computed

    def at(self, positions: Any) -> Any:
        """The shares of the postings at these positions (the same values as ``unit``)."""
        if self.computed is not None:
            return self.computed[positions]
        return _shares(self.lengths, self.docs[positions], self.tfs[positions], self.avg)

    @property
    def top(self) -> float:
        """No posting's share is larger."""
        if self.computed is not None:
            return float(self.computed.max()) if len(self.computed) else 0.0
        self._decode()
        return bound(self.tf_max, self.avg)

    def _decode(self) -> tuple[Any, Any]:
        """(docs, tfs) with the stored rows taken in."""
        import numpy as np

        if not self.stored and self.decoded is not None:
            return self.decoded
        docs, tfs = decode_rows(self.stored)
        if self.decoded is not None and len(self.decoded[0]):
            held, held_tfs = self.decoded
            blocks = np.array([r[0] for r in self.stored], dtype=np.int64)
            keep = ~np.isin(held // postings.BLOCK, blocks)
            kept = held[keep]
            ordered = not len(kept) or kept[-1] // postings.BLOCK < blocks.min()
            docs, tfs = np.concatenate([kept, docs]), np.concatenate([held_tfs[keep], tfs])
            if not ordered:  # an older block rewritten
                order = np.argsort(docs, kind="stable")
                docs, tfs = docs[order], tfs[order]
        self.decoded, self.stored = (docs, tfs), []
        self.tf_max = int(tfs.max()) if len(tfs) else 0
        return self.decoded


def _shares(lengths: Any, docs: Any, tfs: Any, avg_length: float) -> Any:
    """Each posting's tf / (tf + k1 * (1 - b + b * length / avg_length)), ``lengths`` being
    every document's."""
    import numpy as np

    k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
    # k1 * ((1 - b) + b * length / avg) + tf, then tf over it, in place: one float array made
    # (fresh memory is most of the cost of a common term's shares)
    norm = np.multiply(lengths[docs], b, dtype=np.float64)
    norm /= avg_length
    norm += 1 - b
    norm *= k1
    norm += tfs
    return np.divide(tfs, norm, out=norm)


def bound(tf_max: int, avg_length: float) -> float:
    """The largest share a posting of frequency at most ``tf_max`` can have.  A document is no
    shorter than any of its terms' frequency, and the share grows with the frequency and
    falls with the length, so it is at most tf / (tf + k1 * (1 - b + b * tf / avg))."""
    if tf_max <= 0 or avg_length <= 0:
        return 0.0 if tf_max <= 0 else 1.0
    k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
    return tf_max / (tf_max + k1 * (1 - b + b * tf_max / avg_length))


@dataclass(frozen=True)
class _Facets:
    """The documents' facets as of one snapshot: removed, publication day, outlet code; and,
    for the filters, the outlet code and day of the live documents (-1 and 0 for removed
    ones, which no filter admits): one look-up per posting instead of two."""

    dead: Any
    days: Any
    outlets: Any
    outlet_codes: dict[str, int]
    live_outlets: Any = None
    live_days: Any = None

    def admits(self, docs: Any, where: KeywordFilter | None) -> Any:
        """Which of these documents are live and pass the filter."""
        import numpy as np

        if where is None or not (where.outlets or where.first_day or where.last_day):
            return ~self.dead[docs]
        keep = None
        if where.outlets:
            codes = [self.outlet_codes[o] for o in where.outlets if o in self.outlet_codes]
            found = self.live_outlets[docs]
            keep = found == codes[0] if len(codes) == 1 else np.isin(found, codes)
        if where.first_day or where.last_day:  # a removed document's day, 0, fails any bound
            in_days = KeywordFilter(first_day=where.first_day, last_day=where.last_day).admits(
                None, self.live_days[docs])
            keep = in_days if keep is None else keep & in_days
        return keep


@dataclass
class KeywordCache:
    """Decoded keyword arrays of one catalog in one process, as of ``generation``: per document
    its length, day, outlet code and whether it was removed; per asked term its postings.

    The catalog's lock guards what is read from the database (``refresh``, ``postings``).
    Each level has a lock of its own (``level_lock``), held by a search throughout: its
    terms' postings and its scratch are used by one search at a time, while the two levels'
    searches add up their postings at once, outside the catalog's lock.
    """

    generation: int | None = None
    built: str | None = None  # which build of the tables (document ids restart with each)
    lengths: Any = None
    days: Any = None
    outlets: Any = None
    dead: Any = None
    outlet_codes: dict[str, int] = field(default_factory=dict)
    terms: OrderedDict[tuple[int, str], _Postings] = field(default_factory=OrderedDict)
    held: int = 0
    locks: dict[int, threading.Lock] = field(
        default_factory=lambda: {CHUNKS: threading.Lock(), ARTICLES: threading.Lock()})
    live: tuple[Any, Any] | None = None  # live documents' outlets and days (``facets``)
    sums: dict[int, Any] = field(default_factory=dict)  # per level, one slot per document,
    seen: dict[int, Any] = field(default_factory=dict)  # zero (and False) between searches

    def refresh(self, db: sqlite3.Connection) -> int:
        """Bring the facets up to the snapshot's generation (inside it); return it."""
        import numpy as np

        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        generation = int(row[0]) if row else 0
        if self.generation is not None and generation == self.generation:
            return generation
        built = _built(db)
        if self.generation is None or generation < self.generation or built != self.built:
            kept = self.locks, self.sums, self.seen  # searches of the other level hold them
            self.__init__()  # type: ignore[misc]  # rebuilt, or another file: start again
            self.locks, self.sums, self.seen = kept
            self.built = built
            self.lengths, self.days, self.outlets = (np.zeros(0, np.int32) for _ in range(3))
            self.dead = np.zeros(0, bool)
        since = -1 if self.generation is None else self.generation
        for block, lengths, days, outlets in db.execute(
            "SELECT block, lengths, days, outlets FROM kw_facets WHERE version > ?", (since,)
        ):
            start = block * postings.BLOCK
            values = [np.frombuffer(b, dtype="<i4") for b in (lengths, days, outlets)]
            self._cover(start + len(values[0]))
            for target, value in zip((self.lengths, self.days, self.outlets), values, strict=True):
                target[start : start + len(value)] = value
        gone = np.array([r[0] for r in db.execute(
            "SELECT doc FROM kw_dead WHERE version > ?", (since,))], dtype=np.int64)
        if gone.size:
            self._cover(int(gone.max()) + 1)
            self.dead[gone] = True
        self.outlet_codes = dict(db.execute("SELECT name, id FROM kw_outlets"))
        self.generation, self.live = generation, None
        return generation

    def _cover(self, size: int) -> None:
        """Grow the per-document arrays to hold ``size`` documents."""
        import numpy as np

        if size <= len(self.dead):
            return
        size = max(size, len(self.dead) * 5 // 4)
        for name in ("lengths", "days", "outlets", "dead"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def postings(
        self, db: sqlite3.Connection, level: int, term: str, version: int, generation: int,
        avg_length: float,
    ) -> _Postings:
        """The term's postings as of ``generation`` (inside its snapshot), reading only the
        blocks written since the cached copy, if any, and bound to ``avg_length`` (its
        shares are computed when asked)."""
        key = (level, term)
        entry = self.terms.pop(key, None)
        if entry is not None:
            self.held -= entry.counted
        if entry is None or version > entry.seen:
            entry = entry or _Postings(seen=-1)
            entry.take(db.execute(
                "SELECT block, n, docs, tfs FROM kw_postings WHERE level=? AND term=? "
                "AND version > ?", (level, term, entry.seen),
            ).fetchall())
        entry.bind(self.lengths, avg_length)
        entry.seen = generation
        self.terms[key] = entry
        entry.counted = entry.nbytes
        self.held += entry.counted
        while self.held > CACHE_BYTES and len(self.terms) > 1:
            _, old = self.terms.popitem(last=False)
            self.held -= old.counted
        return entry

    def facets(self, where: KeywordFilter | None = None) -> _Facets:
        """The facets as of the last ``refresh``, with the live documents' outlets and days
        if ``where`` filters on them (for use after the catalog's lock is let go: a later
        refresh makes new arrays, or marks more documents removed)."""
        import numpy as np

        filtered = where is not None and (where.outlets or where.first_day or where.last_day)
        if filtered and self.live is None:  # once per generation, by its first filtered search
            self.live = (np.where(self.dead, -1, self.outlets), np.where(self.dead, 0, self.days))
        outlets, days = self.live if filtered and self.live is not None else (None, None)
        return _Facets(self.dead, self.days, self.outlets, self.outlet_codes, outlets, days)

    def level_lock(self, level: int) -> threading.Lock:
        """The lock a search of ``level`` holds throughout."""
        return self.locks[level]

    def sum_by_document(
        self, asked: Sequence[tuple[float, _Postings]], level: int, size: int
    ) -> tuple[Any, Any]:
        """Each document's BM25 over the asked (weight, postings) of ``level``, which has
        ``size`` documents: (sorted doc ids, scores); the caller holds the level's lock.

        A document's shares are added in the order of ``asked``, whichever way is taken.
        """
        import numpy as np

        docs = [e.docs for _, e in asked]
        total = sum(len(d) for d in docs)
        if total * 16 < size:  # few postings: sort them
            unique, inverse = np.unique(np.concatenate(docs), return_inverse=True)
            values = np.concatenate([w * e.unit for w, e in asked])
            return unique, np.bincount(inverse, weights=values)
        sums: Any = self.sums.get(level)
        seen: Any = self.seen.get(level)
        if sums is None or len(sums) < size:
            sums = self.sums[level] = np.zeros(size)  # kept: a fresh one costs its page faults
            seen = self.seen[level] = np.zeros(size, dtype=bool)
        for weight, e in asked:
            sums[e.docs] += weight * e.unit  # a term's doc ids are distinct
            seen[e.docs] = True
        unique = np.flatnonzero(seen)
        scores = sums[unique]
        sums[unique], seen[unique] = 0.0, False
        return unique, scores


class KeywordLevel:
    """BM25 over one level (chunks or articles) of the catalog's keyword index."""

    def __init__(
        self, db: sqlite3.Connection, lock: threading.RLock, level: int, cache: KeywordCache
    ) -> None:
        self.db, self.lock, self.level, self.cache = db, lock, level, cache

    def search(
        self, query: str, k: int, where: KeywordFilter | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (key, BM25 score > 0) for the query among the documents ``where`` admits.

        Reads the postings of the query's terms only (a term repeated in the query counts
        each time, as in bm25s); idf and the average length are over the level's live
        documents.  Ties go to the earlier indexed document.  The top k is exact, but only
        the terms that can bring a document into it have their postings added up
        (``index.maxscore``); the others are looked up for the documents within reach.

        What is read comes from one snapshot, under the catalog's lock; the decoding and adding
        up are done after it is let go (holding this level's lock), so the other level's search
        and the catalog's other readers go on meanwhile.  The hits are then named from
        ``kw_docs``: a document removed since is left out, and if the tables were rebuilt
        since (document ids start again) the search runs again.
        """
        counts = Counter(tokenize([query], return_ids=False)[0])
        if not counts or k <= 0:
            return []
        with self.cache.level_lock(self.level):
            with self.lock, _snapshot(self.db):
                generation = self.cache.refresh(self.db)
                built, facets = self.cache.built, self.cache.facets(where)
                asked = self._asked(counts, generation)
            if not asked:
                return []
            unique, scores = maxscore.candidates(
                asked, k, lambda docs: facets.admits(docs, where),
                lambda terms: self.cache.sum_by_document(terms, self.level, len(facets.dead)),
            )
            best = [i for i in _top(unique, scores, k).tolist() if scores[i] > 0]
        if not best:
            return []
        with self.lock, _snapshot(self.db):
            if _built(self.db) != built:
                return self.search(query, k, where)
            keys = dict(self.db.execute(
                f"SELECT doc, key FROM kw_docs WHERE doc IN ({','.join('?' * len(best))})",
                [int(unique[i]) for i in best],
            ))
        return [(keys[int(unique[i])], float(scores[i])) for i in best if int(unique[i]) in keys]

    def prefetch(self, term: str) -> bool:
        """Decode the term's postings into the cache now, as a search would; False if the
        level has no such term."""
        with self.cache.level_lock(self.level):
            with self.lock, _snapshot(self.db):
                generation = self.cache.refresh(self.db)
                asked = self._asked(Counter([term]), generation)
            for _, entry in asked:
                entry.unit  # noqa: B018  # its shares too, outside the catalog's lock
            return bool(asked)

    def _asked(self, counts: Counter[str], generation: int) -> list[tuple[float, _Postings]]:
        """The query's terms found in the level, as (count * idf, postings), inside the
        snapshot."""
        totals = self.db.execute(
            "SELECT docs, length FROM kw_totals WHERE level=?", (self.level,)
        ).fetchone()
        if not totals or not totals[0]:
            return []
        n_docs, avg_length = totals[0], totals[1] / totals[0]
        terms = list(counts)
        found = self.db.execute(
            f"SELECT term, df, version FROM kw_terms WHERE level=? AND df > 0 AND term IN "
            f"({','.join('?' * len(terms))})", (self.level, *terms),
        ).fetchall()
        asked = []
        for term, df, version in found:
            entry = self.cache.postings(self.db, self.level, term, version, generation, avg_length)
            idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            asked.append((counts[term] * idf, entry))
        return asked


def _top(docs: Any, scores: Any, k: int) -> Any:
    """Indices of the ``k`` best scores, best first; ties to the lower document id."""
    import numpy as np

    if len(scores) > 4 * k:
        threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
        chosen = np.flatnonzero(scores >= threshold)
    else:
        chosen = np.arange(len(scores))
    order = np.lexsort((docs[chosen], -scores[chosen]))[:k]
    return chosen[order]


def _built(db: sqlite3.Connection) -> str | None:
    """Which build of the keyword tables the database holds."""
    row = db.execute("SELECT value FROM meta WHERE key='keywords_built'").fetchone()
    return row[0] if row else None


@contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so the totals, facets and postings come from the same commit."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


class KeywordIndex:
    """BM25 over every chunk and over every whole article, read from the catalog's tables."""

    tokenize = staticmethod(tokenize)

    def __init__(
        self, db: sqlite3.Connection, lock: threading.RLock, cache: KeywordCache | None = None
    ) -> None:
        cache = cache if cache is not None else KeywordCache()
        self.lock, self.cache = lock, cache
        self.chunks = KeywordLevel(db, lock, CHUNKS, cache)
        self.articles = KeywordLevel(db, lock, ARTICLES, cache)

    def asked(self) -> list[tuple[int, str]]:
        """The (level, term) pairs whose postings this process holds decoded, the most
        recently asked first."""
        with self.lock:
            return list(reversed(self.cache.terms))

    def prefetch(self, terms: Iterable[tuple[int, str]], budget: int = CACHE_BYTES // 2) -> int:
        """Decode these (level, term) postings into the cache, in turn, until the cache holds
        ``budget`` bytes (searches go on between terms); how many were decoded."""
        levels = {CHUNKS: self.chunks, ARTICLES: self.articles}
        done = 0
        for level, term in terms:
            if self.cache.held >= budget:
                break
            if level in levels and levels[level].prefetch(term):
                done += 1
        return done
