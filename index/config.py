"""The index's own configuration section: where the index lives and how articles are embedded.

``IndexConfig`` is a plain pydantic model with defaults only; it never reads the environment.
``assistant.settings.Settings`` composes it as ``settings.index`` and fills it from ``NEWSDESK_*``
variables.  Every ``index`` entry point takes an ``IndexConfig`` (or anything with an ``index``
attribute holding one, such as the full settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DEFAULT_DATA_DIR = platformdirs.user_data_path("newsdesk")
DEFAULT_MODEL_CACHE_DIR = platformdirs.user_cache_path("newsdesk") / "models"


class IndexConfig(BaseModel):
    """Where the index lives and how chunks are made and embedded."""

    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)

    data_dir: Path = Field(
        DEFAULT_DATA_DIR,
        description="Folder holding the article catalog, the embedded Chroma store and the BM25 "
        "index. Override with --data-dir or NEWSDESK_DATA_DIR.",
    )
    chroma_host: str | None = Field(
        None,
        description="Host of a Chroma server (`chroma run`). Unset: embedded Chroma in data_dir.",
    )
    chroma_port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server.")
    catalog_url: SecretStr | None = Field(
        None,
        description="Server mode: a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/DB) "
        "holding the catalog, the keyword search and the writers' lock, shared by every "
        "newsdesk process that sets it; needs chroma_host too. Unset: SQLite in data_dir.",
    )
    collection: str = Field(
        "newsdesk",
        min_length=3,
        max_length=60,
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$",
        description="Name of the Chroma collection holding the chunks.",
    )
    embedding: str = Field(
        "local:all-MiniLM-L6-v2",
        description="Embedding model: 'local:all-MiniLM-L6-v2' (bundled, offline, CPU, run with "
        "ONNX Runtime) or 'openai:MODEL' such as 'openai:text-embedding-3-small' (needs "
        "OPENAI_API_KEY).",
    )
    embed_batch_size: int = Field(
        64, ge=1, le=2048,
        description="Chunks ingest hands the embedding model per call (the local model runs at "
        "most 16 at a time, one run per core).",
    )
    model_cache_dir: Path = Field(
        DEFAULT_MODEL_CACHE_DIR,
        description="Where the bundled embedding model's ONNX export is kept (made once from the "
        "installed weights, checked by sha256 on every change).",
    )
    chunk_tokens: int = Field(
        200,
        ge=32,
        le=256,
        description="Largest chunk, in the embedding model's tokens, header included. "
        "all-MiniLM-L6-v2 reads at most 256 tokens, so chunks stay under that.",
    )
    dense_chunks_per_article: int = Field(
        2,
        ge=0,
        description="Embed at most this many leading chunks of each article (0: all). News puts "
        "the essentials first; BM25 still covers every chunk. Each vector stays in the memory "
        "of every process that searches embedded Chroma (about 2 KB: `newsdesk stats` shows "
        "vector_memory_mib), so this sets what an archive needs: 2 fits 1M articles in 8 GB (projected), "
        "with RealTime QA dev's hybrid hit@1/hit@5 as with 4 (benchmarks/RESULTS.md). Raising "
        "it costs ingest time and memory; an index built with another value is re-embedded "
        "when its files are ingested again.",
    )
    embedding_api_key: SecretStr | None = Field(
        None,
        description="Key for OpenAI embeddings (the settings fill it from OPENAI_API_KEY).",
    )
    embedding_base_url: str | None = Field(
        None,
        description="Base URL for OpenAI-protocol embeddings (the settings fill it from "
        "OPENAI_BASE_URL).",
    )

    @model_validator(mode="after")
    def _server_mode_is_whole(self) -> IndexConfig:
        # a server catalog with vectors in a local folder could not be shared by other machines
        if self.catalog_url is not None:
            if not self.catalog_url.get_secret_value().startswith(("postgresql://", "postgres://")):
                raise ValueError("catalog_url must be a postgresql:// URL")
            if not self.chroma_host:
                raise ValueError("catalog_url (server mode) needs NEWSDESK_CHROMA_HOST, the Chroma "
                                 "server (`chroma run`) that holds the vectors")
        return self

    @property
    def catalog_path(self) -> Path:
        """The SQLite catalog: the source of truth for articles and chunks."""
        return self.data_dir / "catalog.sqlite3"

    @property
    def chroma_path(self) -> Path:
        """Where embedded Chroma keeps its files."""
        return self.data_dir / "chroma"


def index_config(config: Any = None) -> IndexConfig:
    """The ``IndexConfig`` in ``config``: itself, the ``index`` section of full settings, or the
    defaults when None."""
    if config is None:
        return IndexConfig()
    if isinstance(config, IndexConfig):
        return config
    section = getattr(config, "index", None)
    if isinstance(section, IndexConfig):
        return section
    raise TypeError(f"expected IndexConfig or settings with an .index section, got {config!r}")
