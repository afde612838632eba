"""Embedding models behind one small interface: ``get_embedder(config) -> Embedder``.

``local:all-MiniLM-L6-v2`` (the default) runs the bundled model's verified ONNX export
(``index.bundled_model``) with ONNX Runtime and the ``tokenizers`` library: no torch at run time,
vectors equal to the sentence-transformers model's (cosine >= 0.9999, checked at export and in the
tests).  ``openai:MODEL`` calls OpenAI's embeddings endpoint through llama-index.

``Embedder.model`` is the llama-index ``BaseEmbedding`` for either, for use inside llama-index
pipelines; newsdesk's own hot paths (``embed_documents``, ``embed_query``) call the runtime
directly, because importing llama-index costs more than a whole cold ``newsdesk ask`` may take.
Models load lazily: counting tokens for chunking needs only the tokenizer.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from index.config import IndexConfig, index_config
from index.errors import ConfigError, EmbeddingError

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

    from index.bundled_model import BundledModel

LOCAL_MODELS = {"all-MiniLM-L6-v2"}
SENTENCE_CACHE = 20_000  # sentences whose vectors answers re-check


RUN_TEXTS = 16
"""Texts the local model embeds in one ONNX Runtime run at the most: smaller runs pad less and
were faster per text on a 2-core machine than runs of 32 or 64 (benchmarks/RESULTS.md, "Ingest:
the model on one core per run")."""


class OnnxEncoder:
    """Sentence embeddings from an ONNX graph whose output is the pooled, normalised vector.

    ``graph_path`` is the graph the session runs: the export as ONNX Runtime optimised and
    kept it (``index.bundled_model.open_session``), or the export itself."""

    def __init__(self, bundled: BundledModel, *, batch_size: int = RUN_TEXTS, max_tokens: int = 256) -> None:
        from tokenizers import Tokenizer

        from index.bundled_model import open_session

        try:
            self.session, self.graph_path = open_session(bundled)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbeddingError(
                f"cannot load {bundled.onnx_path}: {exc}",
                hint=f"delete {bundled.onnx_path.parent} so it is exported again",
            ) from exc
        self.tokenizer = Tokenizer.from_file(str(bundled.tokenizer_path))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding()
        self.batch_size = batch_size
        self.workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of ``texts`` in order.

        Texts of similar length share a run (less padding), and the runs go to the session from
        one thread per core at once, each run on one core (see ``bundled_model.open_session``);
        a few texts are split into as many runs as there are cores.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        size = max(1, min(self.batch_size, -(-len(order) // self.workers)))  # every core busy
        runs = [order[i : i + size] for i in range(0, len(order), size)]
        out: list[Any] = [None] * len(texts)

        def run(picked: list[int]) -> None:
            for i, vector in zip(picked, self._vectors([texts[i] for i in picked]), strict=True):
                out[i] = vector.tolist()

        if len(runs) < 2 or self.workers < 2:
            for picked in runs:
                run(picked)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.workers, len(runs)), "onnx") as pool:
                list(pool.map(run, runs))  # list(): re-raise the first failure here
        return out

    def _vectors(self, texts: list[str]) -> Any:
        import numpy as np

        encoded = self.tokenizer.encode_batch_fast(texts)  # no offsets
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self.session.run(None, feed)[0]


class Embedder:
    """Embeds chunk texts and queries, and counts tokens the way the model will."""

    def __init__(
        self,
        spec: str,
        *,
        batch_size: int = 64,
        api_key: str | None = None,
        base_url: str | None = None,
        cache_dir: os.PathLike[str] | str | None = None,
    ) -> None:
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
        self.cache_dir = cache_dir if cache_dir is not None else IndexConfig().model_cache_dir
        self._api_key = api_key
        self._base_url = base_url
        self._lock = threading.Lock()
        self._cache: LRUCache[str, list[float]] = LRUCache(maxsize=SENTENCE_CACHE)

    @cached_property
    def bundled(self) -> BundledModel:
        """The verified ONNX export of the bundled model (exported on first use)."""
        from pathlib import Path

        from index.bundled_model import bundled_model

        return bundled_model(Path(self.cache_dir))

    @cached_property
    def _tokenizer(self):  # type: ignore[no-untyped-def]
        if self.kind == "local":
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.bundled.tokenizer_path))
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
            encoded = tok.encode_batch_fast(list(texts), add_special_tokens=False)  # no offsets
            return [len(e.ids) for e in encoded]
        return [len(ids) for ids in tok.encode_ordinary_batch(list(texts))]

    @cached_property
    def encoder(self) -> OnnxEncoder:
        """The ONNX Runtime encoder of the bundled model, loaded on first use."""
        if self.kind != "local":
            raise ConfigError(f"{self.spec} has no local encoder")
        with self._lock:
            return OnnxEncoder(self.bundled, batch_size=min(self.batch_size, RUN_TEXTS))

    @cached_property
    def model(self) -> BaseEmbedding:
        """This embedder as a llama-index ``BaseEmbedding``, built on first use."""
        if self.kind == "local":
            from index.llama import NewsdeskEmbedding

            return NewsdeskEmbedding(embedder=self, model_name=self.spec)
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

    def load_libraries(self) -> None:
        """Import what embedding runs on (exporting the bundled model on first use), without
        loading the model.  Call it before starting another thread that imports: two threads
        importing one package at once can leave it half-initialised."""
        if self.kind == "local":
            self.bundled  # noqa: B018 - exports the model the first time
            import numpy  # noqa: F401
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        else:
            self.model  # noqa: B018 - imports llama-index's OpenAI embedding

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of chunk texts, in order."""
        if not texts:
            return []
        try:
            if self.kind == "local":
                return self.encoder.embed(list(texts))
            return self.model.get_text_embedding_batch(list(texts))
        except (EmbeddingError, ConfigError):
            raise
        except Exception as exc:  # any backend failure becomes one domain error
            raise EmbeddingError(f"embedding with {self.spec} failed: {exc}") from exc

    def embed_cached(self, texts: Sequence[str]) -> list[list[float]]:
        """Like ``embed_documents``, remembering recent texts (answers re-check the same sentences)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = self.embed_documents(missing)
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            known.update(zip(missing, fresh, strict=True))
            self._cache.update(zip(missing, fresh, strict=True))
        return [known[t] for t in texts]

    def with_own_cache(self) -> Embedder:
        """The same loaded model with an empty sentence-embedding cache of its own.

        For measuring several configurations side by side: with a shared cache, whichever runs
        second would reuse the first one's vectors and look faster than it is.
        """
        twin = copy.copy(self)  # shares the loaded model and tokenizer (cached properties)
        twin._lock = threading.Lock()
        twin._cache = LRUCache(maxsize=SENTENCE_CACHE)
        return twin

    def embed_query(self, text: str) -> list[float]:
        """Embedding of a search query."""
        if self.kind == "local":
            return self.embed_documents([text])[0]  # the model has no query prefix
        try:
            return self.model.get_query_embedding(text)
        except Exception as exc:  # any backend failure becomes one domain error
            raise EmbeddingError(f"embedding the query with {self.spec} failed: {exc}") from exc


_CACHE: dict[tuple[str, int, str], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(config: Any = None) -> Embedder:
    """The embedder an ``IndexConfig`` names; one instance per model per process."""
    config = index_config(config)
    key = (config.embedding, config.embed_batch_size, str(config.model_cache_dir))
    with _CACHE_LOCK:
        if key not in _CACHE:
            api_key = config.embedding_api_key
            _CACHE[key] = Embedder(
                config.embedding,
                batch_size=config.embed_batch_size,
                api_key=api_key.get_secret_value() if api_key else None,
                base_url=config.embedding_base_url,
                cache_dir=config.model_cache_dir,
            )
        return _CACHE[key]
