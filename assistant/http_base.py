"""What every HTTP route shares: the service state, errors as JSON, and server-sent events.

- ``Service``: one ``Assistant`` (store, embedding model, writer) for every request, the API key,
  and the thread limit answering runs under.  Routes get it with ``Depends(service_of)``.
- Errors: ``STATUS`` and ``problem`` are the one place a domain error (``assistant.errors``)
  becomes an HTTP status and an ``{"error": {"message", "hint", "type"}}`` body, whether it is
  raised before a response starts (``install_error_handlers``) or in the middle of an event
  stream (``error_payload``), where the status is already sent.
- Streams: ``Service.stream`` runs the first event in a worker thread (so retrieval's errors
  still get a status), then serves the rest as server-sent events (sse-starlette), advanced in
  Starlette's thread pool.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException

from assistant.answer import Assistant
from assistant.errors import (
    ArticleNotFound,
    ConfigError,
    EmbeddingError,
    InputError,
    LLMError,
    NewsdeskError,
    NothingIndexed,
    StoreError,
)
from assistant.models import StreamEvent

log = logging.getLogger("newsdesk.api")
T = TypeVar("T")

MAX_JSON_BYTES = 1024 * 1024
"""Largest body of a question or chat request."""

STATUS: dict[type[NewsdeskError], int] = {
    ArticleNotFound: 404,
    NothingIndexed: 409,
    InputError: 422,
    ConfigError: 400,
    LLMError: 502,
    StoreError: 503,
    EmbeddingError: 503,
}
"""The HTTP status of each domain error (any other NewsdeskError: 500)."""

HTTP_HINTS: dict[type[NewsdeskError], str] = {
    NothingIndexed: "add articles with POST /v1/articles (or `newsdesk ingest PATH` on the "
    "server), then ask again",
    ArticleNotFound: "GET /v1/articles lists the ids that are indexed",
}
"""The library's hints name CLI commands; over HTTP the fix is a request."""


class ErrorDetail(BaseModel):
    """What went wrong and how to fix it."""

    message: str
    hint: str | None = None
    type: str = Field(description="The error's kind, e.g. NothingIndexed or InvalidRequest.")


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body cannot be read (not UTF-8 JSON)."},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    413: {"model": ErrorBody, "description": "The body is over the size limit."},
    422: {"model": ErrorBody, "description": "Invalid request; the message names the field."},
    500: {"model": ErrorBody, "description": "Unexpected error (details in the server's log)."},
}
"""The error responses every protected route documents."""


def problem(exc: NewsdeskError) -> tuple[int, ErrorBody]:
    """The status and body a domain error is sent as."""
    kind = type(exc)
    status = next((s for k, s in STATUS.items() if isinstance(exc, k)), 500)
    message = "no articles indexed yet" if isinstance(exc, NothingIndexed) else exc.message
    detail = ErrorDetail(message=message, hint=HTTP_HINTS.get(kind, exc.hint), type=kind.__name__)
    return status, ErrorBody(error=detail)


def error_payload(exc: Exception) -> dict[str, Any]:
    """The ``{"error": ...}`` body for a failure in the middle of a stream, logged here."""
    if isinstance(exc, NewsdeskError):
        log.error("error while streaming: %s", exc)
        return problem(exc)[1].model_dump()
    log.exception("unexpected error while streaming")
    detail = ErrorDetail(message="internal error while answering", type="InternalError")
    return ErrorBody(error=detail).model_dump()


@dataclass
class Service:
    """What every request shares: one assistant (store, embedder, writer) and the API key."""

    assistant: Assistant
    api_key: str | None
    # Answering is CPU-bound unless an LLM is waited on: more threads than about twice the
    # cores only contend (32 clients on 2 cores: 37 answers/s with 4 threads, 31 with 40, p95
    # 1.0 s against 1.5 s; benchmarks/RESULTS.md). Waiting on an LLM needs many threads.
    answer_threads: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        extractive = self.assistant.writer.mode == "extractive"
        self.answer_threads = anyio.CapacityLimiter(2 * (os.cpu_count() or 1) if extractive else 32)

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking answer work in a worker thread, within the answer thread limit."""
        return await anyio.to_thread.run_sync(
            functools.partial(call, *args, **kwargs), limiter=self.answer_threads
        )

    async def stream(
        self,
        events: Iterator[StreamEvent],
        frame: Callable[[Iterator[StreamEvent]], Iterator[ServerSentEvent]],
    ) -> EventSourceResponse:
        """``events`` served as server-sent events, each turned into frames by ``frame``.

        The first event is computed before the response starts, so a failure up to then
        (nothing indexed, a bad filter) is an ordinary error response with its status; ``frame``
        must turn later failures into events itself (see ``error_payload``).
        """
        first = await self.run(next, events)
        frames = frame(chain([first], events))
        return EventSourceResponse(iterate_in_threadpool(frames), sep=SEP)


SEP = "\n"
"""Line end of server-sent events: what OpenAI sends, and what simple clients split on."""


def sse(data: dict[str, Any] | str, event: str | None = None) -> ServerSentEvent:
    """One server-sent event; a dict is sent as JSON, text as it is."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return ServerSentEvent(data=text, event=event, sep=SEP)


