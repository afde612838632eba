"""The OpenAI-compatible face: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Any OpenAI client or chat front end can use newsdesk as the model ``newsdesk``.  A request is a
whole conversation: ``Assistant.chat`` makes its last user message standalone with the turns
before it, then answers.  Responses are the ``openai`` package's own types
(``ChatCompletion``, ``ChatCompletionChunk``, ``CompletionUsage``); the reply text carries the
[n] markers and ends with a "Sources:" list, and newsdesk's extras ride along as extra fields of
the completion, or of the final chunk when streaming:

- ``citations``: each [n] marker resolved to its verbatim source sentence (``Citation``);
- ``searched``: the standalone question retrieval used, when it differs from the user's words;
- ``fallback``: why the configured language model did not write the answer, if it failed;
- ``dropped``: sentences the citation check removed, each with the reason.

newsdesk's filters (``outlets``, ``since``, ``until``, ``as_of``) may ride along as extra body
fields.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from openai.types import CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette import ServerSentEvent

from assistant.errors import InputError
from assistant.filters import make_filters
from assistant.followup import split_conversation, text_of
from assistant.http_base import ErrorBody, Service, error_payload, service_of, sse
from assistant.models import Answer, Citation, DroppedSentence, StreamEvent
from assistant.retrieve import Filters

MODEL_ID = "newsdesk"
"""The one model GET /v1/models lists; any model name is accepted on chat completions."""

LLM_FAILED = "\n\n(The language model failed; the answer below is quoted from the sources.)\n\n"
WITHHELD = "\n\n(Withheld: no sentence above has a supporting citation.) "
CHECKED = (
    "\n\n(Checked: sentences above without a supporting citation are removed. "
    "The checked answer:)\n\n"
)


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(Filters):
    """An OpenAI chat completion request; newsdesk's filters may ride along as extra fields."""

    model_config = ConfigDict(extra="ignore")  # clients send temperature, top_p, user, ...

    model: str = Field(MODEL_ID, max_length=200)
    messages: list[ChatMessage] = Field(
        min_length=1, description="The conversation; its last user message is the question."
    )
    stream: bool = False

    @model_validator(mode="after")
    def _has_question(self) -> ChatRequest:
        for number, message in enumerate(self.conversation()):
            try:
                text_of(message).encode("utf-8")
            except UnicodeEncodeError:
                # JSON allows "\ud800" escapes that are no text; /v1/ask's str fields refuse
                # them while parsing, and so must a chat message, before any model sees it.
                raise ValueError(
                    f"messages[{number}].content: not valid Unicode text (a lone surrogate "
                    "escape such as \\ud800); send UTF-8 text"
                ) from None
        try:
            _, question = split_conversation(self.conversation())
        except InputError as exc:
            raise ValueError(exc.message) from None
        if len(question) > 2000:
            raise ValueError("messages: the last user message is over 2000 characters")
        return self

    def conversation(self) -> list[dict[str, Any]]:
        """The messages as ``Assistant.chat`` takes them."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def filters(self) -> Filters:
        """newsdesk's filters sent along with the request."""
        return make_filters(**self.model_dump(include=set(Filters.model_fields)))


class NewsdeskCompletion(ChatCompletion):
    """An OpenAI chat completion plus newsdesk's extra fields."""

    citations: list[Citation] = Field(
        description="newsdesk's extra field: each [n] marker resolved to its source sentence."
    )
    searched: str | None = Field(
        None, description="The standalone question searched, when it differs from the user's."
    )
    fallback: str | None = Field(
        None, description="Why the configured language model did not write the answer."
    )
    dropped: list[DroppedSentence] = Field(
        default_factory=list,
        description="Sentences the citation check removed from the reply, each with the reason.",
    )


class ModelList(BaseModel):
    """GET /v1/models."""

    object: Literal["list"] = "list"
    data: list[Model]


CHAT_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chat.completion.chunk as JSON (the last one, with finish_reason "
            "'stop', carries `citations`, `searched`, `fallback` and `dropped`), then [DONE].",
        },
    },
}

router = APIRouter(tags=["openai"])


@router.get("/models")
def models() -> ModelList:
    """The one model: newsdesk itself (OpenAI-compatible)."""
    return ModelList(data=[Model(id=MODEL_ID, created=0, object="model", owned_by="newsdesk")])


