"""The index on disk: a SQLite catalog (source of truth), Chroma (vectors) and BM25 (keywords).

Writes are ordered so that no article is ever half-indexed, even when the process is killed:

1. the new chunks' vectors are added to Chroma under ids that include the content hash;
2. one SQLite transaction replaces the article's row and chunk rows (the commit point);
3. vectors of the article's previous version are deleted from Chroma.

A kill between 1 and 2 leaves vectors no catalog row points to; ``reconcile()`` deletes them at
the start of the next ingest, and queries ignore them meanwhile.  Steps 1-3 hold a write lock
file in the data directory, which ``reconcile()`` also takes, so one process's reconcile never
deletes the vectors another process has written but not yet committed.  The BM25 index is derived from
the catalog and carries the catalog's generation number, so a stale one is rebuilt on load.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from index.config import IndexConfig, index_config
from index.errors import ArticleNotFound, StoreError
from index.models import Article, Chunk
from index.timex import TIMEX_VERSION, Mention, find_mentions

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    outlet TEXT,
    published TEXT,
    url TEXT,
    authors TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT,
    content_hash TEXT NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    sentences TEXT NOT NULL,
    embed_text TEXT NOT NULL,
    dense INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mentions (
    article_id TEXT PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


@dataclass
class IndexedChunk:
    """A chunk as the catalog holds it, with what a citation needs."""

    id: str
    article_id: str
    index: int
    sentences: list[tuple[int, int]]
    embed_text: str


@dataclass
class PreparedArticle:
    """An article ready to be written: its chunks and the vectors of the dense ones."""

    article: Article
    content_hash: str
    chunks: list[Chunk]
    vectors: list[list[float]]
    mentions: list[Mention] = field(default_factory=list)


def day_number(day: date | None) -> int:
    """A date as the integer YYYYMMDD that Chroma and BM25 filter on (0 when unknown)."""
    return day.year * 10000 + day.month * 100 + day.day if day else 0


def day_of(number: int) -> date:
    """The date a YYYYMMDD integer from ``day_number`` stands for."""
    return date(number // 10000, number // 100 % 100, number % 100)


class Store:
    """Open index in one data directory; safe to share between threads."""

    def __init__(self, config: Any = None) -> None:
        self.config: IndexConfig = index_config(config)
        config = self.config
        self._lock = threading.RLock()
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                config.catalog_path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the index in {config.data_dir}: {exc}",
                hint="check that the folder is writable, or pick another with --data-dir",
            ) from exc
        self._check_embedding()
        self._collection: Any = None
        self._bm25: Any = None
        self._write_lock = FileLock(config.data_dir / "write.lock")

    # --- catalog ------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a read under the lock (one connection is shared by the service's threads)."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key=?", (key,))
        return row[0] if row else None

    def _check_embedding(self) -> None:
        built_with = self._meta("embedding")
        if built_with and built_with != self.config.embedding and self.count_articles():
            raise StoreError(
                f"the index in {self.config.data_dir} was built with embedding {built_with!r}, "
                f"not {self.config.embedding!r}",
                hint=f"set NEWSDESK_EMBEDDING={built_with} or use a new --data-dir",
            )

    @property
    def generation(self) -> int:
        """Counter bumped by every write; derived indexes compare against it."""
        return int(self._meta("generation") or 0)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('embedding', ?)",
                    (self.config.embedding,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def count_articles(self) -> int:
        """Number of articles indexed."""
        return int(self._one("SELECT COUNT(*) FROM articles")[0])

    def content_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """Stored content hash of each given article id that is indexed."""
        out: dict[str, str] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            out.update(
                self._rows(
                    f"SELECT id, content_hash FROM articles WHERE id IN ({marks})", part
                )
            )
        return out

    def ids_from_source(self, source: str) -> list[str]:
        """Ids of the articles last read from this file (used to replace an edited text file)."""
        rows = self._rows("SELECT id FROM articles WHERE source=?", (source,))
        return [r[0] for r in rows]

    def get_article(self, article_id: str) -> Article:
        """The full article, text included. Raises ArticleNotFound."""
        row = self._one(
            "SELECT id, title, outlet, published, url, authors, text, source FROM articles "
            "WHERE id=?",
            (article_id,),
        )
        if row is None:
            raise ArticleNotFound(article_id)
        return _article_from_row(row)

    def list_articles(
        self,
        *,
        offset: int = 0,
        limit: int | None = None,
        outlet: str | None = None,
        search: str | None = None,
    ) -> list[Article]:
        """Articles, newest first, without their text (text is ''); filter by outlet or title."""
        clauses: list[str] = []
        params: list[Any] = []
        if outlet:
            clauses.append("outlet = ?")
            params.append(outlet)
        if search:
            clauses.append("title LIKE ?")
            params.append(f"%{search}%")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params += [limit if limit is not None else -1, offset]
        rows = self._rows(
            "SELECT id, title, outlet, published, url, authors, '', source FROM articles "
            f"{where} ORDER BY published IS NULL, published DESC, id LIMIT ? OFFSET ?",
            params,
        )
        return [_article_from_row(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Counts and ranges describing what is indexed."""
        articles, first, last, undated = self._one(
            "SELECT COUNT(*), MIN(published), MAX(published), SUM(published IS NULL) FROM articles"
        )
        chunks, dense = self._one("SELECT COUNT(*), SUM(dense) FROM chunks")
        outlets = self._rows(
            "SELECT outlet, COUNT(*) FROM articles GROUP BY outlet ORDER BY COUNT(*) DESC, outlet"
        )
        return {
            "data_dir": str(self.config.data_dir),
            "articles": articles,
            "chunks": chunks or 0,
            "dense_chunks": dense or 0,
            "undated_articles": undated or 0,
            "first_published": first,
            "last_published": last,
            "outlets": {o or "(unknown)": n for o, n in outlets},
            "embedding": self.config.embedding,
            "chroma": f"{self.config.chroma_host}:{self.config.chroma_port}"
            if self.config.chroma_host
            else str(self.config.chroma_path),
        }

    def mentions(self, article_id: str) -> list[Mention]:
        """The article's resolved temporal expressions (computed once, then kept in the catalog)."""
        row = self._one(
            "SELECT data FROM mentions WHERE article_id=? AND version=?", (article_id, TIMEX_VERSION)
        )
        if row:
            return [Mention.model_validate(m) for m in json.loads(row[0])]
        article = self.get_article(article_id)
        found = find_mentions(article.text, article.published)
        with self._lock:  # derived data: no generation bump, so BM25 is not rebuilt for it
            self._db.execute(
                "INSERT OR REPLACE INTO mentions(article_id, version, data) VALUES (?,?,?)",
                (article_id, TIMEX_VERSION, _dump_mentions(found)),
            )
        return found

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, IndexedChunk]:
        """Catalog rows of the given chunk ids; ids not in the catalog are left out."""
        out: dict[str, IndexedChunk] = {}
        for i in range(0, len(chunk_ids), 500):
            part = list(chunk_ids[i : i + 500])
            marks = ",".join("?" * len(part))
            for row in self._rows(
                f"SELECT id, article_id, idx, sentences, embed_text FROM chunks WHERE id IN ({marks})",
                part,
            ):
                out[row[0]] = _chunk_from_row(row)
        return out

    def all_chunks(self) -> list[IndexedChunk]:
        """Every chunk in the catalog, in a stable order."""
        rows = self._rows(
            "SELECT id, article_id, idx, sentences, embed_text FROM chunks ORDER BY article_id, idx"
        )
        return [_chunk_from_row(r) for r in rows]

    # --- Chroma -------------------------------------------------------------------------

    @property
    def collection(self) -> Any:
        """The Chroma collection of chunk vectors (embedded client, or a server if configured)."""
        if self._collection is None:
            with self._lock:
                if self._collection is None:
                    self._collection = self._open_collection()
        return self._collection

    def _open_collection(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        try:
            if self.config.chroma_host:
                client = chromadb.HttpClient(
                    host=self.config.chroma_host,
                    port=self.config.chroma_port,
                    settings=chroma_settings,
                )
            else:
                client = chromadb.PersistentClient(
                    path=str(self.config.chroma_path), settings=chroma_settings
                )
            return client.get_or_create_collection(
                self.config.collection,
                configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:
            where = (
                f"the Chroma server at {self.config.chroma_host}:{self.config.chroma_port}"
                if self.config.chroma_host
                else f"embedded Chroma in {self.config.chroma_path}"
            )
            raise StoreError(
                f"cannot open {where}: {exc}",
                hint="start the server (`chroma run --path DIR`) or unset NEWSDESK_CHROMA_HOST"
                if self.config.chroma_host
                else "check the folder is writable and not used by another Chroma version",
            ) from exc

    @contextmanager
    def writing(self, timeout: float = -1) -> Iterator[None]:
        """Hold the data directory's write lock (shared by every process using the folder)."""
        with self._write_lock.acquire(timeout=timeout):
            yield

    def reconcile(self, timeout: float = 60) -> int:
        """Delete vectors no catalog row points to (left by an interrupted run); return count.

        Waits up to ``timeout`` seconds for another process's write batch to commit; if it is
        still writing then, nothing is deleted this time (0).
        """
        try:
            with self.writing(timeout):
                known = {r[0] for r in self._rows("SELECT id FROM chunks WHERE dense=1")}
                stray: list[str] = []
                offset, page = 0, 5000
                while True:
                    got = self.collection.get(include=[], limit=page, offset=offset)
                    ids = got["ids"]
                    stray.extend(i for i in ids if i not in known)
                    if len(ids) < page:
                        break
                    offset += page
                self._delete_vectors(stray)
        except Timeout:
            return 0
        return len(stray)

    # --- writes -------------------------------------------------------------------------

    def write(self, batch: Sequence[PreparedArticle]) -> None:
        """Add or replace these articles atomically (each is either fully indexed or absent)."""
        if not batch:
            return
        ids, vectors, metadatas, documents = [], [], [], []
        rows: list[tuple[PreparedArticle, list[tuple[str, Chunk, bool]]]] = []
        for prepared in batch:
            article = prepared.article
            keyed = []
            for n, chunk in enumerate(prepared.chunks):
                chunk_id = f"{article.id}#{prepared.content_hash}#{chunk.index}"
                dense = n < len(prepared.vectors)
                keyed.append((chunk_id, chunk, dense))
                if dense:
                    ids.append(chunk_id)
                    vectors.append(prepared.vectors[n])
                    documents.append(chunk.embed_text)
                    metadatas.append(
                        {
                            "article_id": article.id,
                            "content_hash": prepared.content_hash,
                            "chunk": chunk.index,
                            "outlet": article.outlet or "",
                            "published": day_number(article.published),
                        }
                    )
            rows.append((prepared, keyed))
        with self.writing():
            self._write(ids, vectors, metadatas, documents, rows)

    def _write(
        self,
        ids: list[str],
        vectors: list[list[float]],
        metadatas: list[dict[str, Any]],
        documents: list[str],
        rows: list[tuple[PreparedArticle, list[tuple[str, Chunk, bool]]]],
    ) -> None:
        try:
            for i in range(0, len(ids), 2000):
                self.collection.upsert(
                    ids=ids[i : i + 2000],
                    embeddings=vectors[i : i + 2000],
                    metadatas=metadatas[i : i + 2000],
                    documents=documents[i : i + 2000],
                )
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"writing vectors to Chroma failed: {exc}") from exc

        stale: list[str] = []
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction() as db:
            for prepared, keyed in rows:
                article = prepared.article
                new_ids = {k for k, _, _ in keyed}
                stale.extend(
                    r[0]
                    for r in db.execute(
                        "SELECT id FROM chunks WHERE article_id=? AND dense=1", (article.id,)
                    )
                    if r[0] not in new_ids
                )
                db.execute("DELETE FROM chunks WHERE article_id=?", (article.id,))
                db.execute(
                    "INSERT OR REPLACE INTO articles(id, title, outlet, published, url, authors, "
                    "text, source, content_hash, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        article.id,
                        article.title,
                        article.outlet,
                        article.published.isoformat() if article.published else None,
                        article.url,
                        json.dumps(article.authors, ensure_ascii=False),
                        article.text,
                        article.source,
                        prepared.content_hash,
                        now,
                    ),
                )
                db.execute(
                    "INSERT OR REPLACE INTO mentions(article_id, version, data) VALUES (?,?,?)",
                    (article.id, TIMEX_VERSION, _dump_mentions(prepared.mentions)),
                )
                db.executemany(
                    "INSERT INTO chunks(id, article_id, idx, sentences, embed_text, dense) "
                    "VALUES (?,?,?,?,?,?)",
                    [
                        (cid, article.id, c.index, json.dumps(c.sentences), c.embed_text, int(d))
                        for cid, c, d in keyed
                    ],
                )
        self._delete_vectors(stale)

    def remove(self, article_ids: Sequence[str]) -> list[str]:
        """Remove articles and all their chunks; return the ids that were present."""
        with self.writing():
            return self._remove(article_ids)

    def _remove(self, article_ids: Sequence[str]) -> list[str]:
        present = list(self.content_hashes(article_ids))
        if not present:
            return []
        stale: list[str] = []
        with self._transaction() as db:
            for article_id in present:
                stale.extend(
                    r[0]
                    for r in db.execute(
                        "SELECT id FROM chunks WHERE article_id=? AND dense=1", (article_id,)
                    )
                )
                db.execute("DELETE FROM chunks WHERE article_id=?", (article_id,))
                db.execute("DELETE FROM articles WHERE id=?", (article_id,))
        self._delete_vectors(stale)
        return present

    def _delete_vectors(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 1000):
            self.collection.delete(ids=ids[i : i + 1000])

    # --- BM25 ---------------------------------------------------------------------------

    def keyword_index(self) -> KeywordIndex:
        """The BM25 index over all chunks, rebuilt first if the catalog has changed since."""
        with self._lock:
            generation = self.generation
            if self._bm25 is None or self._bm25.generation != generation:
                bm25 = KeywordIndex.load(self.config.bm25_path, generation)
                if bm25 is None:
                    articles = self._rows("SELECT id, title || '\n' || text FROM articles ORDER BY id")
                    bm25 = KeywordIndex.build(self.all_chunks(), articles, generation)
                    bm25.save(self.config.bm25_path)
                bm25.chunks.attach_facets(self._facets(chunks=True))
                bm25.articles.attach_facets(self._facets(chunks=False))
                self._bm25 = bm25
            return self._bm25

    def _facets(self, *, chunks: bool) -> dict[str, tuple[str, str, int, bool]]:
        """(article id, outlet, day, has a vector) for every chunk id, or for every article id."""
        rows = self._rows(
            "SELECT c.id, a.id, COALESCE(a.outlet, ''), a.published, c.dense FROM chunks c "
            "JOIN articles a ON a.id = c.article_id"
            if chunks
            else "SELECT id, id, COALESCE(outlet, ''), published, 0 FROM articles"
        )
        return {
            key: (aid, outlet, day_number(date.fromisoformat(pub)) if pub else 0, bool(dense))
            for key, aid, outlet, pub, dense in rows
        }

    def close(self) -> None:
        """Release the catalog connection."""
        with self._lock:
            self._db.close()


