"""Chunk vectors in a Chroma collection: embedded in the data folder, or on a Chroma server.

``ChromaVectors(config)`` opens the collection on first use (``config.chroma_host`` set: a server
started with ``chroma run``; else ``config.chroma_path``).  Each vector is stored under its chunk
id with metadata ``article_id``, ``content_hash``, ``chunk``, ``outlet`` ('' when unknown) and
``published`` (YYYYMMDD, 0 when undated), which is what a Chroma ``where`` clause can filter on.
The catalog, not Chroma, decides which vectors count: ids it does not list are ignored by
queries and removed by ``Store.reconcile``.  ``where_clause`` and ``admits`` turn a
``KeywordFilter`` (outlets, publication days) into a ``where`` clause on that metadata and into
the same test of one vector's metadata.

Embedded Chroma loads its vector index into each process once, and does not notice another
process's writes: ``reopen()`` drops this process's view so the next use reads the folder again
(``index.store`` calls it when Chroma's write log, ``written()``, shows another process has
written).

Embedded Chroma (1.5.9) answers a ``where`` from its SQLite file with one statement whose plan,
without table statistics, walks every embedding of the collection (``SEARCH embeddings USING
COVERING INDEX ... (segment_id=?)``) to test each against the matching metadata ids: a cost
that grows with the archive, however little the filter admits.  So each open gives that file
the statistics of its ``embeddings`` table (``ANALYZE``, once, and again when the table has
more than doubled since), after which SQLite looks the admitted ids up by rowid: the same rows,
at a cost that follows them (benchmarks/RESULTS.md, "One outlet at scale").
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from index.catalog import PreparedArticle
from index.config import IndexConfig
from index.dates import day_number
from index.errors import StoreError
from index.keywords import KeywordFilter
from index.lean_import import import_chromadb

SYNC_THRESHOLD = 5000
"""Vectors Chroma takes before it writes its HNSW graph to disk again (its ``sync_threshold``;
1,000 by default).  Each write is of the whole graph, so its cost grows with the archive: at
792k vectors a batch that crossed the default threshold took about 0.7 s more than the others
(benchmarks/RESULTS.md, "A fourth size, 200k articles").  Vectors not yet written are replayed
from Chroma's log by each process that loads the graph, about 0.35 ms each, so a larger
threshold moves cost from writes to loads: at 5,000, a load replays at most about 2 s, and a
batch's share of the graph's writes is a fifth of the default's."""


def metadata(article_id: str, content_hash: str, chunk: int, outlet: str,
             published: int) -> dict[str, Any]:
    """What Chroma keeps beside a chunk's vector: its article, version and place in it, and
    the outlet and day its filters read."""
    return {"article_id": article_id, "content_hash": content_hash, "chunk": chunk,
            "outlet": outlet, "published": published}