@router.post(
    "/chat/completions",
    response_model=NewsdeskCompletion,
    responses={
        200: {
            "description": "A chat completion; with `stream: true`, OpenAI-style chunks as "
            "server-sent events, the last one carrying `citations`.",
            "content": {"text/event-stream": {"schema": CHAT_EVENT}},
        },
        409: {"model": ErrorBody, "description": "Nothing is indexed yet."},
    },
)
async def chat_completions(body: ChatRequest, service: Annotated[Service, Depends(service_of)]) -> Any:
    """OpenAI-compatible: the conversation's last user message, answered in its context.

    The reply text carries [n] markers and a "Sources:" list; the structured citations are in
    the extra `citations` field (on the completion, or on the final stream chunk).
    """
    assistant, conversation, filters = service.assistant, body.conversation(), body.filters()
    if not body.stream:
        answer = await service.run(assistant.chat, conversation, filters)
        return completion(answer, body.model)
    events = assistant.chat_stream(conversation, filters)
    return await service.stream(events, lambda events: chunks(events, body.model))


def completion(answer: Answer, model: str) -> NewsdeskCompletion:
    """The answer as a chat completion: text and "Sources:" list, citations as an extra field."""
    prompt, written = answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0)
    return NewsdeskCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[Choice(
            index=0, finish_reason="stop",
            message=ChatCompletionMessage(role="assistant", content=answer.text + sources_text(answer)),
        )],
        usage=CompletionUsage(
            prompt_tokens=prompt, completion_tokens=written, total_tokens=prompt + written
        ),
        citations=answer.citations,
        searched=answer.searched,
        fallback=answer.fallback,
        dropped=answer.dropped,
    )


def chunks(events: Iterator[StreamEvent], model: str) -> Iterator[ServerSentEvent]:
    """An answer's events as chat.completion.chunk events, then ``[DONE]``.

    The text deltas are the writer's draft.  A client cannot take back text, so a ``reset``
    becomes a note that the model failed, and when the citation check changed the draft
    (removing sentences without a supporting citation, or withholding all of it) a note follows
    with the checked answer: the reply always ends with ``Answer.text`` and its sources.  A
    failure mid-stream becomes an ``{"error": ...}`` event.
    """
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: ChoiceDelta, finish: Literal["stop"] | None = None, **extra: Any) -> ServerSentEvent:
        body = ChatCompletionChunk(
            id=completion_id, object="chat.completion.chunk", created=created, model=model,
            choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)], **extra,
        )
        return sse(body.model_dump_json(exclude_unset=True))

    yield chunk(ChoiceDelta(role="assistant", content=""))
    written = ""  # the text since the last reset, to compare with the checked answer
    try:
        for event in events:
            if event.type == "delta" and event.text:
                written += event.text
                yield chunk(ChoiceDelta(content=event.text))
            elif event.type == "reset":
                written = ""
                yield chunk(ChoiceDelta(content=LLM_FAILED))
            elif event.answer is not None:
                answer = event.answer
                if written.strip() != answer.text:
                    note = WITHHELD if answer.refused else CHECKED
                    yield chunk(ChoiceDelta(content=note + answer.text))
                if answer.citations:
                    yield chunk(ChoiceDelta(content=sources_text(answer)))
                yield chunk(
                    ChoiceDelta(), "stop",
                    citations=[c.model_dump(mode="json") for c in answer.citations],
                    searched=answer.searched, fallback=answer.fallback,
                    dropped=[d.model_dump(mode="json") for d in answer.dropped],
                )
    except Exception as exc:  # noqa: BLE001 - the status is sent: the error becomes an event
        yield sse(error_payload(exc))
    yield sse("[DONE]")


def sources_text(answer: Answer) -> str:
    """The "Sources:" list a chat reply ends with: n. title — outlet, date: "quote"."""
    if not answer.citations:
        return ""
    quotes: dict[int, list[str]] = {}
    first: dict[int, Citation] = {}
    for c in answer.citations:
        first.setdefault(c.number, c)
        if c.quote not in quotes.setdefault(c.number, []):
            quotes[c.number].append(c.quote)
    lines = []
    for number in sorted(first):
        c = first[number]
        day = c.published.isoformat() if c.published else "date unknown"
        said = " … ".join(f"\"{q}\"" for q in quotes[number])
        lines.append(f"{number}. {c.title} — {c.outlet or 'unknown outlet'}, {day}: {said}")
    return "\n\nSources:\n" + "\n".join(lines)
