"""newsdesk's settings: one typed object in sections, and the only reader of the environment.

``Settings`` composes five sections, each a pydantic model with every field described and unknown
fields rejected:

- ``index``: where the index lives and how articles are embedded (``index.config.IndexConfig``);
- ``retrieval``: how chunks are found and fused;
- ``writer``: what writes answers and how citations are judged;
- ``api``: the HTTP service;
- ``watch``: how `newsdesk watch` follows feeds (``index.feeds.WatchConfig``).

Values resolve as: explicit keyword argument > ``NEWSDESK_<FIELD>`` environment variable > default.
Field names are unique across sections, so the environment stays flat (``NEWSDESK_TOP_K``,
``NEWSDESK_DATA_DIR``) and so do ``get_settings(top_k=5)`` and ``settings.updated(top_k=5)``.
The OpenAI variables keep their usual names (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) so an
existing setup just works.
"""

from __future__ import annotations

import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from index.config import IndexConfig
from index.errors import ConfigError
from index.feeds import WatchConfig

ENV_PREFIX = "NEWSDESK_"
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_prompts_dir() -> Path:
    """The repo's prompts/ (editable install), else the copy a wheel installs under the prefix."""
    repo = REPO_ROOT / "prompts"
    return repo if repo.is_dir() else Path(sys.prefix) / "share" / "newsdesk" / "prompts"


_SECTION = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)


class RetrievalSettings(BaseModel):
    """How chunks are found for a question and fused into one ranking."""

    model_config = _SECTION

    retriever: str = Field(
        "hybrid",
        description="How chunks are found, a name in assistant.retrieve.RETRIEVERS: 'dense' "
        "(Chroma), 'bm25', or 'hybrid' (both fused).",
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
    chunk_weight: float = Field(
        0.5,
        ge=0,
        le=5,
        description="Hybrid fusion: a chunk scores its article's fused score plus this times its "
        "own fused z-score (tuned on RealTime QA dev-small).",
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

    @model_validator(mode="after")
    def _check(self) -> RetrievalSettings:
        expected = {"dense", "chunk_bm25", "article_bm25"}
        if set(self.fusion_weights) != expected:
            raise ValueError(
                f"fusion_weights must name exactly {sorted(expected)}, e.g. "
                '\'{"dense": 0.3, "chunk_bm25": 0.3, "article_bm25": 0.4}\''
            )
        return self


class WriterSettings(BaseModel):
    """What writes answers, and how answers and citations are judged."""

    model_config = _SECTION

    llm: str = Field(
        "auto",
        description="What writes answers, a kind in assistant.llm.WRITERS: 'extractive' (no LLM: "
        "cited source sentences), 'openai:MODEL', 'openai-compatible:MODEL' (needs "
        "OPENAI_BASE_URL), 'local:PATH.gguf' (a GGUF model run in process by llama.cpp; needs "
        "the 'local' extra), or 'auto': an OpenAI-protocol model when OPENAI_API_KEY or "
        "OPENAI_BASE_URL is set, else extractive. Checked when the writer is made.",
    )
    llm_threads: int = Field(
        0, ge=0, le=256, description="Local models: CPU threads llama.cpp uses (0: every core)."
    )
    llm_context: int = Field(
        4096,
        ge=512,
        le=131072,
        description="Local models: context size in tokens; the prompt (sources and question) "
        "plus the answer must fit.",
    )
    llm_max_tokens: int = Field(
        400, ge=16, le=8192, description="Longest answer a language model may write, in tokens."
    )
    llm_json: Literal["auto", "on", "off", "quote"] = Field(
        "auto",
        description="Structured answers: the model writes JSON under a schema (sentences, each "
        "with the numbers of its sources, or cannot-answer) and code writes the [n] markers. "
        "'auto' is on for local models and off for servers; 'on' needs a server that supports "
        "response_format json_schema (OpenAI, vLLM, llama.cpp, Ollama); 'quote' is 'on' with "
        "the answering source sentence quoted first, and a refusal when it is not one.",
    )
    llm_evidence: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Evidence-first context: show the model the best-ranked source sentences "
        "with their neighbours instead of whole chunks. 'auto' is on for local models (prompt "
        "reading dominates on a CPU) and off for servers (benchmarks/RESULTS.md).",
    )
    llm_gate: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Refusal gate: refuse without asking the model when the extractive writer "
        "finds no source sentence that could answer (none on topic holding what the question "
        "asks for). 'auto' is on for local models, which rarely refuse by themselves, and off "
        "for servers (benchmarks/RESULTS.md).",
    )
    evidence_sentences: int = Field(
        4,
        ge=1,
        le=50,
        description="Evidence-first context: how many best-ranked sentences (each with a "
        "neighbour either side).",
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
    source_prior: float = Field(
        0.4,
        ge=0,
        le=5,
        description="Extractive writer: relevance bonus for sentences of the best-ranked article, "
        "halving with each later article (tuned on RealTime QA dev-small).",
    )
    second_sentence_ratio: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Extractive writer: a further sentence (up to three in all) is quoted when "
        "its evidence probability reaches this share of the first's (fitted on RealTime QA "
        "dev-small by benchmarks/fit_extractive.py).",
    )
    timeline_support: float = Field(
        0.55,
        ge=0,
        le=1,
        description="Timelines: least similarity between a dated sentence and the event it is "
        "listed under for it to count as a source of that event.",
    )
    prompts_dir: Path = Field(
        default_factory=default_prompts_dir, description="Folder holding the prompt templates."
    )


