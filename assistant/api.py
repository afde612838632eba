"""The HTTP face: a REST and OpenAI-compatible service over the same Python API as the CLI.

``create_app(settings) -> FastAPI`` builds the service around one ``Assistant`` (so one store
and one embedding model are shared by every request); ``serve(host, port, settings)`` runs it
under uvicorn.  Routes:

- ``POST /v1/ask``: question and filters in, ``Answer`` out (``stream: true``: server-sent
  events ``delta``, ``reset``, ``answer``, mirroring ``StreamEvent``).
- ``POST /v1/timeline``: query and filters in, ``Timeline`` (dated, cited events) out.
- ``GET|POST /v1/articles``, ``GET|DELETE /v1/articles/{id}``, ``GET /v1/stats``: the index.
- ``POST /v1/chat/completions``, ``GET /v1/models``: OpenAI-compatible, so any OpenAI client or
  chat front end can use newsdesk as a model; citations ride along in an extra ``citations``
  field.
- ``GET /healthz`` (open), ``/docs`` and ``/openapi.json`` (open: they describe the API and
  hold no data, and a browser cannot send a bearer token to load them).
- ``/ui``: the chat UI when ``mount_ui`` is set, behind a login that asks for the same key.

Every other route needs ``Authorization: Bearer NEWSDESK_API_KEY`` when a key is set.  Errors
are JSON ``{"error": {"message", "hint", "type"}}``; no stack trace reaches a client.  Blocking
work runs in worker threads; writes (ingest, delete) take turns, questions never wait on them.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import UploadFile
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
from assistant.library import ArticlePage, Library
from assistant.models import Answer, Citation, StreamEvent, Timeline
from assistant.retrieve import Filters
from assistant.settings import Settings, get_settings
from index.models import Article, IngestReport

log = logging.getLogger("newsdesk.api")
T = TypeVar("T")

MAX_JSON_BYTES = 1024 * 1024
"""Largest body of a question or chat request."""

"""Largest body of POST /v1/articles (JSON records or an uploaded file), unless configured."""

MODEL_ID = "newsdesk"
"""The one model GET /v1/models lists; any model name is accepted on chat completions."""

LLM_FAILED = "\n\n(The language model failed; the answer below is quoted from the sources.)\n\n"

STATUS: dict[type[NewsdeskError], int] = {
    ArticleNotFound: 404,
    NothingIndexed: 409,
    InputError: 422,
    ConfigError: 400,
    LLMError: 502,
    StoreError: 503,
    EmbeddingError: 503,
}

# The library's hints name CLI commands; over HTTP the fix is a request.
HTTP_HINTS: dict[type[NewsdeskError], str] = {
    NothingIndexed: "add articles with POST /v1/articles (or `newsdesk ingest PATH` on the "
    "server), then ask again",
    ArticleNotFound: "GET /v1/articles lists the ids that are indexed",
}


# --- request and response bodies -----------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong and how to fix it."""

    message: str
    hint: str | None = None
    type: str = Field(description="The error's kind, e.g. NothingIndexed or InvalidRequest.")


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


class AskRequest(Filters):
    """A question and the filters it is answered under."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1, max_length=2000, pattern=r"\S", description="The question, in plain words."
    )
    retriever: Literal["hybrid", "dense", "bm25"] | None = Field(
        None, description="How chunks are found (default: the server's setting)."
    )
    stream: bool = Field(
        False,
        description="Answer as server-sent events: `delta` (text as written), `reset` (discard "
        "the text so far), then `answer` (the final Answer with its citations).",
    )


class ArticleRecord(BaseModel):
    """One article in the corpus format (documents the body of POST /v1/articles)."""

    model_config = ConfigDict(extra="allow")

    text: str = Field(min_length=1, description="The article's full text (required).")
    id: str | None = Field(None, description="Stable id; derived from url or content if absent.")
    title: str | None = Field(None, description="Headline; the text's first line if absent.")
    outlet: str | None = None
    published: str | None = Field(None, description="Publication date, ISO like 2015-10-21.")
    url: str | None = None
    authors: list[str] | str | None = None


class Removed(BaseModel):
    """The articles a DELETE removed."""

    removed: list[str]


class Health(BaseModel):
    """The service is up."""

    status: Literal["ok"] = "ok"


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        """The message's text; content parts of type 'text' joined."""
        if isinstance(self.content, list):
            return "\n".join(
                str(p.get("text", "")) for p in self.content if p.get("type") == "text"
            )
        return self.content or ""


