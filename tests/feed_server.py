"""A loopback HTTP server of feeds and pages, scripted by a test (or a benchmark).

``FeedServer()`` listens on 127.0.0.1 (or another loopback address) on a free port, in a thread.  ``serve(path, body)`` puts a
document at a path; it is answered with an ETag and a Last-Modified header, and with 304 to a
request that sends either one back unchanged.  ``fail(path, status)`` makes a path answer an
error.  Every request is recorded (path and headers), and the most requests ever in flight at
once is kept, so tests can check what a client sent and how hard it pushed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Doc:
    """What one path answers."""

    body: bytes = b""
    content_type: str = "application/rss+xml"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]


class FeedServer:
    """Feeds, pages and robots.txt on 127.0.0.1:PORT, with conditional GET."""

    def __init__(self, *, host: str = "127.0.0.1", delay: float = 0.0) -> None:
        self.docs: dict[str, Doc] = {}
        self.requests: list[Seen] = []
        self.delay = delay
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        """The full URL of ``path``."""
        return self.base + path

    def serve(self, path: str, body: str | bytes, content_type: str = "application/rss+xml",
              *, validators: bool = True, headers: dict[str, str] | None = None) -> None:
        """Answer ``path`` with ``body`` (and, unless told not to, an ETag and Last-Modified that
        change with it)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        digest = hashlib.sha1(data).hexdigest()[:16]
        self.docs[path] = Doc(
            data, content_type,
            etag=f'"{digest}"' if validators else None,
            last_modified=formatdate(time.time(), usegmt=True) if validators else None,
            headers=headers or {},
        )

    def fail(self, path: str, status: int = 500, headers: dict[str, str] | None = None) -> None:
        """Answer ``path`` with an error status."""
        self.docs[path] = Doc(b"server error", "text/plain", status, headers=headers or {})

    def hits(self, path: str) -> list[Seen]:
        """The requests made for ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests.clear()
            self.most_active = 0

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with server._lock:
                server.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
                server.active += 1
                server.most_active = max(server.most_active, server.active)
            try:
                if server.delay:
                    time.sleep(server.delay)
                doc = server.docs.get(self.path) or server.docs.get(self.path.split("?")[0])
                self._answer(doc)
            finally:
                with server._lock:
                    server.active -= 1

        def _answer(self, doc: Doc | None) -> None:
            if doc is None:
                return self._send(404, b"not found", "text/plain", {})
            if doc.status >= 400:
                return self._send(doc.status, doc.body, doc.content_type, doc.headers)
            validators = {}
            if doc.etag:
                validators["ETag"] = doc.etag
            if doc.last_modified:
                validators["Last-Modified"] = doc.last_modified
            # RFC 9110 13.2.2: If-None-Match, when sent, decides alone; If-Modified-Since only
            # without it (its one-second resolution cannot tell two edits in a second apart).
            sent_etag = self.headers.get("If-None-Match")
            if sent_etag is not None:
                unchanged = doc.etag is not None and sent_etag == doc.etag
            else:
                since = self.headers.get("If-Modified-Since")
                unchanged = doc.last_modified is not None and since == doc.last_modified
            if unchanged:
                return self._send(304, b"", None, validators)
            return self._send(200, doc.body, doc.content_type, {**validators, **doc.headers})

        def _send(self, status: int, body: bytes, kind: str | None, headers: dict[str, str]) -> None:
            self.send_response(status)
            if kind:
                self.send_header("Content-Type", kind)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def rss(title: str, items: list[dict[str, str]]) -> str:
    """An RSS 2.0 feed; each item may have title, link, guid, description (a summary),
    content (full text, as content:encoded) and pubDate."""
    parts = []
    for item in items:
        fields = [f"<title>{escape(item.get('title', ''))}</title>"]
        for tag in ("link", "guid", "pubDate"):
            if tag in item:
                fields.append(f"<{tag}>{escape(item[tag])}</{tag}>")
        if "description" in item:
            fields.append(f"<description>{escape(item['description'])}</description>")
        if "content" in item:
            fields.append(f"<content:encoded><![CDATA[{item['content']}]]></content:encoded>")
        parts.append("<item>" + "".join(fields) + "</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link>"
        f"<description>{escape(title)}</description>{''.join(parts)}</channel></rss>"
    )


def page(title: str, paragraphs: list[str]) -> str:
    """An article page with navigation around its text, as news sites serve them."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title>"
        f'<meta property="og:site_name" content="Loopback News"></head><body>'
        "<nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a></nav>"
        f"<article><h1>{escape(title)}</h1>{body}</article>"
        "<footer>Copyright Loopback News. All rights reserved.</footer></body></html>"
    )


@pytest.fixture(name="server")
def serving_feeds() -> Iterator[FeedServer]:
    """The fixture ``server``: a feed server on 127.0.0.1 whose robots.txt allows everything
    (a test module imports ``serving_feeds`` to use it)."""
    srv = FeedServer()
    srv.serve("/robots.txt", "User-agent: *\nDisallow:\n", "text/plain")
    yield srv
    srv.close()
