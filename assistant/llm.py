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
'openai-compatible:MODEL', or 'auto'.  The part before the colon is a key of ``WRITERS``; adding
a backend is one class (a ``ChatModel`` or a ``Writer``) and one line in ``WRITERS``.

"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol

from assistant.chat_model import ChatEvent, ChatModel, OpenAIChatModel
from assistant.errors import ConfigError
from assistant.extractive import ExtractiveWriter
from assistant.models import CANNOT_ANSWER, Source
from assistant.prompts import load_prompts

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


def render_messages(
    question: str, sources: Sequence[Source], *, as_of: date | None, prompts: dict[str, str]
) -> list[dict[str, str]]:
    """The chat messages for a question: system rules, then numbered sources and the question."""
    blocks = [
        prompts["source"].format(
            number=s.number,
            title=s.title,
            outlet=s.outlet or "unknown outlet",
            published=s.published.isoformat() if s.published else "date unknown",
            text=s.text,
            dates=_dates_note(s),
        ).strip()
        for s in sources
    ]
    system = prompts["answer_system"].format(
        as_of=as_of.isoformat() if as_of else "today", cannot_answer=CANNOT_ANSWER
    )
    user = prompts["answer_user"].format(sources="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _dates_note(source: Source) -> str:
    """The source's resolved dates, one line, for the prompt ('' when there are none)."""
    notes = []
    for sentence in source.sentences:
        for m in sentence.dates:
            if m.kind == "absolute":
                continue
            how = f"; {m.note}" if m.note else ""
            flag = ", inferred" if m.inferred else ""
            notes.append(f'"{m.text}" = {m.label()}{flag}{how}')
    return "\nResolved dates: " + " | ".join(notes) if notes else ""


class LLMWriter:
    """Answers through a chat model, streaming, with the citation-enforcing prompt."""

    mode: Literal["llm", "extractive"] = "llm"

    def __init__(self, chat_model: ChatModel, *, prompts: dict[str, str]) -> None:
        """``prompts`` are the checked templates of ``prompts/`` (``load_prompts``)."""
        self.chat_model = chat_model
        self.name = chat_model.name
        self.prompts = prompts

    def write(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[ChatEvent]:
        """Stream the model's answer; see ``Writer.write``."""
        messages = render_messages(question, sources, as_of=as_of, prompts=self.prompts)
        yield from self.chat_model.stream(messages, temperature=0)


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


def openai_writer(choice: LLMChoice, settings: Settings, _: Embedder) -> LLMWriter:
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
    return LLMWriter(model, prompts=load_prompts(settings.writer.prompts_dir))


WRITERS: dict[str, Callable[[LLMChoice, Settings, Embedder], Writer]] = {
    "extractive": extractive_writer,
    "openai": openai_writer,
    "openai-compatible": openai_writer,
}
"""Every writer by the ``llm`` setting's kind (the part before the colon)."""

get_generator = get_writer
"""The old name of ``get_writer``."""
ExtractiveGenerator = ExtractiveWriter
"""The old name of ``ExtractiveWriter``."""
