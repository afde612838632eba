"""One record in the corpus format (see ../shared/data/README.md) made into a valid ``Article``.

``record_item(record, source=...)`` returns the Article, or a ``Skip`` naming the field and what
to do; it never raises, whatever the record holds.  ``article_from_record`` is the same check
raising ValueError.  Every string must be valid Unicode (no unpaired surrogate), the
text at most MAX_TEXT_MB million characters, and ``published`` a full calendar date on which an
article could have appeared (``parse_date``).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from index.errors import unexpected
from index.models import Article, Skip

RECORD_FIELDS = {"id", "title", "text", "url", "outlet", "published", "authors"}
MAX_TEXT_MB = 5
"""Longest article text, in millions of characters; a longer one is skipped with this reason.
The longest real news articles are well under 1; a longer text is a book or a data dump, and
splitting it into sentences would take minutes."""
EARLIEST_PUBLISHED = date(1600, 1, 1)
"""No article is dated before this (the first printed newspapers); earlier is a wrong year."""


Item = Article | Skip


class BadRecord(ValueError):
    """A record that cannot become an article; the message names the field."""


def load_json(data: str | bytes) -> Any:
    """Parse a JSON document of one record or a list of records.

    Raises json.JSONDecodeError for a syntax error, and BadRecord for a document the parser
    cannot hold (nested past the interpreter's recursion limit, a number of more than 4,300
    digits).  In a list, such an element is replaced by its BadRecord and the others are
    parsed, so one of them does not cost the rest (``record_item`` makes it a Skip).
    """
    text = data if isinstance(data, str) else data.decode(json.detect_encoding(data))
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as exc:
        if not text.lstrip().startswith("["):
            raise _unparsable(exc) from None
    return _elements(text)


def _unparsable(exc: Exception) -> BadRecord:
    if isinstance(exc, RecursionError):
        return BadRecord(
            "JSON nested too deeply to read (hundreds of levels of [ or {); an article record "
            "is one object of fields"
        )
    return BadRecord(f"JSON cannot be read: {str(exc).split(';')[0]}; write such a value as a string")


_SPACE = re.compile(r"[ \t\n\r]*")


def _elements(text: str) -> list[Any]:
    """A top-level JSON list parsed element by element; an unparsable element is skipped over
    (without recursion) and stands as its BadRecord."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    at = _SPACE.match(text, text.index("[") + 1).end()  # type: ignore[union-attr]
    while text[at : at + 1] != "]":
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError) as exc:
            value, at = _unparsable(exc), _value_end(text, at)
        values.append(value)
        at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
        if text[at : at + 1] == ",":
            at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
        elif text[at : at + 1] != "]":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
    if text[at + 1 :].strip():
        raise json.JSONDecodeError("Extra data", text, at + 1)
    return values


def _value_end(text: str, at: int) -> int:
    """Offset just past the JSON value starting at ``at``, found by counting brackets."""
    depth, i = 0, at
    while i < len(text):
        char = text[i]
        if char == '"':
            i = _STRING_END.match(text, i).end()  # type: ignore[union-attr]
            if depth == 0:
                return i
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth <= 0:
                return i + 1 if depth == 0 else i
        elif depth == 0 and char in ", \t\n\r":
            return i
        i += 1
    raise json.JSONDecodeError("Unterminated value", text, at)


_STRING_END = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)


