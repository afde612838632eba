"""An OpenAI-protocol chat server on loopback, scripted per test: the only fake in the suite.

Each test queues replies; a reply is either fixed text, a function of the request's messages,
or an HTTP failure.  Replies stream as server-sent events when the client asks for a stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Messages = list[dict[str, str]]


@dataclass
class Reply:
    """What the server answers to one request."""

    content: str | Callable[[Messages], str] = ""
    status: int = 200
    delay: float = 0.0
    pieces: int = 4  # how many stream chunks the content is cut into
    error_after: int | None = None  # stream this many chunks, then an error event (a mid-answer failure)
    raw: bytes | None = None  # sent as the body as it is (garbage), with status and content_type
    content_type: str = "text/event-stream"


@dataclass
class FakeOpenAI:
    """The running server: queue replies with ``script``, read what clients sent in ``requests``."""

    port: int = 0
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    default: Reply = field(default_factory=lambda: Reply(status=500))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if self.replies else self.default


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            fake.requests.append({"path": self.path, "body": body,
                                  "auth": self.headers.get("Authorization")})
            reply = fake.next_reply()
            if reply.delay:
                time.sleep(reply.delay)
            if reply.raw is not None:
                self._raw(reply.status, reply.raw, reply.content_type)
                return
            if reply.status != 200:
                self._json(reply.status, {"error": {"message": f"scripted {reply.status}",
                                                    "type": "server_error"}})
                return
            content = reply.content(body["messages"]) if callable(reply.content) else reply.content
            try:
                if body.get("stream"):
                    self._stream(body["model"], content, reply.pieces, reply.error_after)
                else:
                    self._json(200, _completion(body["model"], content))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def _raw(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, model: str, content: str, pieces: int, error_after: int | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for n, delta in enumerate(_cut(content, pieces)):
                if n == error_after:
                    self._event({"error": {"message": "scripted failure mid-stream",
                                           "type": "server_error"}})
                    self.close_connection = True
                    return
                self._event(_chunk(model, {"content": delta}))
            self._event(_chunk(model, {}, finish="stop"))
            usage = {"prompt_tokens": 100, "completion_tokens": len(content.split()),
                     "total_tokens": 100 + len(content.split())}
            self._event({**_chunk(model, {}), "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

    return Handler


def _cut(text: str, pieces: int) -> Iterator[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    for i in range(0, len(text), size):
        yield text[i : i + size]


def _chunk(model: str, delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _completion(model: str, content: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


def start() -> tuple[FakeOpenAI, Callable[[], None]]:
    """Start a server on a free loopback port; returns it and a stop function."""
    fake = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return fake, stop