# Anserini's defaults; on RealTime QA they beat bm25s's k1=1.5, b=0.75 (benchmarks/RESULTS.md):
# a lower b penalises long articles less, and news answers often sit deep in long ones.
BM25_PARAMS = {"k1": 0.9, "b": 0.4}


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

    def attach_facets(self, facets: dict[str, tuple[str, str, int, bool]]) -> None:
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
        """Persist beside the catalog; written to a temporary folder, then swapped in."""
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


def _dump_mentions(mentions: list[Mention]) -> str:
    return json.dumps([m.model_dump(mode="json", exclude_defaults=True) for m in mentions])


def _article_from_row(row: tuple[Any, ...]) -> Article:
    return Article(
        id=row[0],
        title=row[1],
        outlet=row[2],
        published=date.fromisoformat(row[3]) if row[3] else None,
        url=row[4],
        authors=json.loads(row[5]),
        text=row[6],
        source=row[7],
    )


def _chunk_from_row(row: tuple[Any, ...]) -> IndexedChunk:
    return IndexedChunk(
        id=row[0],
        article_id=row[1],
        index=row[2],
        sentences=[tuple(s) for s in json.loads(row[3])],  # type: ignore[misc]
        embed_text=row[4],
    )


_STORES: dict[tuple[str, str | None, int, str], Store] = {}
_STORES_LOCK = threading.Lock()


def open_store(config: Any = None) -> Store:
    """The store for this ``IndexConfig`` (or settings holding one); one per data directory and
    collection per process."""
    config = index_config(config)
    key = (
        str(config.data_dir.resolve()),
        config.chroma_host,
        config.chroma_port,
        config.collection,
    )
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None or store.config.embedding != config.embedding:
            store = _STORES[key] = Store(config)
        return store