class ChatRequest(Filters):
    """An OpenAI chat completion request; newsdesk's filters may ride along as extra fields."""

    model_config = ConfigDict(extra="ignore")  # clients send temperature, top_p, user, ...

    model: str = Field(MODEL_ID, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False

    @model_validator(mode="after")
    def _has_question(self) -> ChatRequest:
        if not self.question:
            raise ValueError("messages: no user message with text (the last one is the question)")
        if len(self.question) > 2000:
            raise ValueError("messages: the last user message is over 2000 characters")
        return self

    @property
    def question(self) -> str:
        """The last user message: the question (earlier turns are not used yet)."""
        users = [m for m in self.messages if m.role == "user"]
        return users[-1].text.strip() if users else ""


class ChatReply(BaseModel):
    """The assistant message of a completion."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: ChatReply
    finish_reason: Literal["stop"] = "stop"


class ChatUsage(BaseModel):
    """LLM tokens spent (zero for extractive answers)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    """An OpenAI chat completion plus the structured citations of the answer."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    citations: list[Citation] = Field(
        description="newsdesk's extra field: each [n] marker resolved to its source sentence."
    )


class ModelCard(BaseModel):
    """A model as GET /v1/models lists it."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "newsdesk"


class ModelList(BaseModel):
    """GET /v1/models."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- the app -------------------------------------------------------------------------------


@dataclass
class Service:
    """What every request shares: one assistant (store, embedder, LLM), and the locks."""

    assistant: Assistant
    api_key: str | None
    # Ingest and delete run one at a time: a second writer's start-of-ingest clean-up would
    # delete vectors the first has written but not yet committed. Reads never wait on it.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    # Answering is CPU-bound unless an LLM is waited on: more threads than about twice the
    # cores only contend (32 clients on 2 cores: 37 answers/s with 4 threads, 31 with 40, p95
    # 1.0 s against 1.5 s; benchmarks/RESULTS.md). Waiting on an LLM needs many threads.
    answer_threads: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        extractive = self.assistant.llm.mode == "extractive"
        self.answer_threads = anyio.CapacityLimiter(2 * (os.cpu_count() or 1) if extractive else 32)

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking answer work in a worker thread, within the answer thread limit."""
        return await anyio.to_thread.run_sync(
            functools.partial(call, *args, **kwargs), limiter=self.answer_threads
        )

    async def iterate(self, lines: Iterator[str]) -> AsyncIterator[str]:
        """Advance a blocking generator in worker threads, within the answer thread limit."""
        while (line := await self.run(next, lines, None)) is not None:
            yield line


def create_app(
    settings: Settings | None = None, *, assistant: Assistant | None = None, mount_ui: bool = False
) -> FastAPI:
    """The newsdesk HTTP service over one index; ``mount_ui`` adds the chat UI at /ui."""
    assistant = assistant or Assistant(settings)
    settings = assistant.settings
    key = settings.api.api_key.get_secret_value() if settings.api.api_key else None
    app = FastAPI(
        title="newsdesk",
        summary="Ask questions of news articles; every claim cites its source sentence.",
        version="0.1.0",
    )
    app.state.newsdesk = Service(assistant, key)
    app.add_exception_handler(NewsdeskError, _newsdesk_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(_Guard)
    app.include_router(open_routes)
    app.include_router(
        v1, dependencies=[Depends(_authorized)], responses=ERRORS, max_body_size=MAX_JSON_BYTES
    )
    # Registered apart from the v1 router so exactly one body limit, the upload one, applies.
    app.post(
        "/v1/articles",
        response_model=IngestReport,
        dependencies=[Depends(_authorized)],
        responses={
            **ERRORS,
            415: {"model": ErrorBody, "description": "Neither JSON nor multipart/form-data."},
        },
        openapi_extra={"requestBody": ARTICLES_BODY},
        max_body_size=_upload_limit(settings),
        tags=["articles"],
    )(add_articles)
    if mount_ui:
        _mount_ui(app, assistant, key)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Settings | None = None,
    *,
    mount_ui: bool = False,
) -> None:
    """Run the service under uvicorn until interrupted.

    Raises ConfigError when asked to listen beyond loopback without NEWSDESK_API_KEY.
    """
    import uvicorn

    settings = settings or get_settings()
    if not _is_loopback(host) and settings.api.api_key is None:
        raise ConfigError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could "
            "read and change the index",
            hint="set NEWSDESK_API_KEY (e.g. `export NEWSDESK_API_KEY=$(openssl rand -hex 32)`) "
            "and send it as 'Authorization: Bearer KEY', or serve on 127.0.0.1",
        )
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    print(
        f"newsdesk: API docs {base}/docs · OpenAI base URL {base}/v1"
        + (f" · chat UI {base}/ui" if mount_ui else ""),
        file=sys.stderr,
        flush=True,
    )
    # Open event streams must not hold up Ctrl-C for long.
    uvicorn.run(
        create_app(settings, mount_ui=mount_ui), host=host, port=port, timeout_graceful_shutdown=5
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def _upload_limit(settings: Settings) -> int:
    return int(settings.api.api_max_upload_mb * 1024 * 1024)


def _mount_ui(app: FastAPI, assistant: Assistant, key: str | None) -> None:
    try:
        from assistant import ui
    except ModuleNotFoundError as exc:
        if exc.name != "assistant.ui":
            raise  # a broken UI is an error, not a reason to quietly serve without it
        log.warning("chat UI not mounted: assistant/ui.py does not exist yet")
        return
    import gradio

    blocks = ui.create_app(assistant.settings, assistant=assistant)
    auth = None
    if key:
        # A browser cannot send a bearer token: the UI asks for the same key at a login page.
        def auth(_user: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), key.encode())

    gradio.mount_gradio_app(
        app, blocks, path="/ui", auth=auth,
        auth_message="Any user name; the password is the server's NEWSDESK_API_KEY.",
    )


