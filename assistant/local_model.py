"""A GGUF model run in this process by llama.cpp (``xllamacpp``), behind the ``ChatModel`` protocol.

``LocalChatModel(path, threads=..., context=...)`` is the entry point; the ``llm`` setting
``local:PATH.gguf`` builds one (``assistant.llm.local_writer``).  llama.cpp's own server code
answers OpenAI-shaped chat requests in process (``xllamacpp.Server.handle_chat_completions``):
the same chat template, sampling, streaming and JSON-schema grammar as ``llama-server``, without
a second process to start.

- The model loads once per process: every ``LocalChatModel`` of the same file, thread count and
  context size shares one loaded server (``_load``), and threads may call it at once — llama.cpp
  queues the requests itself, so nothing here needs a lock but the loading.
- xllamacpp also opens an HTTP listener on 127.0.0.1 for every server it makes; it is locked
  with a random API key that nobody is told, so only this process can use the model.
- A missing ``xllamacpp`` (the ``local`` extra), a missing file or a file llama.cpp cannot load
  is a ``ConfigError`` saying how to fix it; a failed request is an ``LLMError``.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.chat_model import (
    ChatEvent,
    ChatMessage,
    Completion,
    TextDelta,
    Usage,
    chat_request,
)
from assistant.errors import ConfigError, LLMError

_LOADED: dict[tuple[str, int, int], Any] = {}
_LOADING = threading.Lock()
_DONE = object()  # ends a stream's queue


def _load(path: Path, threads: int, context: int) -> Any:
    """The llama.cpp server for this model file, loaded on first use and shared after."""
    key = (str(path.resolve()), threads, context)
    with _LOADING:
        if key in _LOADED:
            return _LOADED[key]
        try:
            import xllamacpp
        except ImportError:
            raise ConfigError(
                "llm 'local:...' needs llama.cpp, which is not installed",
                hint="pip install 'newsdesk[local]' (the xllamacpp package)",
            ) from None
        params = xllamacpp.CommonParams()
        params.model.path = key[0]
        params.n_ctx = context
        params.n_parallel = 1  # one slot with the whole context: requests queue, none is cut short
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1
        params.api_keys = [secrets.token_hex(32)]  # its loopback listener serves nobody else
        try:
            server = xllamacpp.Server(params)
        except RuntimeError:
            raise ConfigError(
                f"llama.cpp cannot load {path} as a model",
                hint="point NEWSDESK_LLM=local:PATH at a complete GGUF file (check its size or "
                "checksum against its source)",
            ) from None
        _LOADED[key] = server
        return server


class LocalChatModel:
    """A ``ChatModel`` over a GGUF file run in process by llama.cpp."""

    def __init__(self, path: str | Path, *, threads: int = 0, context: int = 4096) -> None:
        """Load ``path`` (or reuse it, when this process loaded it already).

        ``threads`` 0 means every core. Raises ConfigError when llama.cpp is not installed or
        the file is missing or not a loadable model.
        """
        self.path = Path(path).expanduser()
        self.name = f"local:{self.path.name}"
        if not self.path.is_file():
            raise ConfigError(
                f"model file {self.path} does not exist",
                hint="set NEWSDESK_LLM=local:PATH (or --llm local:PATH) to a GGUF file, e.g. one "
                "from `python benchmarks/assemble_model.py` or an Ollama/Hugging Face download",
            )
        self.threads = threads or os.cpu_count() or 1
        self.context = context
        self._server = _load(self.path, self.threads, context)

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
        temperature: float = 0.0, schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        """The whole reply; see ``ChatModel.complete``."""
        reply = self._server.handle_chat_completions(
            chat_request(messages, max_tokens, temperature, schema)
        )
        self._check(reply)
        choices = reply.get("choices") or [{}]
        return Completion(
            text=(choices[0].get("message") or {}).get("content") or "",
            usage=_usage(reply.get("usage")),
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
        temperature: float = 0.0, schema: Mapping[str, Any] | None = None,
    ) -> Iterator[ChatEvent]:
        """The reply in pieces as llama.cpp writes them; see ``ChatModel.stream``.

        llama.cpp calls back with each chunk from a worker thread; closing this iterator early
        tells it to stop generating.
        """
        request = chat_request(messages, max_tokens, temperature, schema)
        request.update(stream=True, stream_options={"include_usage": True})
        chunks: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()

        def on_chunk(chunk: dict[str, Any]) -> bool:
            chunks.put(chunk)
            return stop.is_set()  # True makes llama.cpp cancel the request

        def run() -> None:
            try:
                self._server.handle_chat_completions(request, on_chunk)
            except (RuntimeError, ValueError, TypeError, OSError) as exc:  # read as LLMError below
                chunks.put(exc)
            finally:
                chunks.put(_DONE)

        worker = threading.Thread(target=run, name="newsdesk-llama", daemon=True)
        worker.start()
        try:
            while (chunk := chunks.get()) is not _DONE:
                if isinstance(chunk, Exception):
                    raise LLMError(f"{self.name} failed: {chunk}")
                self._check(chunk)
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield TextDelta(text)
                if chunk.get("usage"):
                    yield _usage(chunk["usage"])
        finally:
            stop.set()
            worker.join()

    def _check(self, reply: Mapping[str, Any]) -> None:
        """Raise the LLMError an error reply stands for."""
        error = reply.get("error")
        if not error:
            return
        message = error.get("message", error) if isinstance(error, Mapping) else error
        if isinstance(error, Mapping) and error.get("type") == "exceed_context_size_error":
            raise LLMError(
                f"{self.name}: {message}",
                hint="raise NEWSDESK_LLM_CONTEXT, or lower NEWSDESK_TOP_K",
            )
        raise LLMError(f"{self.name} failed: {message}")


def _usage(raw: Mapping[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
