"""What writes the answer text: writers behind one small interface, picked by the ``llm`` setting.

A ``Writer`` turns a question and numbered sources into answer text carrying [n] markers, as
events: ``TextDelta`` pieces, then (when a model was used) one ``Usage``.  Writers:

- ``LLMWriter``: a ``ChatModel`` (``assistant.chat_model``; OpenAI or any OpenAI-compatible
  server) prompted with the citation-enforcing templates from ``prompts/``.
- ``ExtractiveWriter`` (``assistant.extractive``): no model at all; quotes the source sentences that best answer the
  question and cites them.  The default when no LLM is configured, and the fallback when the
  LLM fails.

``get_writer(settings, embedder)`` builds the writer the ``llm`` setting names.  That setting is
parsed here and only here (``choose_llm``): 'extractive', 'openai:MODEL',
'openai-compatible:MODEL', 'local:PATH.gguf',
or 'auto'.  The part before the colon is a key of ``WRITERS``; adding
a backend is one class (a ``ChatModel`` or a ``Writer``) and one line in ``WRITERS``.

What an ``LLMWriter`` shows the model and whether it asks at all (``assistant.context``), and
how the model answers, are options (settings ``llm_json``, ``llm_evidence``, ``llm_gate``):

- structured answers (``assistant.structured``): the model fills in JSON under a schema that
  only admits the offered source numbers, and code writes the [n] markers (``quote``: the
  answering sentence copied first, and checked);
- evidence-first context (``evidence_sources``): the model reads the best-ranked sentences with
  their neighbours, numbered by source, instead of whole chunks;
- the refusal gate (``extractive_gate``): no model is asked when the extractive writer finds
  nothing in the sources that could answer.

All are on by default for local models and off for servers (measured in benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, Protocol

from assistant.chat_model import ChatEvent, ChatModel, OpenAIChatModel, TextDelta
from assistant.context import (
    Gate,
    Ranker,
    evidence_sources,
    extractive_gate,
    quotes_from,
    render_messages,
)
from assistant.errors import ConfigError
from assistant.extractive import ExtractiveWriter
from assistant.models import CANNOT_ANSWER, Source
from assistant.prompts import load_prompts
from assistant.structured import answer_schema, render_stream

if TYPE_CHECKING:
    from assistant.settings import Settings
    from index.embeddings import Embedder


class Writer(Protocol):
    """Writes answer text with [n] citation markers from numbered sources."""

    name: str
    """What writes, as ``Answer.model`` reports it: 'extractive', 'openai:MODEL', ..."""
    mode: Literal["llm", "extractive"]

    @property
    def chat_model(self) -> ChatModel | None:
        """The model this writer talks to (the follow-up condenser reuses it); None without one."""
        ...

    def write(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[ChatEvent]:
        """The answer as ``TextDelta`` pieces, then its ``Usage`` if a model reported one.

        Raises LLMError (possibly after some pieces) when the model cannot be used.
        """
        ...


class LLMWriter:
    """Answers through a chat model, streaming, with the citation-enforcing prompt."""

    mode: Literal["llm", "extractive"] = "llm"

    def __init__(
        self,
        chat_model: ChatModel,
        *,
        prompts: dict[str, str],
        structured: bool = False,
        evidence: Ranker | None = None,
        evidence_sentences: int = 4,
        evidence_window: int = 1,
        max_tokens: int | None = None,
        gate: Gate | None = None,
        quote: bool = False,
    ) -> None:
        """``prompts`` are the checked templates of ``prompts/`` (``load_prompts``).

        ``structured`` asks for JSON under ``assistant.structured.answer_schema``; ``evidence``
        (a ranker) shows the model only the ``evidence_sentences`` best sentences and
        ``evidence_window`` neighbours either side of each; ``max_tokens`` caps the reply; ``gate`` (``extractive_gate``) refuses
        before the model is asked when the sources hold nothing that could answer; ``quote``
        (structured only) has the model copy the answering sentence first, and refuses when
        that is not a sentence it was shown.
        """
        self.chat_model = chat_model
        self.name = chat_model.name
        self.prompts = prompts
        self.structured = structured
        self.evidence = evidence
        self.evidence_sentences = evidence_sentences
        self.evidence_window = evidence_window
        self.max_tokens = max_tokens
        self.gate = gate
        self.quote = quote and structured

    def write(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[ChatEvent]:
        """Stream the model's answer; see ``Writer.write``."""
        if self.gate is not None and not self.gate(question, sources):
            yield TextDelta(CANNOT_ANSWER)  # no model asked, so no Usage either
            return
        shown = list(sources)
        if self.evidence is not None:
            shown = evidence_sources(
                question, sources, self.evidence, sentences=self.evidence_sentences,
                window=self.evidence_window,
            )
        messages = render_messages(
            question, shown, as_of=as_of, prompts=self.prompts, structured=self.structured,
            quote=self.quote,
        )
        options: dict[str, Any] = {"temperature": 0}
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        if not self.structured:
            yield from self.chat_model.stream(messages, **options)
        elif not shown:  # no number to cite: the schema would admit no answer at all
            yield TextDelta(CANNOT_ANSWER)
        else:
            schema = answer_schema([s.number for s in shown], quote=self.quote)
            yield from render_stream(
                self.chat_model.stream(messages, schema=schema, **options),
                quoted=quotes_from(shown) if self.quote else None,
            )


# --- choosing a writer -----------------------------------------------------------------------