async def service_of(request: Request) -> Service:
    """The app's ``Service`` (a FastAPI dependency)."""
    service: Service = request.app.state.newsdesk
    return service


# --- errors become JSON --------------------------------------------------------------------


def install_error_handlers(app: FastAPI) -> None:
    """Every error ``app`` can meet answered as ``{"error": {...}}``, never a stack trace."""
    app.add_exception_handler(NewsdeskError, _newsdesk_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(_Guard)


def _error(status: int, message: str, hint: str | None, kind: str, **headers: str) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(message=message, hint=hint, type=kind))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers or None)


async def _newsdesk_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NewsdeskError)
    status, body = problem(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(body.model_dump(), status_code=status)


def key_refusal(request: Request) -> str | None:
    """Why the server refuses this request for want of its API key, or None when it may pass:
    no key is set, or the request carries ``Authorization: Bearer KEY`` with the right one."""
    service = getattr(request.app.state, "newsdesk", None)
    key = getattr(service, "api_key", None)
    if key is None:
        return None
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secrets.compare_digest(given.encode(), key.encode()):
        return None
    return "missing or wrong API key" if given else "this server needs an API key"


def _denied(request: Request) -> JSONResponse | None:
    """The 401 for a keyed /v1 request without the key, else None.

    FastAPI reads and validates a body before any dependency runs, so a request with a bad body
    and no key would otherwise learn about its body (422) before being told it may not ask.
    """
    refusal = key_refusal(request) if request.url.path.startswith("/v1/") else None
    if refusal is None:
        return None
    return _error(
        401, refusal, "send 'Authorization: Bearer KEY' with the server's NEWSDESK_API_KEY",
        "HTTPError", **{"WWW-Authenticate": "Bearer"},
    )


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    denied = _denied(request)
    if denied is not None:
        return denied
    problems = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path"))
        text = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "json_invalid":
            where, text = "body", f"not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})"
        problems.append(f"{where}: {text}" if where else text)
    return _error(
        422,
        "invalid request: " + "; ".join(problems),
        "fix the field named above; GET /docs shows every route's body and parameters",
        "InvalidRequest",
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    hints = {
        400: "send UTF-8 JSON with 'Content-Type: application/json'",
        401: "send 'Authorization: Bearer KEY' with the server's NEWSDESK_API_KEY",
        404: "GET /docs lists the routes",
        413: f"split the request: bodies are limited ({MAX_JSON_BYTES // 1024} KiB for "
        "questions; uploads per NEWSDESK_API_MAX_UPLOAD_MB)",
    }
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if message == "There was an error parsing the body":
        message = "body: cannot be parsed"
    return _error(
        exc.status_code, message, hints.get(exc.status_code), "HTTPError", **(exc.headers or {})
    )


class LoginThrottle:
    """Login attempts at ``path`` (POSTs), counted per client address until one succeeds: after
    ``attempts`` failed ones within ``window`` seconds, further tries get a 429 until the window
    has passed.

    A key of 16 or more characters cannot be guessed online anyway; this keeps a guesser from
    hammering the login, and its log quiet.  Clients behind one proxy share an address, so one
    guesser there delays the others by at most ``window`` seconds.
    """

    MAX_CLIENTS = 10_000  # addresses remembered at once; the oldest are forgotten first

    def __init__(self, app: Any, *, path: str, attempts: int = 5, window: float = 60.0) -> None:
        self.app, self.path, self.attempts, self.window = app, path.rstrip("/"), attempts, window
        self.failures: dict[str, list[float]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path", "").rstrip("/") != self.path
        ):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        now = time.monotonic()
        recent = [t for t in self.failures.get(client, []) if now - t < self.window]
        if len(recent) >= self.attempts:
            wait = int(self.window - (now - recent[0])) + 1
            response = _error(
                429, "too many failed logins from this address",
                f"wait {wait} s, then log in with the server's NEWSDESK_API_KEY as the password",
                "HTTPError", **{"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return
        # The attempt counts from now, so a burst of parallel guesses is limited too; a
        # successful login forgets the address.
        self.failures.pop(client, None)
        self.failures[client] = [*recent, now]
        while len(self.failures) > self.MAX_CLIENTS:
            del self.failures[next(iter(self.failures))]
        status = 0

        async def watching_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        if status == 200:
            self.failures.pop(client, None)


class _Guard:
    """Outermost safety net: an unexpected error becomes a generic 500, logged here only."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                response = _error(
                    500,
                    "internal error: the server could not complete this request",
                    "try again; if it keeps failing, the server's log has the details",
                    "InternalError",
                )
                await response(scope, receive, send)
