"""The HTTP face: a REST and OpenAI-compatible service over the same Python API as the CLI.

``create_app(settings) -> FastAPI`` builds the service around one ``Assistant`` (so one store
and one embedding model are shared by every request); ``serve(host, port, settings)`` runs it
under uvicorn.  Routes translate requests into calls of ``Assistant`` and ``Library`` and hold no
logic of their own:

- ``POST /v1/ask``: question and filters in, ``Answer`` out (``stream: true``: server-sent
  events ``delta``, ``reset``, ``answer``, mirroring ``StreamEvent``: the deltas are the draft,
  the answer is the checked text).
- ``POST /v1/timeline``: query and filters in, ``Timeline`` (dated, cited events) out.
- ``GET|POST /v1/articles``, ``GET|DELETE /v1/articles/{id}``, ``GET /v1/stats``: the index.
- ``POST /v1/watch/run``, ``GET /v1/watch``: one round over the feed list NEWSDESK_WATCH_FEEDS,
  and each followed feed's status (``index.watch``).
- ``POST /v1/chat/completions``, ``GET /v1/models``: OpenAI-compatible (``openai_compat``).
- ``GET /healthz`` (open), ``/docs`` and ``/openapi.json`` (open: they describe the API and
  hold no data, and a browser cannot send a bearer token to load them).
- ``/ui``: the chat UI when ``mount_ui`` is set, behind a login that asks for the same key.

Every other route needs ``Authorization: Bearer NEWSDESK_API_KEY`` when a key is set.  Errors
are JSON ``{"error": {"message", "hint", "type"}}`` (``http_base`` maps domain errors to
statuses); no stack trace reaches a client.  Blocking work runs in worker threads.

Why this file passes ~400 lines: it is the REST API's one table of routes and their request
models, each a few lines of translation; splitting it would scatter what a reader looks up.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import sys
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import ServerSentEvent
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from assistant import openai_compat
from assistant.answer import Assistant
from assistant.errors import ConfigError, InputError
from assistant.filters import make_filters
from assistant.http_base import (
    ERRORS,
    MAX_JSON_BYTES,
    ErrorBody,
    LoginThrottle,
    Service,
    error_payload,
    install_error_handlers,
    key_refusal,
    service_of,
    sse,
)
from assistant.library import ArticlePage, Library
from assistant.models import Answer, StreamEvent, Timeline
from assistant.retrieve import Filters
from assistant.settings import Settings, get_settings
from index.models import Article, IngestReport
from index.records import BadRecord, load_json
from index.watch import FeedStatus, WatchReport, feed_statuses, run_round

log = logging.getLogger("newsdesk.api")
_service = service_of  # the name the article routes use

# --- request and response bodies -----------------------------------------------------------


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
        description="Answer as server-sent events: `delta` (the draft as written, before its "
        "citations are checked), `reset` (discard the text so far), then `answer` (the final, "
        "checked Answer: its `text` is the answer, without the sentences listed in `dropped`).",
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


# --- the app -------------------------------------------------------------------------------

open_routes = APIRouter()
v1 = APIRouter(prefix="/v1")


def create_app(
    settings: Settings | None = None, *, assistant: Assistant | None = None, mount_ui: bool = False
) -> FastAPI:
    """The newsdesk HTTP service over one index; ``mount_ui`` adds the chat UI at /ui.

    ``assistant`` (default: one built from ``settings``) answers every request. Raises
    ConfigError for an unusable configuration, such as an API key that is blank or too short.
    """
    settings = assistant.settings if assistant else (settings or get_settings())
    key = settings.api.checked_key()  # before the index and the model are loaded
    assistant = assistant or Assistant(settings)
    app = FastAPI(
        title="newsdesk",
        summary="Ask questions of news articles; every claim cites its source sentence.",
        version="0.1.0",
    )
    app.state.newsdesk = Service(assistant, key)
    install_error_handlers(app)
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

    from assistant.long_running import long_running

    settings = settings or get_settings()
    if not _is_loopback(host) and settings.api.checked_key() is None:
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
    long_running(settings)
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
        # A browser cannot send a bearer token: the UI asks for the same key at a login page,
        # where failed attempts are throttled per client address.
        def auth(_user: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), key.encode())

        app.add_middleware(LoginThrottle, path="/ui/login")

    gradio.mount_gradio_app(
        app, blocks, path="/ui", auth=auth,
        auth_message="Any user name; the password is the server's NEWSDESK_API_KEY.",
        max_file_size=_upload_limit(assistant.settings),  # the same limit as POST /v1/articles
    )


bearer = HTTPBearer(auto_error=False, description="NEWSDESK_API_KEY, when the server sets one.")


async def _authorized(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The bearer check of every /v1 route (``credentials`` documents it in the OpenAPI schema)."""
    refusal = key_refusal(request)
    if refusal is not None:
        raise HTTPException(401, refusal, headers={"WWW-Authenticate": "Bearer"})