def record_item(record: Any, *, source: str) -> Item:
    """``article_from_record``, with every failure, expected or not, turned into a Skip
    (a BadRecord that ``load_json`` left in a record's place included)."""
    if isinstance(record, BadRecord):
        return Skip(source=source, reason=str(record))
    try:
        return article_from_record(record, source=source)
    except BadRecord as exc:
        return Skip(source=source, reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - one record must never stop the batch
        return Skip(source=source, reason=unexpected(exc, "while reading this record"))


def article_from_record(
    record: Any, *, source: str | None = None, id_fallback: str | None = None
) -> Article:
    """Validate one corpus-format record (see ../shared/data/README.md) into an Article.

    Raises ValueError naming the field when the record cannot be used.
    """
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object with a 'text' field, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRecord("record has no text: field 'text' must be a non-empty string")
    _check_text(text, "text")
    title = _optional_str(record, "title")
    if not title:
        title = text.strip().split("\n", 1)[0][:120]
    url = _optional_str(record, "url")
    outlet = _optional_str(record, "outlet") or _outlet_from_url(url)
    authors = record.get("authors") or []
    if isinstance(authors, str):
        authors = [a.strip() for a in re.split(r";|\band\b|,", _check_text(authors, "authors"))
                   if a.strip()]
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise BadRecord("field 'authors' must be a list of names")
    for name in authors:
        _check_text(name, "authors")
    article_id = _optional_str(record, "id") or id_fallback or derive_id(url, title, text)
    if "\n" in article_id or len(article_id) > 256:
        raise BadRecord("field 'id' must be one line of at most 256 characters")
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


def _check_text(value: str, field: str) -> str:
    """The value, if it is valid Unicode (storable) and, for the article text, not over
    MAX_TEXT_MB; else BadRecord naming the field and the problem."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRecord(
            f"field {field!r} holds an unpaired surrogate {value[exc.start]!r} at character "
            f"{exc.start}, which is not valid Unicode; fix the \\u escape in the source "
            "(\\ud800-\\udfff only come in pairs)"
        ) from None
    if field == "text" and len(value) > MAX_TEXT_MB * 1_000_000:
        raise BadRecord(
            f"field 'text' is {len(value) / 1e6:.1f} million characters, over the "
            f"{MAX_TEXT_MB} million an article may have; split it into articles"
        )
    return value


def _optional_str(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and field == "id":
        try:
            return str(value)
        except ValueError:  # an integer of thousands of digits
            raise BadRecord("field 'id' must be one line of at most 256 characters") from None
    if not isinstance(value, str):
        raise BadRecord(f"field {field!r} must be a string, got {type(value).__name__}")
    return _check_text(value, field).strip() or None


_STRICT_DATES = {
    # Absolute dates only, all three parts: never a day counted from today ("yesterday",
    # "next Friday") and never a part filled in from today ("October 21", "Oct 2015").
    "PARSERS": ["custom-formats", "absolute-time"],
    "REQUIRE_PARTS": ["day", "month", "year"],
    "RETURN_AS_TIMEZONE_AWARE": False,
}
DATE_HINT = "give the day the article was published, like 2015-10-21, or null"


def parse_date(value: Any) -> date | None:
    """Read a publication date: ISO first, then any full, absolute date dateparser understands
    ("21 Oct 2015", "21 octobre 2015"); None if absent.

    Raises ValueError naming the field when a value is present but is not a date, is relative
    to the day it is read ("yesterday"), lacks a part ("October 2015"), or is impossible for a
    publication (before 1600, or after the day after tomorrow).
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _plausible(value.date(), value)
    if isinstance(value, date):
        return _plausible(value, value)
    if not isinstance(value, str):
        raise BadRecord(
            f"field 'published': cannot read {value!r} as a date (use ISO like 2015-10-21, or null)"
        )
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d\d-\d\d(?:[T ].*)?", text):
        try:
            day = date.fromisoformat(text[:10])
        except ValueError as exc:
            raise BadRecord(
                f"field 'published': {value!r} is not a day of the calendar ({exc}); {DATE_HINT}"
            ) from None
        return _plausible(day, value)
    import dateparser

    parsed = dateparser.parse(text, settings=_STRICT_DATES)  # type: ignore[arg-type]
    if parsed is not None:
        return _plausible(parsed.date(), value)
    if text.isdigit():
        problem = "is a bare number, not a date"
    elif dateparser.parse(text) is None:
        problem = "cannot be read as a date"
    elif re.search(r"\b\d{4}\b", text):
        problem = "is not a full date (a day, a month and a year are all needed)"
    else:
        problem = "is relative to the day it is read, so it would date the article wrongly"
    raise BadRecord(f"field 'published': {value!r} {problem}; {DATE_HINT}")


def _plausible(day: date, value: Any) -> date:
    """The day, if an article could have been published on it."""
    latest = date.today() + timedelta(days=2)  # a publisher's time zone may be a day ahead
    if day < EARLIEST_PUBLISHED:
        raise BadRecord(
            f"field 'published': {str(value)!r} is before {EARLIEST_PUBLISHED.year}, earlier than "
            f"any newspaper; check the year ({DATE_HINT})"
        )
    if day > latest:
        raise BadRecord(
            f"field 'published': {str(value)!r} is in the future (today is "
            f"{date.today().isoformat()}); {DATE_HINT}"
        )
    return day


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