async def _service(request: Request) -> Service:
    service: Service = request.app.state.newsdesk
    return service


bearer = HTTPBearer(auto_error=False, description="NEWSDESK_API_KEY, when the server sets one.")


async def _authorized(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    key = (await _service(request)).api_key
    if key is None:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), key.encode()):
        raise HTTPException(
            401,
            "missing or wrong API key" if given else "this server needs an API key",
            headers={"WWW-Authenticate": "Bearer"},
        )


# --- errors --------------------------------------------------------------------------------


def _error(status: int, message: str, hint: str | None, kind: str, **headers: str) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(message=message, hint=hint, type=kind))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers or None)


async def _newsdesk_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NewsdeskError)
    kind = type(exc)
    status = next((s for k, s in STATUS.items() if isinstance(exc, k)), 500)
    message = "no articles indexed yet" if isinstance(exc, NothingIndexed) else exc.message
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return _error(status, message, HTTP_HINTS.get(kind, exc.hint), kind.__name__)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
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


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body cannot be read (not UTF-8 JSON)."},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    413: {"model": ErrorBody, "description": "The body is over the size limit."},
    422: {"model": ErrorBody, "description": "Invalid request; the message names the field."},
    500: {"model": ErrorBody, "description": "Unexpected error (details in the server's log)."},
}


# Each server-sent event, as OpenAPI 3.1 documents an event stream: one schema per event.
ASK_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["delta", "reset", "answer", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": 'JSON: {"type": "delta", "text"}, {"type": "reset"} (discard the '
            'text so far), {"type": "answer", "answer": Answer}, or {"error": {...}}.',
        },
    },
}
CHAT_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chat.completion.chunk as JSON (the last one, with finish_reason "
            "'stop', carries `citations`), then [DONE].",
        },
    },
}


# --- routes --------------------------------------------------------------------------------

open_routes = APIRouter()
v1 = APIRouter(prefix="/v1")


@open_routes.get("/healthz", tags=["service"])
def healthz() -> Health:
    """Liveness: needs no token."""
    return Health()


