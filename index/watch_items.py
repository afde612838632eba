"""Poll one source for the watcher: ``poll_feed`` and ``poll_folder`` return what is new.

Each reads the source's state (validators, last body's hash) and its recorded items, and returns
a ``Seen``: the articles to write (``Candidate``), the records of items that need no writing
(known elsewhere, unreadable), the skips to report, and every key the source lists now (so the
round can forget what it no longer lists).  They update the state in memory; the
round saves it once everything seen is written.  Faults of the source itself raise
``FetchError`` (network, HTTP status) or ``SourceError`` (not a feed, folder gone).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from index.feed_list import Source
from index.feeds import FeedBook, FeedState, ItemRecord
from index.fetch import Fetcher, FetchError
from index.models import Article, Skip
from index.readers import SUPPORTED, _html_to_text, article_from_record, derive_id, read_file

TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid")
"""Query parameters that say how a reader arrived, not what the page is; dropped from URLs."""


class SourceError(Exception):
    """The source answered, but with something that cannot be used (the message says why)."""


@dataclass
class Candidate:
    """An article to write; ``record`` (None for all but a file's last article) is saved after it."""

    article: Article
    text_hash: str | None
    record: ItemRecord | None


@dataclass
class Seen:
    """What one poll found."""

    candidates: list[Candidate] = field(default_factory=list)
    records: list[ItemRecord] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    listed: list[str] | None = None  # every key the source lists now; None when not read (304)


def canonical_url(url: str) -> str:
    """``url`` without fragment or tracking parameters, scheme and host lower-cased."""
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith(TRACKING)]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/",
                       urlencode(query), ""))


def text_hash(article: Article) -> str:
    """Hash of an article's words, case and spacing ignored: one story under two URLs."""
    words = " ".join(f"{article.title}\n{article.text}".split()).lower()
    return hashlib.sha256(words.encode("utf-8")).hexdigest()[:20]


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


# --- feeds --------------------------------------------------------------------------------


def poll_feed(source: Source, state: FeedState, book: FeedBook, fetcher: Fetcher) -> Seen:
    """Fetch a feed (conditionally) and return its new and edited entries as articles."""
    url = source.key
    if not fetcher.allowed(url):
        state.status, state.http_status = "disallowed", None
        state.message = "robots.txt of this host does not allow newsdesk to fetch this feed"
        return Seen()
    got = fetcher.get(url, etag=state.etag, last_modified=state.last_modified)
    state.http_status, state.message = got.status, None
    if got.status == 304:
        state.status = "not modified"
        return Seen()
    state.etag, state.last_modified = got.etag, got.last_modified
    body_hash = hashlib.sha256(got.body).hexdigest()[:20]
    if body_hash == state.body_hash:
        state.status = "not modified"
        return Seen()
    import feedparser

    parsed = feedparser.parse(
        got.body, response_headers={"content-type": got.content_type, "content-location": got.url}
    )
    if not parsed.get("version") and not parsed.entries:
        raise SourceError(
            f"not an RSS or Atom feed (content type {got.content_type or 'unknown'}); check that "
            "the URL serves the feed itself, not a web page"
        )
    state.body_hash = body_hash
    state.title = parsed.feed.get("title") or state.title
    entries: dict[str, Any] = {}
    for entry in parsed.entries:
        entries.setdefault(_entry_key(entry), entry)
    known = book.known(url, entries)
    elsewhere = book.elsewhere(url, (k for k in entries if k not in known))
    seen = Seen(listed=list(entries))
    for key, entry in entries.items():
        entry_hash = _digest(
            entry.get("title"), entry.get("link"), entry.get("summary"),
            [c.get("value") for c in entry.get("content", [])],
            dict.get(entry, "updated"), entry.get("published"),  # dict.get: feedparser would map it to "published", warning
        )
        before = known.get(key)
        if before == (entry_hash, True):
            continue
        if before is None and key in elsewhere:
            seen.records.append(ItemRecord(url, key, entry_hash, None, elsewhere[key]))
            seen.duplicates += 1
            continue
        _add_entry(seen, url, key, entry, entry_hash, state.title, fetcher)
    state.status = "changed" if seen.candidates or seen.duplicates else "unchanged"
    if seen.notes:
        counts = Counter(seen.notes)
        state.message = "summary indexed, not the page: " + "; ".join(
            f"{n} {why}" for why, n in counts.most_common()
        )
    return seen