@dataclass(frozen=True)
class LLMChoice:
    """The ``llm`` setting parsed: a ``WRITERS`` key and what follows its colon."""

    kind: str
    model: str = ""

    @property
    def name(self) -> str:
        """The choice written back: 'extractive', 'openai-compatible:llama3.1'."""
        return f"{self.kind}:{self.model}" if self.model else self.kind


def choose_llm(settings: Settings, llm: str | None = None) -> LLMChoice:
    """The writer ``llm`` (default: the ``llm`` setting) names, with 'auto' decided.

    'auto' is an OpenAI-compatible server when OPENAI_BASE_URL is set, else OpenAI when
    OPENAI_API_KEY is, else extractive; a kind given without a model uses ``llm_model``.
    Raises ConfigError for a kind ``WRITERS`` does not know.
    """
    text = (llm or settings.writer.llm).strip()
    if text == "auto":
        if settings.openai_base_url:
            text = "openai-compatible"
        elif settings.openai_api_key:
            text = "openai"
        else:
            text = "extractive"
    kind, _, model = text.partition(":")
    if kind not in WRITERS:
        known = ", ".join(f"'{k}'" if k == "extractive" else f"'{k}:MODEL'" for k in WRITERS)
        raise ConfigError(f"unknown llm {text!r}", hint=f"use {known} or 'auto'")
    if kind == "local" and not model:
        raise ConfigError(
            f"llm {text!r} needs a model file", hint="use 'local:PATH.gguf' (any GGUF chat model)"
        )
    if kind != "extractive" and not model:
        model = settings.writer.llm_model
    return LLMChoice(kind, model)


def get_writer(settings: Settings, embedder: Embedder, *, llm: str | None = None) -> Writer:
    """The writer ``llm`` (default: the ``llm`` setting) chooses, built from ``settings``.

    Raises ConfigError for an unknown writer or a broken prompt template (naming the file).
    """
    choice = choose_llm(settings, llm)
    return WRITERS[choice.kind](choice, settings, embedder)


def extractive_writer(_: LLMChoice, settings: Settings, embedder: Embedder) -> ExtractiveWriter:
    """The extractive writer with the calibrated settings."""
    return ExtractiveWriter(
        embedder,
        threshold=settings.writer.extractive_threshold,
        source_prior=settings.writer.source_prior,
        second_ratio=settings.writer.second_sentence_ratio,
    )


def openai_writer(choice: LLMChoice, settings: Settings, embedder: Embedder) -> LLMWriter:
    """An ``LLMWriter`` over OpenAI or an OpenAI-compatible server.

    Raises ConfigError when the server's address ('openai-compatible') or a key or address
    ('openai') is missing.
    """
    if choice.kind == "openai-compatible" and not settings.openai_base_url:
        raise ConfigError(f"llm {choice.name!r} needs a server address", hint="set OPENAI_BASE_URL")
    if choice.kind == "openai" and not (settings.openai_api_key or settings.openai_base_url):
        raise ConfigError(f"llm {choice.name!r} needs an API key", hint="set OPENAI_API_KEY")
    model = OpenAIChatModel(
        choice.model,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=settings.openai_base_url,
        timeout=settings.writer.llm_timeout,
        max_retries=settings.writer.llm_max_retries,
        label=choice.kind,
    )
    return _llm_writer(model, choice, settings, embedder)


def local_writer(choice: LLMChoice, settings: Settings, embedder: Embedder) -> LLMWriter:
    """An ``LLMWriter`` over a GGUF file run in process (``assistant.local_model``).

    Raises ConfigError when llama.cpp is not installed, or the file is missing or unloadable.
    """
    from assistant.local_model import LocalChatModel

    prompts = load_prompts(settings.writer.prompts_dir)  # a broken template fails before loading
    model = LocalChatModel(
        choice.model, threads=settings.writer.llm_threads, context=settings.writer.llm_context
    )
    return _llm_writer(model, choice, settings, embedder, prompts)


def _llm_writer(
    model: ChatModel, choice: LLMChoice, settings: Settings, embedder: Embedder,
    prompts: dict[str, str] | None = None,
) -> LLMWriter:
    """An ``LLMWriter`` over ``model`` with the writer settings; 'auto' options are on for
    local models and off for servers."""
    local = choice.kind == "local"
    w = settings.writer

    def chosen(option: str) -> bool:
        return option == "on" or (option == "auto" and local)

    extractive = extractive_writer(choice, settings, embedder)
    return LLMWriter(
        model,
        prompts=prompts or load_prompts(w.prompts_dir),
        structured=chosen(w.llm_json) or w.llm_json == "quote",
        quote=w.llm_json == "quote",
        evidence=extractive.rank if chosen(w.llm_evidence) else None,
        evidence_sentences=w.evidence_sentences,
        max_tokens=w.llm_max_tokens,
        gate=extractive_gate(extractive) if chosen(w.llm_gate) else None,
    )


WRITERS: dict[str, Callable[[LLMChoice, Settings, Embedder], Writer]] = {
    "extractive": extractive_writer,
    "openai": openai_writer,
    "openai-compatible": openai_writer,
    "local": local_writer,
}
"""Every writer by the ``llm`` setting's kind (the part before the colon)."""

get_generator = get_writer
"""The old name of ``get_writer``."""
ExtractiveGenerator = ExtractiveWriter
"""The old name of ``ExtractiveWriter``."""