@v1.post(
    "/ask",
    response_model=Answer,
    tags=["answers"],
    responses={
        200: {
            "description": "The Answer; with `stream: true`, server-sent events instead.",
            "content": {"text/event-stream": {"schema": ASK_EVENT}},
        },
        409: {"model": ErrorBody, "description": "Nothing is indexed yet."},
    },
)
async def ask(body: AskRequest, service: Annotated[Service, Depends(_service)]) -> Any:
    """Answer a question from the indexed articles, every sentence cited."""
    filters = body.model_dump(include={"outlets", "since", "until", "as_of", "retriever"})
    if not body.stream:
        return await service.run(service.assistant.ask, body.question, **filters)
    events = service.assistant.stream(body.question, **filters)
    first = await service.run(next, events)  # retrieval runs here: its errors get a status
    return _event_stream(service.iterate(_ask_events(chain([first], events))))


class TimelineRequest(Filters):
    """A query for a timeline and the filters it is built under."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=2000, pattern=r"\S", description="What the timeline is about."
    )
    limit: int = Field(15, ge=1, le=100, description="At most this many events.")


@v1.post(
    "/timeline",
    response_model=Timeline,
    tags=["answers"],
    responses={409: {"model": ErrorBody, "description": "Nothing is indexed yet."}},
)
async def timeline(body: TimelineRequest, service: Annotated[Service, Depends(_service)]) -> Any:
    """The dated events relevant to a query, in date order, each with its cited sentence(s)."""
    options = body.model_dump(include={"outlets", "since", "until", "as_of", "limit"})
    return await service.run(service.assistant.timeline, body.query, **options)


def _ask_events(events: Iterator[StreamEvent]) -> Iterator[str]:
    try:
        for event in events:
            payload: dict[str, Any] = {"type": event.type}
            if event.type == "delta":
                payload["text"] = event.text or ""
            elif event.answer is not None:
                payload["answer"] = event.answer.model_dump(mode="json")
            yield _sse(payload, event.type)
    except Exception as exc:  # noqa: BLE001 - the status is sent: the error becomes an event
        yield _sse(_stream_error(exc), "error")


def _stream_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, NewsdeskError):
        log.error("error while streaming: %s", exc)
        detail = ErrorDetail(message=exc.message, hint=exc.hint, type=type(exc).__name__)
    else:
        log.exception("unexpected error while streaming")
        detail = ErrorDetail(message="internal error while answering", type="InternalError")
    return {"error": detail.model_dump()}


def _sse(payload: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _event_stream(lines: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        lines,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@v1.get("/articles", tags=["articles"])
def list_articles(
    service: Annotated[Service, Depends(_service)],
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    outlet: Annotated[str | None, Query(max_length=500, description="Only this outlet.")] = None,
    search: Annotated[
        str | None, Query(max_length=500, description="Only titles containing this.")
    ] = None,
) -> ArticlePage:
    """Indexed articles, newest first, without their text."""
    return _library(service).list_articles(
        offset=offset, limit=limit, outlet=outlet, search=search
    )


@v1.get(
    "/articles/{article_id:path}",
    tags=["articles"],
    responses={404: {"model": ErrorBody, "description": "No such article."}},
)
def get_article(article_id: str, service: Annotated[Service, Depends(_service)]) -> Article:
    """One article with its full text: a citation's `start`/`end` index into `text`."""
    return _library(service).get_article(article_id)


@v1.delete(
    "/articles/{article_id:path}",
    tags=["articles"],
    responses={404: {"model": ErrorBody, "description": "No such article."}},
)
def delete_article(article_id: str, service: Annotated[Service, Depends(_service)]) -> Removed:
    """Remove an article and all its chunks from the index."""
    _library(service).remove(article_id)
    return Removed(removed=[article_id])


@v1.get("/stats", tags=["articles"])
def stats(service: Annotated[Service, Depends(_service)]) -> dict[str, Any]:
    """What is indexed: counts, date range, outlets."""
    return _library(service).stats()


ARTICLES_BODY: dict[str, Any] = {
    "required": True,
    "description": "JSON: one record or a list of records in the corpus format (only `text` "
    "is required). Or multipart/form-data with a `file` of any format `newsdesk ingest` reads "
    "(.txt, .md, .html, .json, .jsonl, RSS/Atom).",
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    ArticleRecord.model_json_schema(),
                    {"type": "array", "items": ArticleRecord.model_json_schema(), "minItems": 1},
                ]
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}


