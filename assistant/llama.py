"""newsdesk's retrieval as a llama-index retriever, for use in llama-index query engines.

Kept apart from ``assistant.retrieve`` so that only code that works with llama-index pays for
importing it::

    from llama_index.core.query_engine import RetrieverQueryEngine
    from assistant.llama import NewsdeskRetriever

    engine = RetrieverQueryEngine.from_args(NewsdeskRetriever(settings=settings), llm=llm)
    response = engine.query("When did Assad visit Moscow?")
    for source in response.source_nodes:
        source.node.metadata["sentences"]      # [[start, end], ...] in the article's text

Every node is one retrieved chunk, its text verbatim from the article, so each citation a
llama-index pipeline makes from it can still point at an exact sentence.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from assistant.errors import ArticleNotFound
from assistant.retrieve import Filters, Hit, retrieve
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder
from index.models import Article
from index.store import IndexedChunk, Store, open_store

HIDDEN_FROM_LLM = ["article_id", "sentences"]
"""Metadata keys left out of the text a response synthesizer shows its LLM."""


class NewsdeskRetriever(BaseRetriever):
    """newsdesk's retrieval (hybrid by default) behind llama-index's ``BaseRetriever``.

    Each query runs ``assistant.retrieve.retrieve`` with the given filters, retriever name
    (``mode``) and ``k``, and returns one ``NodeWithScore`` per hit, best first, scored with the
    fused score.  A node's id is the chunk id, its text is the chunk exactly as it stands in the
    article (``article.text[start_char_idx:end_char_idx]``), its source relationship points at
    the article id, and its metadata holds:

    - ``article_id``, ``title``, ``outlet``, ``published`` (ISO date), ``url`` (None if unknown);
    - ``sentences``: ``[start, end]`` of each of the chunk's sentences, so that
      ``article.text[start:end]`` is exactly that sentence.

    ``article_id`` and ``sentences`` are hidden from the LLM's view of the node.  Raises
    NothingIndexed when the index is empty and ConfigError for an unknown ``mode``.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        store: Store | None = None,
        embedder: Embedder | None = None,
        filters: Filters | None = None,
        mode: str | None = None,
        k: int | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.settings = settings or get_settings()
        self.store = store or open_store(self.settings)
        self.embedder = embedder
        self.filters = filters
        self.mode = mode
        self.k = k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        retrieval = retrieve(
            query_bundle.query_str,
            self.filters,
            mode=self.mode,
            k=self.k,
            settings=self.settings,
            store=self.store,
            embedder=self.embedder,
        )
        articles: dict[str, Article] = {}
        nodes = []
        for hit, chunk in retrieval.chunks(self.store):
            if chunk.article_id not in articles:
                try:
                    articles[chunk.article_id] = self.store.get_article(chunk.article_id)
                except ArticleNotFound:  # removed while this query ran
                    continue
            nodes.append(chunk_node(hit, chunk, articles[chunk.article_id]))
        return nodes


def chunk_node(hit: Hit, chunk: IndexedChunk, article: Article) -> NodeWithScore:
    """The llama-index node of one retrieved chunk of ``article`` (see ``NewsdeskRetriever``)."""
    start, end = chunk.sentences[0][0], chunk.sentences[-1][1]
    metadata: dict[str, Any] = {
        "article_id": article.id,
        "title": article.title,
        "outlet": article.outlet,
        "published": article.published.isoformat() if article.published else None,
        "url": article.url,
        "sentences": [[s, e] for s, e in chunk.sentences],
    }
    node = TextNode(
        id_=chunk.id,
        text=article.text[start:end],
        start_char_idx=start,
        end_char_idx=end,
        metadata=metadata,
        excluded_llm_metadata_keys=list(HIDDEN_FROM_LLM),
        excluded_embed_metadata_keys=list(metadata),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=article.id)},
    )
    return NodeWithScore(node=node, score=hit.score)
