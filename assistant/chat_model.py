"""Talking to a chat model: one small protocol, and its OpenAI-compatible implementation.

A ``ChatModel`` takes chat messages (``{"role", "content"}``) and either completes them at once
(``complete`` → ``Completion``: text and token usage) or streams the reply (``stream`` →
``TextDelta`` events, then one ``Usage``).  The answer writer (``assistant.llm.LLMWriter``) and
the follow-up condenser (``assistant.followup.condense``) share one, so a conversation talks to
a single client.  Every failure is an ``LLMError`` naming its cause and how to fix it.

``OpenAIChatModel`` speaks the OpenAI chat completions protocol through the ``openai`` client:
OpenAI itself or any compatible server (vLLM, Ollama, llama.cpp, LM Studio), with the
configured timeout and retries (the client retries 429, 5xx and timeouts with backoff).
``LocalChatModel`` (``assistant.local_model``) runs a GGUF file in process instead.

Both take an optional JSON ``schema``: the reply is then JSON that the server or llama.cpp's
grammar holds to that schema (``response_format`` of type ``json_schema``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from assistant.errors import LLMError

ChatMessage = Mapping[str, str]
"""One message sent to a model: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""


@dataclass(frozen=True)
class TextDelta:
    """A piece of reply text, as the model writes it."""

    text: str


@dataclass(frozen=True)
class Usage:
    """Tokens one call spent."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as ``Answer.usage`` records them."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


ChatEvent = TextDelta | Usage
"""What ``ChatModel.stream`` (and a writer) yields: text pieces, and at most one ``Usage``."""


@dataclass(frozen=True)
class Completion:
    """A whole reply and what it cost."""

    text: str
    usage: Usage


class ChatModel(Protocol):
    """A chat model behind the smallest interface newsdesk needs."""

    name: str
    """What it is, as answers report it: 'openai:gpt-4o-mini', 'openai-compatible:llama3.1'."""

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
        temperature: float = 0.0, schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        """The whole reply to ``messages``. Raises LLMError when the model cannot be used.

        With ``schema`` the reply is JSON under that JSON schema (``json_schema_format``).
        """
        ...

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
        temperature: float = 0.0, schema: Mapping[str, Any] | None = None,
    ) -> Iterator[ChatEvent]:
        """The reply in pieces (``TextDelta``), then its ``Usage`` when the server reports it.

        Raises LLMError (possibly after some pieces) when the model cannot be used.
        """
        ...


def json_schema_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI ``response_format`` asking for JSON under ``schema``: OpenAI and vLLM call it
    structured outputs; llama.cpp and Ollama turn it into a grammar the sampler must follow."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": dict(schema), "strict": True},
    }


def chat_request(
    messages: Sequence[ChatMessage], max_tokens: int | None, temperature: float,
    schema: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The body of an OpenAI-shaped chat completion request, without the model's name."""
    request: dict[str, Any] = {"messages": [dict(m) for m in messages], "temperature": temperature}
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    if schema is not None:
        request["response_format"] = json_schema_format(schema)
    return request


class OpenAIChatModel:
    """A ``ChatModel`` over the OpenAI chat completions protocol (``openai`` client)."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        label: str = "openai",
    ) -> None:
        """``label`` names the kind of server in ``name`` ('openai', 'openai-compatible')."""
        from openai import OpenAI

        self.name = f"{label}:{model}"
        self.model = model
        # Local servers often need no key, but the client insists on one.
        self._client = OpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout,
            max_retries=max_retries,
        )

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
        temperature: float = 0.0, schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        """The whole reply; see ``ChatModel.complete``."""
        with self._errors():
            reply = self._client.chat.completions.create(
                **self._request(messages, max_tokens, temperature, schema)
            )
            content = reply.choices[0].message.content if reply.choices else None
            usage = reply.usage
        return Completion(
            text=content if isinstance(content, str) else "",
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
        temperature: float = 0.0, schema: Mapping[str, Any] | None = None,
    ) -> Iterator[ChatEvent]:
        """The reply in pieces; see ``ChatModel.stream``."""
        request = self._request(messages, max_tokens, temperature, schema)
        with self._errors():
            chunks = self._client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
            for chunk in chunks:
                for choice in chunk.choices:
                    text = choice.delta.content if choice.delta else None
                    if isinstance(text, str) and text:
                        yield TextDelta(text)
                if chunk.usage:
                    yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)

    def _request(
        self, messages: Sequence[ChatMessage], max_tokens: int | None, temperature: float,
        schema: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return {"model": self.model, **chat_request(messages, max_tokens, temperature, schema)}

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the client's exceptions into LLMErrors that say what to do."""
        import openai

        try:
            yield
        except openai.AuthenticationError:
            raise LLMError(
                f"{self.name} rejected the API key (401)", hint="check OPENAI_API_KEY"
            ) from None
        except openai.RateLimitError:
            raise LLMError(f"{self.name} is rate limited (429) even after retries") from None
        except openai.APITimeoutError:
            raise LLMError(
                f"{self.name} timed out", hint="raise NEWSDESK_LLM_TIMEOUT or check the server"
            ) from None
        except openai.APIConnectionError:
            raise LLMError(
                f"cannot reach {self.name} at {self._client.base_url}",
                hint="check OPENAI_BASE_URL and that the server is running",
            ) from None
        except openai.APIStatusError as exc:
            raise LLMError(f"{self.name} failed with HTTP {exc.status_code}") from None
        except openai.OpenAIError as exc:
            raise LLMError(f"{self.name} failed: {exc}") from None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # not the protocol
            raise LLMError(
                f"{self.name} sent a reply that is not an OpenAI chat completion "
                f"({type(exc).__name__})",
                hint="check that OPENAI_BASE_URL points at an OpenAI-compatible server",
            ) from None
