"""newsdesk's settings: the one typed object that reads the environment.

Every other module receives a ``Settings`` (or builds the default one through
``get_settings()``); nothing else looks at ``os.environ``.  Values resolve as:
explicit keyword argument > ``NEWSDESK_*`` environment variable > default.
The OpenAI variables keep their usual names (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``)
so an existing setup just works.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigError

ENV_PREFIX = "NEWSDESK_"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = platformdirs.user_data_path("newsdesk")


def default_prompts_dir() -> Path:
    """The repo's prompts/ (editable install), else the copy a wheel installs under the prefix."""
    repo = REPO_ROOT / "prompts"
    return repo if repo.is_dir() else Path(sys.prefix) / "share" / "newsdesk" / "prompts"


class Settings(BaseSettings):
    """All of newsdesk's configuration, each field described."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        populate_by_name=True,
    )

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
    collection: str = Field(
        "newsdesk",
        min_length=3,
        max_length=60,
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$",
        description="Name of the Chroma collection holding the chunks.",
    )
    embedding: str = Field(
        "local:all-MiniLM-L6-v2",
        description="Embedding model: 'local:all-MiniLM-L6-v2' (bundled, offline, CPU) or "
        "'openai:MODEL' such as 'openai:text-embedding-3-small' (needs OPENAI_API_KEY).",
    )
    embed_batch_size: int = Field(64, ge=1, le=2048, description="Chunks embedded per batch.")
    chunk_tokens: int = Field(
        200,
        ge=32,
        le=256,
        description="Largest chunk, in the embedding model's tokens, header included. "
        "all-MiniLM-L6-v2 reads at most 256 tokens, so chunks stay under that.",
    )
    dense_chunks_per_article: int = Field(
        4,
        ge=0,
        description="Embed at most this many leading chunks of each article (0: all). News puts "
        "the essentials first; BM25 still covers every chunk. Raising it costs ingest time.",
    )
    retriever: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="How chunks are found: dense (Chroma), bm25, or both fused."
    )
    candidates: int = Field(
        50, ge=1, le=1000, description="Chunks each retriever contributes before fusion."
    )
    top_k: int = Field(8, ge=1, le=100, description="Chunks kept after fusion.")
    fusion_weights: dict[str, float] = Field(
        {"dense": 0.3, "chunk_bm25": 0.2, "article_bm25": 0.5},
        description="Weights of the hybrid retriever's signals: dense chunk similarity, BM25 over "
        "chunks and BM25 over whole articles (tuned on RealTime QA, benchmarks/RESULTS.md).",
    )
    recency: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Favour articles published shortly before the day a question is asked from: "
        "'auto' does so for questions asked as_of a day and for questions about the present or "
        "the recent past ('the current ...', 'latest', 'this week'), 'on' always, 'off' never.",
    )
    recency_weight: float = Field(
        0.8,
        ge=0,
        le=5,
        description="Largest recency boost, in the z-score units of the fused relevance scores.",
    )
    recency_days: float = Field(
        60,
        gt=0,
        description="How fast the recency boost fades: an article this many days older than the "
        "day asked from gets 1/e (37%) of the full boost.",
    )
    llm: str = Field(
        "auto",
        description="What writes answers: 'extractive' (no LLM: cited source sentences), "
        "'openai:MODEL', 'openai-compatible:MODEL' (needs OPENAI_BASE_URL), or 'auto': "
        "an OpenAI-protocol model when OPENAI_API_KEY or OPENAI_BASE_URL is set, else extractive.",
    )
    llm_model: str = Field("gpt-4o-mini", description="Model used when llm is 'auto'.")
    llm_timeout: float = Field(30.0, gt=0, description="Seconds before an LLM call times out.")
    llm_max_retries: int = Field(
        2, ge=0, le=10, description="Retries (with backoff) on 429, 5xx and timeouts."
    )
    support_threshold: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Least similarity between an answer sentence and its cited source sentence "
        "for the citation to count as supporting (calibrated in benchmarks/RESULTS.md).",
    )
    extractive_threshold: float = Field(
        0.40,
        ge=0,
        le=1,
        description="Least relevance a source sentence needs for an extractive answer; below "
        "it newsdesk says the articles do not answer (calibrated in benchmarks/RESULTS.md).",
    )
    prompts_dir: Path = Field(
        default_factory=default_prompts_dir, description="Folder holding the prompt templates."
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "NEWSDESK_OPENAI_API_KEY", "openai_api_key"),
        description="Key for OpenAI or an OpenAI-compatible server.",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OPENAI_BASE_URL", "NEWSDESK_OPENAI_BASE_URL", "openai_base_url"
        ),
        description="Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio).",
    )
    api_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="Bearer token `newsdesk serve` requires on every route but /healthz "
        "(clients send 'Authorization: Bearer KEY'). At least 16 characters, e.g. from "
        "`openssl rand -hex 32`. Required to serve on an address other than loopback.",
    )
    api_max_upload_mb: float = Field(
        10.0,
        gt=0,
        le=1024,
        description="Largest body POST /v1/articles accepts (JSON records or an uploaded file), "
        "in MiB. Questions and chat requests are limited to 1 MiB.",
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_env(cls, data: Any) -> Any:
        """A mistyped NEWSDESK_* variable is an error, not silently ignored."""
        known = {ENV_PREFIX + name.upper() for name in cls.model_fields}
        unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(unknown)}",
                hint="known settings: " + ", ".join(sorted(known)),
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> Settings:
        expected = {"dense", "chunk_bm25", "article_bm25"}
        if set(self.fusion_weights) != expected:
            raise ConfigError(
                f"fusion_weights must name exactly {sorted(expected)}",
                hint='e.g. NEWSDESK_FUSION_WEIGHTS=\'{"dense": 0.3, "chunk_bm25": 0.3, '
                '"article_bm25": 0.4}\'',
            )
        from assistant.prompts import load_prompts

        load_prompts(self.prompts_dir)  # a broken template fails now, naming the file
        kind = self.llm.partition(":")[0]
        if kind not in {"auto", "extractive", "openai", "openai-compatible"}:
            raise ConfigError(
                f"unknown llm {self.llm!r}",
                hint="use 'extractive', 'openai:MODEL', 'openai-compatible:MODEL' or 'auto'",
            )
        if kind == "openai-compatible" and not self.openai_base_url:
            raise ConfigError(
                f"llm {self.llm!r} needs a server address", hint="set OPENAI_BASE_URL"
            )
        if kind == "openai" and not (self.openai_api_key or self.openai_base_url):
            raise ConfigError(f"llm {self.llm!r} needs an API key", hint="set OPENAI_API_KEY")
        return self

    @property
    def resolved_llm(self) -> str:
        """The llm setting with 'auto' decided."""
        if self.llm != "auto":
            return self.llm
        if self.openai_base_url:
            return f"openai-compatible:{self.llm_model}"
        if self.openai_api_key:
            return f"openai:{self.llm_model}"
        return "extractive"

    @property
    def catalog_path(self) -> Path:
        """The SQLite catalog: the source of truth for articles and chunks."""
        return self.data_dir / "catalog.sqlite3"

    @property
    def chroma_path(self) -> Path:
        """Where embedded Chroma keeps its files."""
        return self.data_dir / "chroma"

    @property
    def bm25_path(self) -> Path:
        """Where the BM25 keyword index is persisted."""
        return self.data_dir / "bm25"


def get_settings(**overrides: Any) -> Settings:
    """Build settings from the environment plus explicit overrides (None values are ignored).

    Raises ConfigError with the offending field named when a value is invalid.
    """
    from pydantic import ValidationError

    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"invalid settings: {problems}",
            hint="fix the NEWSDESK_* environment variable or command-line option named above",
        ) from None