class ApiSettings(BaseModel):
    """The HTTP service (`newsdesk serve`)."""

    model_config = _SECTION

    api_key: SecretStr | None = Field(
        None,
        description="Bearer token `newsdesk serve` requires on every route but /healthz "
        "(clients send 'Authorization: Bearer KEY'). At least 16 characters, no spaces, e.g. "
        "from `openssl rand -hex 32`; checked when the HTTP service starts (other commands "
        "ignore it). Required to serve on an address other than loopback.",
    )
    api_max_upload_mb: float = Field(
        10.0,
        gt=0,
        le=1024,
        description="Largest body POST /v1/articles accepts (JSON records or an uploaded file), "
        "in MiB. Questions and chat requests are limited to 1 MiB.",
    )


    def checked_key(self) -> str | None:
        """The API key the HTTP service requires, or None when none is set.

        Checked here, when a service starts, rather than when settings load, so commands that
        never serve (``newsdesk ingest``) do not fail over it.  Raises ConfigError, in words,
        for a key that is empty, blank, holds spaces or other non-printing characters, or is
        shorter than ``MIN_API_KEY`` characters.
        """
        if self.api_key is None:
            return None
        key = self.api_key.get_secret_value()
        problem = None
        if not key.strip():
            problem = "is empty" if not key else "is blank (only spaces)"
        elif any(not (c.isascii() and c.isprintable()) or c.isspace() for c in key):
            problem = "holds spaces or characters other than printable ASCII"
        elif len(key) < MIN_API_KEY:
            problem = f"is {len(key)} characters long; it needs at least {MIN_API_KEY}"
        if problem:
            raise ConfigError(
                f"NEWSDESK_API_KEY {problem}",
                hint="set it to a long random token, e.g. "
                "`export NEWSDESK_API_KEY=$(openssl rand -hex 32)`, or unset it to serve on "
                "loopback without a key",
            )
        return key


MIN_API_KEY = 16
"""Fewest characters an API key may have."""

SECTIONS: dict[str, type[BaseModel]] = {
    "index": IndexConfig,
    "retrieval": RetrievalSettings,
    "writer": WriterSettings,
    "api": ApiSettings,
    "watch": WatchConfig,
}
CREDENTIALS = {"openai_api_key": "OPENAI_API_KEY", "openai_base_url": "OPENAI_BASE_URL"}
_DERIVED = {"embedding_api_key", "embedding_base_url"}  # filled from the credentials


def _field_section() -> dict[str, str]:
    where = {name: section for section, model in SECTIONS.items() for name in model.model_fields}
    return {name: section for name, section in where.items() if name not in _DERIVED}


FIELD_SECTION = _field_section()