async def add_articles(request: Request) -> IngestReport:
    """Ingest articles: JSON records, or an uploaded file. Responds with the IngestReport.

    When nothing could be ingested the response is a 422 naming each problem; when some
    inputs were bad, the report's `skipped` lists them (with `error: true`).
    """
    service = await _service(request)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InputError(
                "field 'file': the multipart body has no file named 'file'",
                hint="send it as -F file=@article.txt",
            )
        data = await upload.read()
        return await run_in_threadpool(_ingest_upload, service, upload.filename, data)
    if kind != "application/json":
        raise HTTPException(
            415, f"unsupported content type {kind!r}: send application/json or multipart/form-data"
        )
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except UnicodeDecodeError:
        raise InputError("body: not UTF-8 text", hint="send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            hint="send one record {\"text\": ...} or a list of them",
        ) from None
    return await run_in_threadpool(_ingest_records, service, payload)


def _library(service: Service) -> Library:
    """The library over the service's index: the assistant's store and embedding model."""
    assistant = service.assistant
    return Library(assistant.settings, store=assistant.store, embedder=assistant.embedder)


def _ingest_records(service: Service, payload: Any) -> IngestReport:
    return _library(service).ingest_records(payload)


def _ingest_upload(service: Service, filename: str | None, data: bytes) -> IngestReport:
    # Read exactly like a file given to `newsdesk ingest`; reports name it upload:NAME.
    return _library(service).ingest_upload(filename, data)


# --- OpenAI-compatible ---------------------------------------------------------------------


@v1.get("/models", tags=["openai"])
def models() -> ModelList:
    """The one model: newsdesk itself (OpenAI-compatible)."""
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@v1.post(
    "/chat/completions",
    response_model=ChatCompletion,
    tags=["openai"],
    responses={
        200: {
            "description": "A chat completion; with `stream: true`, OpenAI-style chunks as "
            "server-sent events, the last one carrying `citations`.",
            "content": {"text/event-stream": {"schema": CHAT_EVENT}},
        },
        409: {"model": ErrorBody, "description": "Nothing is indexed yet."},
    },
)
async def chat_completions(
    body: ChatRequest, service: Annotated[Service, Depends(_service)]
) -> Any:
    """OpenAI-compatible: the last user message is the question; the reply cites its sources.

    The reply text carries [n] markers and a "Sources:" list; the structured citations are in
    the extra `citations` field (on the completion, or on the final stream chunk).
    """
    filters = body.model_dump(include={"outlets", "since", "until", "as_of"})
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if not body.stream:
        answer = await service.run(service.assistant.ask, body.question, **filters)
        usage = ChatUsage(**{k: v for k, v in answer.usage.items() if k in ChatUsage.model_fields})
        if not usage.total_tokens:
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        return ChatCompletion(
            id=completion_id,
            created=int(time.time()),
            model=body.model,
            choices=[ChatChoice(message=ChatReply(content=answer.text + sources_text(answer)))],
            usage=usage,
            citations=answer.citations,
        )
    events = service.assistant.stream(body.question, **filters)
    first = await service.run(next, events)
    chunks = _chat_chunks(chain([first], events), completion_id, body.model)
    return _event_stream(service.iterate(chunks))


def _chat_chunks(events: Iterator[StreamEvent], completion_id: str, model: str) -> Iterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _sse({
            "id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        })

    yield chunk({"role": "assistant", "content": ""})
    written = ""  # the text since the last reset, to compare with the checked answer
    try:
        for event in events:
            if event.type == "delta" and event.text:
                written += event.text
                yield chunk({"content": event.text})
            elif event.type == "reset":
                written = ""
                yield chunk({"content": LLM_FAILED})
            elif event.answer is not None:
                answer = event.answer
                if answer.refused and written.strip() != answer.text:
                    # Streamed text that cited nothing valid was withheld by the citation check.
                    yield chunk({"content": f"\n\n(Withheld: no valid citation.) {answer.text}"})
                if answer.citations:
                    yield chunk({"content": sources_text(answer)})
                citations = [c.model_dump(mode="json") for c in answer.citations]
                yield chunk({}, "stop", citations=citations)
    except Exception as exc:  # noqa: BLE001 - the status is sent: the error becomes an event
        yield _sse(_stream_error(exc))
    yield "data: [DONE]\n\n"


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
