"""Ingestion: files in, a persistent index of sentence-addressable chunks out.

Entry point: ``ingest(paths, config=...) -> IngestReport`` (the pipeline is ``index.pipeline``).
The index itself (catalog, Chroma, BM25) is ``open_store(config)``.  ``config`` is an
``IndexConfig`` (or settings holding one as ``.index``).  The names below load on first use, so
importing a light part of ``index`` (its errors, its config) does not load the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from index.config import IndexConfig
    from index.models import Article, Chunk, IngestReport, Skip
    from index.pipeline import ingest, ingest_articles
    from index.store import Store, open_store

_HOME = {
    "Article": "index.models",
    "Chunk": "index.models",
    "IndexConfig": "index.config",
    "IngestReport": "index.models",
    "Skip": "index.models",
    "Store": "index.store",
    "ingest": "index.pipeline",
    "ingest_articles": "index.pipeline",
    "open_store": "index.store",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'index' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value
