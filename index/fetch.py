"""A polite HTTP client for the feed watcher: ``Fetcher(watch_config).get(url, etag=..., ...)``.

It sends a descriptive User-Agent (``newsdesk/VERSION (+CONTACT)``), makes conditional requests
(``If-None-Match`` / ``If-Modified-Since``) so an unchanged feed costs a 304 and no body, reads
each host's robots.txt once (``urllib.robotparser``, cached per origin) and obeys it, including
its Crawl-delay, and keeps at most ``watch_per_host`` requests in flight to any one host.
Downloads over ``watch_max_mb`` are cut off.  Safe to share between threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Self
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from index.feeds import WatchConfig

ROBOTS_TTL = 24 * 3600.0
"""Seconds a host's robots.txt is trusted before it is fetched again."""
ROBOTS_RETRY = 15 * 60.0
"""Seconds an unreachable robots.txt (5xx, network error) keeps its host off limits."""
MAX_CRAWL_DELAY = 30.0
"""Longest Crawl-delay honoured, so one host cannot stall a round indefinitely."""


def user_agent(contact: str | None) -> str:
    """``newsdesk/VERSION (+CONTACT)``: who is fetching, and how to reach them."""
    try:
        release = version("newsdesk")
    except PackageNotFoundError:  # run from a checkout that was never installed
        release = "0.1.0"
    reach = f"+{contact}" if contact else "feed reader; the operator sets NEWSDESK_WATCH_CONTACT"
    return f"newsdesk/{release} ({reach})"


class FetchError(Exception):
    """A request that failed: network error, error status, or an oversized body."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Fetched:
    """A response: 200 with its body, or 304 (``body`` empty) with the validators to keep."""

    url: str
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str


class _Host:
    """At most ``limit`` requests in flight to one host, spaced by its Crawl-delay."""

    def __init__(self, limit: int) -> None:
        self.slots = threading.Semaphore(limit)
        self.delay = 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self.slots.acquire()
        if self.delay:
            with self._lock:
                start = max(time.monotonic(), self._next)
                self._next = start + self.delay
            time.sleep(max(0.0, start - time.monotonic()))

    def __exit__(self, *exc: object) -> None:
        self.slots.release()


class Fetcher:
    """One HTTP client, robots.txt cache and per-host limits for a watcher (thread-safe)."""

    def __init__(self, config: WatchConfig | None = None) -> None:
        self.config = config or WatchConfig()
        self.user_agent = user_agent(self.config.watch_contact)
        self.client = httpx.Client(
            headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=self.config.watch_timeout,
            follow_redirects=True,
            limits=httpx.Limits(max_connections=self.config.watch_concurrency * 2),
        )
        self.max_bytes = int(self.config.watch_max_mb * 1024 * 1024)
        self.requests = 0
        self.bytes = 0
        self._hosts: dict[str, _Host] = {}
        self._robots: dict[str, tuple[float, RobotFileParser]] = {}
        self._origin_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    def _host(self, url: str) -> _Host:
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = _Host(self.config.watch_per_host)
            return self._hosts[host]

    def allowed(self, url: str) -> bool:
        """Whether the host's robots.txt lets newsdesk fetch ``url`` (fetched once per origin)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            lock = self._origin_locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch of robots.txt per origin, however many threads ask
            cached = self._robots.get(origin)
            if cached is None or cached[0] < time.monotonic():
                cached = self._robots[origin] = self._load_robots(origin)
        return cached[1].can_fetch(self.user_agent, url)

    def _load_robots(self, origin: str) -> tuple[float, RobotFileParser]:
        """RFC 9309: a missing robots.txt (4xx) allows everything; an unreachable one (5xx,
        network error) disallows everything until it is tried again."""
        robots = RobotFileParser(f"{origin}/robots.txt")
        ttl = ROBOTS_TTL
        try:
            got = self._request(f"{origin}/robots.txt", {})
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                robots.parse([])
            else:
                robots.parse(["User-agent: *", "Disallow: /"])
                ttl = ROBOTS_RETRY
        else:
            robots.parse(got.body.decode("utf-8", "replace").splitlines())
            delay = robots.crawl_delay(self.user_agent)
            if delay:
                self._host(origin).delay = min(float(delay), MAX_CRAWL_DELAY)
        return time.monotonic() + ttl, robots

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """GET ``url``, conditionally when validators are given; 304 comes back with no body.

        Raises FetchError for a network error, a status >= 400 or an oversized body. Does not
        check robots.txt: call ``allowed`` first.
        """
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return self._request(url, headers)

    def _request(self, url: str, headers: dict[str, str]) -> Fetched:
        with self._host(url):
            with self._lock:
                self.requests += 1
            try:
                with self.client.stream("GET", url, headers=headers) as response:
                    body = b"" if response.status_code == 304 else self._read(response)
            except httpx.HTTPError as exc:
                raise FetchError(f"{type(exc).__name__}: {exc or 'no response'}") from None
        if response.status_code >= 400:
            raise FetchError(
                f"HTTP {response.status_code} {response.reason_phrase}",
                status=response.status_code,
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
        return Fetched(
            url=str(response.url),
            status=response.status_code,
            body=body,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            content_type=response.headers.get("content-type", ""),
        )

    def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"the response is {int(declared) / 2**20:.1f} MiB, over the "
                             f"{self.config.watch_max_mb:g} MiB limit (NEWSDESK_WATCH_MAX_MB)")
        parts: list[bytes] = []
        size = 0
        for part in response.iter_bytes():
            size += len(part)
            if size > self.max_bytes:
                raise FetchError(f"the response is over the {self.config.watch_max_mb:g} MiB "
                                 "limit (NEWSDESK_WATCH_MAX_MB)")
            parts.append(part)
        with self._lock:
            self.bytes += response.num_bytes_downloaded
        return b"".join(parts)


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when: Any = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
