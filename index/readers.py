"""Read article files of every supported format into ``Article`` records.

``read_paths(paths)`` walks files and folders and yields an ``Article`` for each article found
and a ``Skip`` (file, line, reason) for each input that cannot be used, so one bad file never
stops a batch.  Supported: .txt/.md (first line is the headline, optional YAML front matter),
.html (main text via trafilatura), .json/.jsonl (the corpus format), RSS/Atom feeds (feedparser).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from index.models import Article, Skip

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
FEED_SUFFIXES = {".rss", ".atom", ".xml"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES | FEED_SUFFIXES
SUPPORTED_HINT = "newsdesk reads .txt, .md, .html, .json, .jsonl and RSS/Atom (.rss, .atom, .xml)"
RECORD_FIELDS = {"id", "title", "text", "url", "outlet", "published", "authors"}

Item = Article | Skip


class _BadRecord(ValueError):
    """A record that cannot become an article; the message names the field."""


def read_paths(paths: Iterable[str | Path]) -> Iterator[Item]:
    """Yield every article (or skip) found under the given files and folders, in a stable order."""
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            yield Skip(source=str(raw), reason="no such file or folder; check the path")
        elif path.is_dir():
            yield from _read_dir(path.resolve())
        else:
            yield from read_file(path.resolve())


def _read_dir(folder: Path) -> Iterator[Item]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in SUPPORTED:
            yield from read_file(path)
        else:
            yield Skip(source=str(path), reason=f"unsupported file type; {SUPPORTED_HINT}", error=False)


def read_file(path: Path) -> Iterator[Item]:
    """Yield the articles in one file, or a single Skip saying why the file cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        yield Skip(source=str(path), reason=f"unsupported file type {suffix!r}; {SUPPORTED_HINT}")
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield Skip(source=str(path), reason=f"cannot read file: {exc.strerror or exc}")
        return
    if not data.strip():
        yield Skip(source=str(path), reason="file is empty")
        return
    if b"\x00" in data[:8192]:
        yield Skip(source=str(path), reason=f"looks like a binary file, not text; {SUPPORTED_HINT}")
        return
    if suffix in HTML_SUFFIXES:
        yield from _html_article(path, data)
        return
    if suffix in FEED_SUFFIXES:
        yield from _feed_articles(path, data)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield Skip(
            source=str(path),
            reason=f"not valid UTF-8 (bad byte at offset {exc.start}); re-save the file as UTF-8",
        )
        return
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if suffix in TEXT_SUFFIXES:
        yield _text_article(path, text)
    elif suffix in JSONL_SUFFIXES:
        yield from _jsonl_articles(path, text)
    else:
        yield from _json_articles(path, text)


# --- plain text and markdown -------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def _text_article(path: Path, text: str) -> Item:
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        import yaml

        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            return Skip(source=str(path), reason=f"front matter is not valid YAML: {exc}")
        if not isinstance(loaded, dict):
            return Skip(source=str(path), reason="front matter must be a YAML mapping of fields")
        meta = loaded
        text = text[match.end():]
    body = text.strip()
    if "title" not in meta:
        head, _, rest = body.partition("\n")
        meta["title"] = head.strip().lstrip("#").strip()
        body = rest.strip()
    meta["text"] = body
    return _article_or_skip(meta, source=str(path), id_fallback=None)


# --- JSON and JSON Lines ------------------------------------------------------------------