class Settings(BaseModel):
    """All of newsdesk's configuration, in sections; build it with ``get_settings()``."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    index: IndexConfig = Field(default_factory=IndexConfig, description="The index section.")
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings, description="The retrieval section."
    )
    writer: WriterSettings = Field(default_factory=WriterSettings, description="The writer section.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="The HTTP section.")
    watch: WatchConfig = Field(default_factory=WatchConfig, description="The feed watcher section.")
    openai_api_key: SecretStr | None = Field(
        None, description="Key for OpenAI or an OpenAI-compatible server (OPENAI_API_KEY)."
    )
    openai_base_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio; "
        "OPENAI_BASE_URL).",
    )

    @model_validator(mode="after")
    def _share_credentials(self) -> Settings:
        if self.index.embedding_api_key is None and self.openai_api_key is not None:
            self.index.embedding_api_key = self.openai_api_key
        if self.index.embedding_base_url is None and self.openai_base_url is not None:
            self.index.embedding_base_url = self.openai_base_url
        return self

    def updated(self, **changes: Any) -> Settings:
        """A copy with these flat fields changed (``top_k=3``, ``data_dir=...``), validated; a
        None value leaves its field as it is."""
        return _build(self._flat() | changes)

    def _flat(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for section in SECTIONS:
            flat.update(dict(getattr(self, section)))
        for name in _DERIVED:
            flat.pop(name, None)
        flat.update(openai_api_key=self.openai_api_key, openai_base_url=self.openai_base_url)
        return flat


def _env_name(field: str) -> str:
    return CREDENTIALS.get(field, ENV_PREFIX + field.upper())


def _from_environment() -> dict[str, Any]:
    """Flat field values from NEWSDESK_* (and OPENAI_*) variables; a mistyped name is an error."""
    known = {ENV_PREFIX + name.upper(): name for name in FIELD_SECTION}
    known |= {ENV_PREFIX + name.upper(): name for name in CREDENTIALS}
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigError(
            f"unknown setting {', '.join(unknown)}",
            hint="known settings: " + ", ".join(sorted(known)),
        )
    values: dict[str, Any] = {}
    for name, variable in CREDENTIALS.items():
        if os.environ.get(variable):
            values[name] = os.environ[variable]
    for variable, name in known.items():
        if variable in os.environ:
            values[name] = _parse_env(name, variable, os.environ[variable])
    return values


def _parse_env(name: str, variable: str, raw: str) -> Any:
    if name in FIELD_SECTION:
        annotation = SECTIONS[FIELD_SECTION[name]].model_fields[name].annotation
        if typing.get_origin(annotation) in (dict, list):
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{variable} is not valid JSON: {exc.msg} at character {exc.pos}",
                    hint=f"write it as JSON, e.g. {variable}='"
                    + json.dumps(SECTIONS[FIELD_SECTION[name]].model_fields[name].default)
                    + "'",
                ) from None
    return raw


def _build(flat: dict[str, Any]) -> Settings:
    nested: dict[str, Any] = {section: {} for section in SECTIONS}
    for name, value in flat.items():
        if value is None:
            continue
        if name in CREDENTIALS:
            nested[name] = value
        elif name in FIELD_SECTION:
            nested[FIELD_SECTION[name]][name] = value
        else:
            raise ConfigError(
                f"unknown setting {name!r}",
                hint="known settings: " + ", ".join(sorted([*FIELD_SECTION, *CREDENTIALS])),
            )
    try:
        return Settings(**nested)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise ConfigError(
            f"invalid settings: {problems}",
            hint="fix the environment variable or command-line option named above",
        ) from None


def _problem(error: Any) -> str:
    """One validation error as 'NEWSDESK_TOP_K (top_k): what is wrong'."""
    names = [str(part) for part in error["loc"] if str(part) not in SECTIONS]
    if not names:
        return str(error["msg"])
    return f"{_env_name(names[0])} ({names[0]}): {error['msg']}"


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus explicit flat overrides (None values are ignored).

    Raises ConfigError naming the offending variable when a value is invalid or unknown.
    """
    return _build(_from_environment() | {k: v for k, v in overrides.items() if v is not None})
