"""The Chroma collection of chunk vectors: made with newsdesk's HNSW settings, and an older
collection given them by its next write.  Real embedded Chroma and the real model."""

from __future__ import annotations

import chromadb
from chromadb.config import Settings as ChromaSettings

from assistant.settings import Settings
from index import Article, ingest_articles, open_store
from index.embeddings import Embedder
from index.store import Store
from index.vectors import SYNC_THRESHOLD


def sync_threshold(settings: Settings) -> int:
    """The collection's ``sync_threshold`` as Chroma itself reads it, from a client of its own."""
    client = chromadb.PersistentClient(path=str(settings.index.chroma_path),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    return int(client.get_collection(settings.index.collection).configuration["hnsw"][
        "sync_threshold"])


def test_a_new_collection_writes_its_graph_every_sync_threshold_vectors(
    settings: Settings, embedder: Embedder
) -> None:
    ingest_articles([Article(id="a", title="Port strike", text="Dock workers struck today.")],
                    config=settings, embedder=embedder)
    assert SYNC_THRESHOLD > 1000  # Chroma's default, whose whole-graph writes grow with it
    assert sync_threshold(settings) == SYNC_THRESHOLD


def test_an_older_collection_is_given_the_threshold_by_its_next_write(
    settings: Settings, embedder: Embedder
) -> None:
    client = chromadb.PersistentClient(path=str(settings.index.chroma_path),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    client.get_or_create_collection(settings.index.collection,  # as an earlier newsdesk made it
                                    configuration={"hnsw": {"space": "cosine"}})
    assert sync_threshold(settings) == 1000
    store = Store(settings)
    assert store.search_vectors([0.1] * 384, 3) == []  # reading changes nothing
    assert sync_threshold(settings) == 1000
    ingest_articles([Article(id="a", title="Port strike", text="Dock workers struck today.")],
                    config=settings, store=store, embedder=embedder)
    assert sync_threshold(settings) == SYNC_THRESHOLD
    found = open_store(settings).search_vectors(embedder.embed_query("Who struck?"), 1)
    assert found[0][0].startswith("a#")
