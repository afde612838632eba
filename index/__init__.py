"""Ingestion: files in, a persistent index of sentence-addressable chunks out.

Entry point: ``ingest(paths, settings=...) -> IngestReport``.  The index itself (catalog,
Chroma, BM25) is ``open_store(settings)``.
"""

from index.ingest import ingest, ingest_articles
from index.models import Article, Chunk, IngestReport, Skip
from index.store import Store, open_store

__all__ = ["Article", "Chunk", "IngestReport", "Skip", "Store", "ingest", "ingest_articles", "open_store"]