# Each server-sent event, as OpenAPI 3.1 documents an event stream: one schema per event.
ASK_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["delta", "reset", "answer", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": 'JSON: {"type": "delta", "text"} (the unchecked draft), {"type": '
            '"reset"} (discard the text so far), {"type": "answer", "answer": Answer} (the '
            'checked answer, to show in place of the draft), or {"error": {...}}.',
        },
    },
}
# --- routes --------------------------------------------------------------------------------


@open_routes.get("/healthz", tags=["service"])
def healthz() -> Health:
    """Liveness: needs no token."""
    return Health()


def filters_of(body: Filters) -> Filters:
    """The filters a request body carries (it was validated as a ``Filters``)."""
    return make_filters(**body.model_dump(include=set(Filters.model_fields)))


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
async def ask(body: AskRequest, service: Annotated[Service, Depends(service_of)]) -> Any:
    """Answer a question from the indexed articles, every sentence cited."""
    assistant, filters = service.assistant, filters_of(body)
    if not body.stream:
        return await service.run(assistant.ask, body.question, filters, retriever=body.retriever)
    events = assistant.stream(body.question, filters, retriever=body.retriever)
    return await service.stream(events, _ask_frames)


def _ask_frames(events: Iterator[StreamEvent]) -> Iterator[ServerSentEvent]:
    """Each event as an SSE event named by its type, its JSON data mirroring ``StreamEvent``."""
    try:
        for event in events:
            payload: dict[str, Any] = {"type": event.type}
            if event.type == "delta":
                payload["text"] = event.text or ""
            elif event.answer is not None:
                payload["answer"] = event.answer.model_dump(mode="json")
            yield sse(payload, event.type)
    except Exception as exc:  # noqa: BLE001 - the status is sent: the error becomes an event
        yield sse(error_payload(exc), "error")


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
async def timeline(body: TimelineRequest, service: Annotated[Service, Depends(service_of)]) -> Any:
    """The dated events relevant to a query, in date order, each with its cited sentence(s)."""
    return await service.run(service.assistant.timeline, body.query, filters_of(body), limit=body.limit)


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
    page = _library(service).list_articles(
        offset=offset, limit=limit, outlet=outlet, search=search
    )
    return page.model_copy(update={"articles": [_for_client(a) for a in page.articles]})


@v1.get(
    "/articles/{article_id:path}",
    tags=["articles"],
    responses={404: {"model": ErrorBody, "description": "No such article."}},
)
def get_article(article_id: str, service: Annotated[Service, Depends(_service)]) -> Article:
    """One article with its full text: a citation's `start`/`end` index into `text`."""
    return _for_client(_library(service).get_article(article_id))


def _for_client(article: Article) -> Article:
    """The article as clients see it: ``source`` only when it names what a client sent
    (``upload:NAME``, ``request[N]``), never a file path on the server."""
    source = article.source or ""
    if source == "request" or source.startswith(("upload:", "request[")):
        return article
    return article.model_copy(update={"source": None})


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
    """What is indexed: counts, date range, outlets, embedding model (no server paths)."""
    stats = _library(service).stats()
    return {k: v for k, v in stats.items() if k not in SERVER_ONLY_STATS}


SERVER_ONLY_STATS = frozenset({"data_dir", "chroma"})
"""Where the index lives on the server (`newsdesk stats` shows it); not for clients."""


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
        payload = load_json(raw)  # a bad element of a list becomes its skip
    except UnicodeDecodeError:
        raise InputError("body: not UTF-8 text", hint="send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            hint="send one record {\"text\": ...} or a list of them",
        ) from None
    except BadRecord as exc:  # nested past the recursion limit, a 4,300-digit number...
        raise InputError(f"body: {exc}", hint="send one record or a list of them") from None
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


@v1.post(
    "/watch/run",
    tags=["watch"],
    responses={
        400: {"model": ErrorBody, "description": "No feed list is set (NEWSDESK_WATCH_FEEDS)."},
        503: {"model": ErrorBody, "description": "Another watcher is polling into this index."},
    },
)
async def watch_run(service: Annotated[Service, Depends(_service)]) -> WatchReport:
    """Poll the feeds of the server's feed list that are due, once, and index what is new."""
    return await run_in_threadpool(_watch_round, service)


def _watch_round(service: Service) -> WatchReport:
    assistant = service.assistant
    feeds = assistant.settings.watch.watch_feeds
    if feeds is None:
        raise ConfigError(
            "no feed list is set for this server",
            hint="set NEWSDESK_WATCH_FEEDS to a file with one feed URL or folder per line, "
            "then restart the server",
        )
    return run_round(feeds, config=assistant.settings, store=assistant.store,
                     embedder=assistant.embedder)


@v1.get("/watch", tags=["watch"])
def watch_status(service: Annotated[Service, Depends(_service)]) -> list[FeedStatus]:
    """Each feed and folder the watcher follows into this index: its last poll and the next."""
    return feed_statuses(service.assistant.settings)


v1.include_router(openai_compat.router)
