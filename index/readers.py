"""Read article files of every supported format into ``Article`` records.

``read_paths(paths)`` walks files and folders and yields an ``Article`` for each article found
and a ``Skip`` (file, line, reason) for each input that cannot be used, so one bad file, line or
record never stops a batch: even an unexpected failure while reading one becomes that input's
Skip.  Supported: .txt/.md (first line is the headline, optional YAML front matter), .html (main
text via trafilatura), .json/.jsonl (the corpus format), RSS/Atom feeds (feedparser).  Which
paths are read, and how bytes become text, is ``index.files``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from index.errors import unexpected
from index.files import Unreadable, check_text, decode, display, marked_encoding, read_regular, walk
from index.models import Article, Skip
from index.records import (
    RECORD_FIELDS,
    BadRecord,
    article_from_record,
    derive_id,
    load_json,
    parse_date,
    record_item,
)

__all__ = [
    "RECORD_FIELDS",
    "SUPPORTED",
    "SUPPORTED_HINT",
    "article_from_record",
    "derive_id",
    "parse_date",
    "read_file",
    "read_paths",
    "record_item",
]

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
FEED_SUFFIXES = {".rss", ".atom", ".xml"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES | FEED_SUFFIXES
SUPPORTED_HINT = "newsdesk reads .txt, .md, .html, .json, .jsonl and RSS/Atom (.rss, .atom, .xml)"

Item = Article | Skip


def read_paths(paths: Iterable[str | Path]) -> Iterator[Item]:
    """Yield every article (or skip) found under the given files and folders, in a stable order.

    Files are named as given (a symbolic link by its own name, made absolute); anything that is
    not a regular file or folder, such as a named pipe or a broken link, is a Skip.
    """
    for found in walk(paths, SUPPORTED, SUPPORTED_HINT):
        if isinstance(found, Skip):
            yield found
        else:
            yield from read_file(found)


def read_file(path: Path, *, source: str | None = None) -> Iterator[Item]:
    """Yield the articles in one file, or a Skip saying why (part of) it cannot be read.

    ``source`` names the file in the articles and skips (default: the path as given).  An
    unexpected failure while reading is a Skip too; the articles read before it are kept.
    """
    source = source or display(path)
    try:
        yield from _read_file(path, source)
    except Exception as exc:  # noqa: BLE001 - one file must never stop the batch
        yield Skip(source=source, reason=unexpected(exc, "while reading this file"))


def _read_file(path: Path, source: str) -> Iterator[Item]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        yield Skip(source=source, reason=f"unsupported file type {suffix!r}; {SUPPORTED_HINT}")
        return
    try:
        data = read_regular(path)
        if not data.strip():
            raise Unreadable("file is empty")
        check_text(data, SUPPORTED_HINT)
        if suffix in FEED_SUFFIXES:  # feedparser reads the XML declaration and byte-order marks
            yield from _feed_articles(source, data)
            return
        if suffix in HTML_SUFFIXES and not marked_encoding(data):  # <meta charset> decides
            yield from _html_article(source, data)
            return
        text = decode(data)
        if not text.strip():
            raise Unreadable("file is empty")
    except Unreadable as exc:
        yield Skip(source=source, reason=exc.reason)
        return
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if suffix in HTML_SUFFIXES:
        yield from _html_article(source, text)
    elif suffix in TEXT_SUFFIXES:
        yield _text_article(source, text)
    elif suffix in JSONL_SUFFIXES:
        yield from _jsonl_articles(source, text)
    else:
        yield from _json_articles(source, text)


# --- plain text and markdown -------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
TEXT_LAYOUT = "a .txt/.md article is its headline on the first line and its text on the lines below"


def _text_article(source: str, text: str) -> Item:
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        import yaml

        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            return Skip(source=source, reason=f"front matter is not valid YAML: {exc}")
        except RecursionError:
            return Skip(source=source, reason="front matter is nested too deeply to be fields")
        if not isinstance(loaded, dict):
            return Skip(source=source, reason="front matter must be a YAML mapping of fields")
        meta = loaded
        text = text[match.end():]
    body = text.strip()
    if "title" not in meta:
        head, _, rest = body.partition("\n")
        meta["title"] = head.strip().lstrip("#").strip()
        body = rest.strip()
        if not body:
            return Skip(source=source, reason=f"only a headline, no article text: {TEXT_LAYOUT}")
    elif not body:
        return Skip(
            source=source,
            reason="no article text after the front matter: put the text below the closing ---",
        )
    meta["text"] = body
    return record_item(meta, source=source)


# --- JSON and JSON Lines ------------------------------------------------------------------


def _jsonl_articles(source: str, text: str) -> Iterator[Item]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = load_json(line)
        except json.JSONDecodeError as exc:
            yield Skip(source=where, reason=f"malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        except BadRecord as exc:
            yield Skip(source=where, reason=str(exc))
            continue
        yield record_item(record, source=where)


def _json_articles(source: str, text: str) -> Iterator[Item]:
    try:
        loaded = load_json(text)
    except json.JSONDecodeError as exc:
        yield Skip(
            source=f"{source}:{exc.lineno}",
            reason=f"malformed JSON ({exc.msg} at column {exc.colno}); "
            "a file with one article per line should be named .jsonl",
        )
        return
    except BadRecord as exc:
        yield Skip(source=source, reason=str(exc))
        return
    records = loaded if isinstance(loaded, list) else [loaded]
    for number, record in enumerate(records, start=1):
        where = f"{source}[{number}]" if isinstance(loaded, list) else source
        yield record_item(record, source=where)


# --- HTML pages ---------------------------------------------------------------------------


def _html_article(source: str, data: bytes | str) -> Iterator[Item]:
    import trafilatura

    doc: Any = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False)
    if doc is None or not (doc.text or "").strip():
        yield Skip(source=source, reason="no article text found in this HTML page")
        return
    text = doc.text.strip()
    title = (doc.title or "").strip()
    first, _, rest = text.partition("\n")
    if title and first.strip() == title:
        text = rest.strip()
    elif not title:
        title, text = first.strip(), rest.strip()
    record = {
        "title": title,
        "text": text,
        "url": doc.url,
        "outlet": doc.sitename or doc.hostname,
        "published": doc.date,
        "authors": doc.author or [],
    }
    yield record_item(record, source=source)


# --- RSS and Atom feeds -------------------------------------------------------------------


def _feed_articles(source: str, data: bytes) -> Iterator[Item]:
    import feedparser

    feed = feedparser.parse(data)
    if not feed.get("version") and not feed.entries:
        yield Skip(source=source, reason=f"not an RSS or Atom feed; {SUPPORTED_HINT}")
        return
    outlet = feed.feed.get("title")
    for number, entry in enumerate(feed.entries, start=1):
        where = f"{source}#{number}"
        body = ""
        if entry.get("content"):
            body = entry.content[0].get("value", "")
        body = body or entry.get("summary", "")
        parsed = entry.get("published_parsed") or entry.get("updated_parsed")
        record = {
            "id": entry.get("id") if entry.get("id") != entry.get("link") else None,
            "title": entry.get("title"),
            "text": _html_to_text(body),
            "url": entry.get("link"),
            "outlet": outlet,
            "published": date(*parsed[:3]) if parsed else None,
            "authors": [a.get("name") for a in entry.get("authors", []) if a.get("name")],
        }
        yield record_item(record, source=where)


def _html_to_text(fragment: str) -> str:
    """Plain text of a feed entry's HTML, one paragraph per block element."""
    if "<" not in fragment:
        return fragment.strip()
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (ValueError, lxml.etree.ParserError):
        return re.sub(r"<[^>]+>", " ", fragment).strip()
    for block in root.iter("p", "br", "div", "li", "h1", "h2", "h3", "h4", "blockquote"):
        block.tail = "\n\n" + (block.tail or "")
    text = root.text_content()
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", text)).strip()
