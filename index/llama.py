"""newsdesk's embedder as a llama-index ``BaseEmbedding``, for use in llama-index pipelines.

Kept apart from ``index.embeddings`` so that only code that works with llama-index pays for
importing it.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr


class NewsdeskEmbedding(BaseEmbedding):
    """A llama-index embedding model backed by an ``index.embeddings.Embedder``."""

    _embedder: Any = PrivateAttr()

    def __init__(self, *, embedder: Any, **kwargs: Any) -> None:
        kwargs.setdefault("embed_batch_size", embedder.batch_size)
        super().__init__(**kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "NewsdeskEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed_query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed_documents([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_documents(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)