def _entry_key(entry: Any) -> str:
    """The entry's canonical URL; else its guid; else a hash of what it says."""
    if entry.get("link"):
        return canonical_url(entry.link)
    if entry.get("id"):
        return f"guid:{entry.id}"
    return "hash:" + _digest(entry.get("title"), entry.get("summary"))


def _add_entry(seen: Seen, feed_url: str, key: str, entry: Any, entry_hash: str,
               outlet: str | None, fetcher: Fetcher) -> None:
    link = entry.get("link")
    body = entry.content[0].get("value", "") if entry.get("content") else ""
    page: dict[str, Any] = {}
    complete = True
    if not body and link:  # only a summary: the linked page has the article
        page, problem, retry = _page(link, fetcher)
        if problem:
            seen.notes.append(problem)
            complete = not retry
    parsed = entry.get("published_parsed") or dict.get(entry, "updated_parsed")
    record = {
        "id": derive_id(key, "", "") if link else entry.get("id"),
        "title": entry.get("title") or page.get("title"),
        "text": page.get("text") or _html_to_text(body or entry.get("summary", "")),
        "url": key if link else None,
        "outlet": outlet or page.get("outlet"),
        "published": date(*parsed[:3]) if parsed else page.get("published"),
        "authors": [a.get("name") for a in entry.get("authors", []) if a.get("name")]
        or page.get("authors") or [],
    }
    where = f"{link or key} (from {feed_url})"
    try:
        article = article_from_record(record, source=where)
    except ValueError as exc:
        seen.skipped.append(Skip(source=where, reason=str(exc)))
        seen.records.append(ItemRecord(feed_url, key, entry_hash))
        return
    digest = text_hash(article)
    seen.candidates.append(Candidate(
        article, digest, ItemRecord(feed_url, key, entry_hash, digest, article.id, complete)
    ))


def _page(link: str, fetcher: Fetcher) -> tuple[dict[str, Any], str | None, bool]:
    """The main text and metadata of an entry's page (trafilatura); else why there are none,
    and whether to try again when the feed next changes."""
    if not fetcher.allowed(link):
        return {}, "disallowed by robots.txt", False
    try:
        got = fetcher.get(link)
    except FetchError as exc:
        return {}, f"failed ({exc})", True
    import trafilatura

    doc: Any = trafilatura.bare_extraction(
        got.body, url=got.url, with_metadata=True, include_comments=False
    )
    if doc is None or not (doc.text or "").strip():
        return {}, "with no article text trafilatura can find", False
    text, title = doc.text.strip(), (doc.title or "").strip()
    first, _, rest = text.partition("\n")
    if title and first.strip() == title:
        text = rest.strip()
    return {
        "title": title or None,
        "text": text,
        "outlet": doc.sitename or doc.hostname,
        "published": doc.date,
        "authors": doc.author or [],  # "A; B": article_from_record splits it
    }, None, False


# --- folders ------------------------------------------------------------------------------


def poll_folder(source: Source, state: FeedState, book: FeedBook) -> Seen:
    """Read the files of a folder (or one file) that are new or changed since last seen."""
    root = Path(source.key)
    if not root.exists():
        raise SourceError(f"{root} no longer exists; restore it or remove its line from the list")
    files = {str(p): _signature(p) for p in _files(root)}
    state.http_status, state.message = None, None
    listing = _digest(sorted(files.items()))
    if listing == state.body_hash:
        state.status = "not modified"
        return Seen()
    state.body_hash = listing
    known = book.known(source.key, files)
    seen = Seen(listed=list(files))
    for path, signature in files.items():
        if known.get(path) == (signature, True):
            continue
        record = ItemRecord(source.key, path, signature)
        articles: list[Article] = []
        for item in read_file(Path(path)):
            if isinstance(item, Skip):
                seen.skipped.append(item)
            else:
                articles.append(item)
        if not articles:
            seen.records.append(record)
        for n, article in enumerate(articles, start=1):
            last = n == len(articles)
            seen.candidates.append(Candidate(article, None, record if last else None))
    state.status = "changed" if seen.candidates or seen.skipped else "unchanged"
    return seen


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return [
        p for p in sorted(root.rglob("*"))
        if p.suffix.lower() in SUPPORTED and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]


def _signature(path: Path) -> str:
    stat = os.stat(path)
    return f"{stat.st_mtime_ns}:{stat.st_size}"