def _jsonl_articles(path: Path, text: str) -> Iterator[Item]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        source = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Skip(source=source, reason=f"malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        yield _article_or_skip(record, source=source, id_fallback=None)


def _json_articles(path: Path, text: str) -> Iterator[Item]:
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Skip(
            source=f"{path}:{exc.lineno}",
            reason=f"malformed JSON ({exc.msg} at column {exc.colno}); "
            "a file with one article per line should be named .jsonl",
        )
        return
    records = loaded if isinstance(loaded, list) else [loaded]
    for number, record in enumerate(records, start=1):
        source = f"{path}[{number}]" if isinstance(loaded, list) else str(path)
        yield _article_or_skip(record, source=source, id_fallback=None)


def _article_or_skip(record: Any, *, source: str, id_fallback: str | None) -> Item:
    try:
        return article_from_record(record, source=source, id_fallback=id_fallback)
    except _BadRecord as exc:
        return Skip(source=source, reason=str(exc))


def article_from_record(
    record: Any, *, source: str | None = None, id_fallback: str | None = None
) -> Article:
    """Validate one corpus-format record (see ../shared/data/README.md) into an Article.

    Raises ValueError naming the field when the record cannot be used.
    """
    if not isinstance(record, dict):
        raise _BadRecord(f"expected a JSON object with a 'text' field, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _BadRecord("record has no text: field 'text' must be a non-empty string")
    title = _optional_str(record, "title")
    if not title:
        title = text.strip().split("\n", 1)[0][:120]
    url = _optional_str(record, "url")
    outlet = _optional_str(record, "outlet") or _outlet_from_url(url)
    authors = record.get("authors") or []
    if isinstance(authors, str):
        authors = [a.strip() for a in re.split(r";|\band\b|,", authors) if a.strip()]
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise _BadRecord("field 'authors' must be a list of names")
    article_id = _optional_str(record, "id") or id_fallback or derive_id(url, title, text)
    if "\n" in article_id or len(article_id) > 256:
        raise _BadRecord("field 'id' must be one line of at most 256 characters")
    return Article(
        id=article_id,
        title=title.strip(),
        text=text,
        outlet=outlet,
        published=parse_date(record.get("published")),
        url=url,
        authors=authors,
        source=source,
    )


def _optional_str(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, (int, float)) and field == "id":
        return str(value)
    if not isinstance(value, str):
        raise _BadRecord(f"field {field!r} must be a string, got {type(value).__name__}")
    return value.strip() or None


def parse_date(value: Any) -> date | None:
    """Read a publication date: ISO first, then any form dateparser understands; None if absent.

    Raises ValueError naming the field when a value is present but unreadable.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            import dateparser

            parsed = dateparser.parse(value, settings={"RETURN_AS_TIMEZONE_AWARE": False})
            if parsed is not None:
                return parsed.date()
    raise _BadRecord(
        f"field 'published': cannot read {value!r} as a date (use ISO like 2015-10-21, or null)"
    )


def derive_id(url: str | None, title: str, text: str) -> str:
    """A stable id for an article that came without one: from its URL, else from its content."""
    if url:
        parts = urlsplit(url.strip())
        key = f"{parts.netloc.lower().removeprefix('www.')}{parts.path.rstrip('/')}"
        if parts.query:
            key += "?" + parts.query
        return "u-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
    return "c-" + hashlib.sha1(f"{title}\n{text}".encode()).hexdigest()[:16]


def _outlet_from_url(url: str | None) -> str | None:
    if not url:
        return None
    host = urlsplit(url).netloc.lower()
    return host.removeprefix("www.") or None


# --- HTML pages ---------------------------------------------------------------------------


def _html_article(path: Path, data: bytes) -> Iterator[Item]:
    import trafilatura

    doc: Any = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False)
    if doc is None or not (doc.text or "").strip():
        yield Skip(source=str(path), reason="no article text found in this HTML page")
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
    yield _article_or_skip(record, source=str(path), id_fallback=None)


# --- RSS and Atom feeds -------------------------------------------------------------------


def _feed_articles(path: Path, data: bytes) -> Iterator[Item]:
    import feedparser

    feed = feedparser.parse(data)
    if not feed.get("version") and not feed.entries:
        yield Skip(source=str(path), reason=f"not an RSS or Atom feed; {SUPPORTED_HINT}")
        return
    outlet = feed.feed.get("title")
    for number, entry in enumerate(feed.entries, start=1):
        source = f"{path}#{number}"
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
        yield _article_or_skip(record, source=source, id_fallback=None)


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