class ChromaVectors:
    """The Chroma collection of chunk vectors; safe to share between threads."""

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self._collection: Any = None
        self._warm: Any = None  # the collection whose graph a query has loaded
        self._synced = False  # the collection's sync_threshold checked (``add``)
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        """Where the vectors are: the server's ``host:port``, or the embedded store's folder."""
        if self.config.chroma_host:
            return f"{self.config.chroma_host}:{self.config.chroma_port}"
        return str(self.config.chroma_path)

    @property
    def collection(self) -> Any:
        """The Chroma collection itself (cosine space), opened on first use. Raises StoreError."""
        if self._collection is None:
            with self._lock:
                if self._collection is None:
                    self._collection = self._open()
        return self._collection

    @property
    def is_open(self) -> bool:
        """Whether the collection has been opened (and not dropped by ``reopen``) since."""
        return self._collection is not None

    @property
    def is_warm(self) -> bool:
        """Whether this process has loaded the collection's vector index (its HNSW graph) by
        querying it since it was last opened: embedded Chroma reads the whole graph into the
        process on the first query, seconds per hundred thousand vectors."""
        return self._collection is not None and self._warm is self._collection

    def warm(self) -> None:
        """Load the vector index into this process now (one query, for a stored vector's
        nearest; nothing to load in an empty collection)."""
        collection = self.collection
        got = collection.get(limit=1, include=["embeddings"])
        if not len(got["ids"]):
            return
        collection.query(query_embeddings=[list(got["embeddings"][0])], n_results=1, include=[])
        self._warm = collection

    def reopen(self) -> None:
        """Read the embedded store afresh on next use (no-op for a server, which is shared)."""
        if not self.config.chroma_host:
            with self._lock:
                self._collection = None

    def written(self) -> int | None:
        """Where embedded Chroma's write log stands: the sequence number of its last write, which
        every add and delete, by any process, moves on.  A view opened after it was read holds
        every write up to it.  None for a server (one view, shared) or when it cannot be read
        (no vectors written yet, or another layout of Chroma's file)."""
        if self.config.chroma_host:
            return None
        try:
            uri = f"{(Path(self.config.chroma_path) / 'chroma.sqlite3').resolve().as_uri()}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None)) as db:
                # the log is pruned up to what every segment has taken in, never past its last
                # write; the segments' own marks cover a log emptied by other means
                row = db.execute(
                    "SELECT max(last) FROM (SELECT max(seq_id) AS last FROM embeddings_queue "
                    "UNION ALL SELECT max(seq_id) FROM max_seq_id)"
                ).fetchone()
        except (sqlite3.Error, OSError, ValueError):
            return None
        return int(row[0]) if row and row[0] is not None else None

    def _open(self) -> Any:
        chromadb = import_chromadb(server=bool(self.config.chroma_host))
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
                _forget_cached_view(str(self.config.chroma_path))
                client = chromadb.PersistentClient(
                    path=str(self.config.chroma_path), settings=chroma_settings
                )
                give_statistics(Path(self.config.chroma_path) / "chroma.sqlite3")
            return client.get_or_create_collection(
                self.config.collection,
                configuration={"hnsw": {"space": "cosine", "sync_threshold": SYNC_THRESHOLD}},
            )
        except Exception as exc:
            server = self.config.chroma_host
            raise StoreError(
                f"cannot open {'the Chroma server at' if server else 'embedded Chroma in'} "
                f"{self.location}: {exc}",
                hint="start the server (`chroma run --path DIR`) or unset NEWSDESK_CHROMA_HOST"
                if server
                else "check the folder is writable and not used by another Chroma version",
            ) from exc

    def add(self, batch: Sequence[PreparedArticle]) -> None:
        """Upsert the vectors of these articles' leading chunks under their chunk ids.

        Only vectors and the metadata filters read go to Chroma; the chunk text stays in the
        catalog, its one home.  Chroma indexes any ``documents`` it is given for full-text
        search, which newsdesk never asks of it: with them an upsert took 2.4x as long and
        the collection six times the disk (benchmarks/RESULTS.md, "Chroma without the chunk
        text").

        Raises StoreError when Chroma cannot be opened or refuses the write.
        """
        ids: list[str] = []
        vectors: list[list[float]] = []
        metadatas: list[dict[str, Any]] = []
        for prepared in batch:
            article = prepared.article
            for chunk_id, chunk, vector in prepared.embedded():
                ids.append(chunk_id)
                vectors.append(vector)
                metadatas.append(metadata(article.id, prepared.content_hash, chunk.index,
                                          article.outlet or "", day_number(article.published)))
        self.upsert(ids, vectors, metadatas)

    def upsert(self, ids: Sequence[str], vectors: Any, metadatas: Sequence[dict[str, Any]]) -> None:
        """Upsert vectors with their ``metadata``; raises StoreError as ``add`` does."""
        try:
            self._give_sync_threshold()
            collection = self.collection
            for i in range(0, len(ids), 2000):
                collection.upsert(
                    ids=ids[i : i + 2000],
                    embeddings=vectors[i : i + 2000],
                    metadatas=metadatas[i : i + 2000],
                )
            if len(ids) and not self.config.chroma_host:
                self._warm = collection  # an embedded write loads the whole graph too
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"writing vectors to Chroma failed: {exc}") from exc

    def _give_sync_threshold(self) -> None:
        """Give a collection made before ``SYNC_THRESHOLD`` (or by another tool) that threshold,
        once per process; Chroma applies it from the next load of the graph."""
        if self._synced:
            return
        collection = self.collection
        hnsw = (collection.configuration or {}).get("hnsw") or {}
        if hnsw.get("sync_threshold", SYNC_THRESHOLD) != SYNC_THRESHOLD:
            collection.modify(configuration={"hnsw": {"sync_threshold": SYNC_THRESHOLD}})
        self._synced = True

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these vectors (ids that are absent are ignored)."""
        for i in range(0, len(ids), 1000):
            self.collection.delete(ids=list(ids[i : i + 1000]))

    def ids(self) -> Iterator[str]:
        """Every vector id in the collection, read in pages."""
        offset, page = 0, 5000
        while True:
            got = self.collection.get(include=[], limit=page, offset=offset)["ids"]
            yield from got
            if len(got) < page:
                return
            offset += page

    def query(
        self,
        vector: list[float],
        n: int,
        *,
        where: dict[str, Any] | None = None,
        admit: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[tuple[str, float]]:
        """The ``n`` nearest (chunk id, cosine similarity) among the vectors matching ``where``;
        with ``admit``, only those of the ``n`` whose metadata it accepts are returned.

        Raises chromadb's ``InternalError`` when this process's view is older than the folder
        (another process has written): ``reopen()`` and ask again.
        """
        extra = {"where": where} if where else {}
        include = ["distances", "metadatas"] if admit else ["distances"]
        collection = self.collection
        result = collection.query(query_embeddings=[vector], n_results=n, include=include, **extra)
        self._warm = collection
        metadatas = result["metadatas"][0] if admit else [None] * len(result["ids"][0])
        return [
            (cid, 1.0 - dist)
            for cid, dist, meta in zip(
                result["ids"][0], result["distances"][0], metadatas, strict=True
            )
            if admit is None or admit(meta or {})
        ]

    def nearest_exactly(self, vector: list[float], where: dict[str, Any]) -> list[tuple[str, float]]:
        """Every vector matching ``where``, as (chunk id, cosine similarity), best first: read
        with its embedding and scored exactly, which for a filter admitting a few thousand
        vectors at most costs less than Chroma's search among them (its graph walk must pass
        over the vectors it does not admit to find the ones it does).

        Raises chromadb's ``InternalError`` on an old view, as ``query`` does.
        """
        import numpy as np

        got = self.collection.get(where=where, include=["embeddings"])
        if not len(got["ids"]):
            return []
        matrix = np.asarray(got["embeddings"], dtype=np.float32)
        query = np.asarray(vector, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
        similarity = matrix @ query / np.where(norms > 0, norms, 1.0)
        order = np.argsort(-similarity, kind="stable")
        return [(got["ids"][i], float(similarity[i])) for i in order]


def give_statistics(path: Path) -> None:
    """``ANALYZE`` the ``embeddings`` table of embedded Chroma's SQLite file at ``path`` when it
    has no statistics yet, or has more than doubled since they were taken, so a ``where`` looks
    up the ids it admits instead of walking the whole collection (see the module notes).

    Statistics only guide SQLite's choice of plan: every statement returns the same rows with
    or without them, so Chroma's own reads and writes are unchanged.  Best effort: a folder
    being written by another process (busy), read-only or not yet holding a vector is left as
    it is, and the next open tries again.
    """
    try:
        uri = f"{path.resolve().as_uri()}?mode=rw"  # never creates the file
        with closing(sqlite3.connect(uri, uri=True, timeout=0.2, isolation_level=None)) as db:
            rows = db.execute("SELECT max(id) FROM embeddings").fetchone()[0] or 0
            if not rows:
                return
            stat = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()
            taken = db.execute(
                "SELECT stat FROM sqlite_stat1 WHERE tbl = 'embeddings'"
            ).fetchone() if stat else None
            if taken and rows <= 2 * int(taken[0].split()[0]):
                return
            db.execute("ANALYZE embeddings")
    except (sqlite3.Error, OSError, ValueError):
        return


def where_clause(within: KeywordFilter | None) -> dict[str, Any] | None:
    """The filter as a Chroma ``where`` clause (None when it admits everything); an undated
    vector (day 0) fails any date bound."""
    terms: list[dict[str, Any]] = []
    if within and within.outlets:
        terms.append({"outlet": {"$in": list(within.outlets)}})
    if within and within.first_day:
        terms.append({"published": {"$gte": within.first_day}})
    if within and within.last_day:
        terms.append({"published": {"$lte": within.last_day}})
        terms.append({"published": {"$gt": 0}})
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"$and": terms}


def admits(within: KeywordFilter, metadata: dict[str, Any]) -> bool:
    """Whether one vector's metadata passes the filter: ``where_clause`` as a test."""
    day = metadata.get("published", 0)
    if within.outlets and metadata.get("outlet") not in within.outlets:
        return False
    if within.first_day and day < within.first_day:
        return False
    return not within.last_day or 0 < day <= within.last_day


def chroma_error() -> type[Exception]:
    """chromadb's base error class, ``ChromaError`` (loading chromadb the lean way if needed)."""
    import_chromadb()
    from chromadb.errors import ChromaError

    return ChromaError


def _forget_cached_view(path: str) -> None:
    """Make the next embedded client of ``path`` read the folder afresh.

    Chroma keeps one client "system" per folder per process, loaded once, so a client made
    later in the same process would otherwise share an old view.  The system is dropped from
    Chroma's cache, not stopped, so queries running through it finish normally.  (The public
    ``clear_system_cache()`` would drop every folder's.)
    """
    from chromadb.api.shared_system_client import SharedSystemClient as Shared

    with Shared._refcount_lock:
        Shared._identifier_to_system.pop(path, None)
        Shared._identifier_to_refcount.pop(path, None)
