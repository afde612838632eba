"""Ingestion: files in, a persistent index of sentence-addressable chunks out.

Entry point: ``ingest(paths, config=...) -> IngestReport``.  The index itself (catalog,
Chroma, BM25) is ``open_store(config)``.  ``config`` is an ``IndexConfig`` (or settings holding
one as ``.index``).  Heavy libraries (Chroma, bm25s, ONNX Runtime) load on first use.
"""

from index.config import IndexConfig
from index.ingest import ingest, ingest_articles
from index.models import Article, Chunk, IngestReport, Skip
from index.store import Store, open_store

__all__ = [
    "Article",
    "Chunk",
    "IndexConfig",
    "IngestReport",
    "Skip",
    "Store",
    "ingest",
    "ingest_articles",
    "open_store",
]
