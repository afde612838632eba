"""The feed list the watcher follows: ``read_feed_list(path)`` -> sources and bad lines.

One http(s) feed URL or folder path per line, ``#`` comments; every bad line comes back as a
``Skip`` naming ``FILE:LINE`` and the fix, and the good lines are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from index.errors import InputError
from index.models import Skip
from index.readers import SUPPORTED, SUPPORTED_HINT

Kind = Literal["feed", "folder"]


@dataclass(frozen=True)
class Source:
    """One line of a feed list: a feed URL or a folder (or file) of articles."""

    key: str  # the URL as written, or the folder's absolute path
    kind: Kind
    line: str = ""  # FILE:LINE it was read from, for messages


_COMMENT = re.compile(r"(^|\s)#.*$")
_HOSTLIKE = re.compile(r"^[\w-]+(\.[\w-]+)+(:\d+)?(/|$)")


def read_feed_list(path: str | Path) -> tuple[list[Source], list[Skip]]:
    """The sources in a feed list and a ``Skip`` (``FILE:LINE``, reason and fix) per bad line.

    Relative folder paths are read from the list's own folder. Raises InputError when the file
    cannot be read or holds no usable line.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(
            f"no feed list at {path}",
            hint="write one http(s) feed URL or folder path per line ('#' starts a comment)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the feed list {path}: {exc}",
                         hint="save it as a UTF-8 text file") from None
    sources: list[Source] = []
    problems: list[Skip] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = _COMMENT.sub("", raw).strip()
        if not entry:
            continue
        where = f"{path}:{number}"
        try:
            source = _parse_line(entry, path.parent, where)
        except ValueError as exc:
            problems.append(Skip(source=where, reason=str(exc)))
            continue
        if source.key in first_line:
            problems.append(Skip(
                source=where,
                reason=f"{source.key} is already on line {first_line[source.key]}; delete one",
                error=False,
            ))
            continue
        first_line[source.key] = number
        sources.append(source)
    if not sources:
        detail = f": {problems[0].source}: {problems[0].reason}" if problems else ""
        raise InputError(
            f"the feed list {path} names no feed or folder{detail}",
            hint="write one http(s) feed URL or folder path per line ('#' starts a comment)",
        )
    return sources, problems


def _parse_line(entry: str, base: Path, where: str) -> Source:
    """One non-comment line as a Source; ValueError saying what is wrong and how to fix it."""
    if "://" in entry:
        parts = urlsplit(entry)
        if parts.scheme.lower() not in {"http", "https"}:
            raise ValueError(
                f"unsupported scheme {parts.scheme!r} in {entry!r}; newsdesk fetches http:// and "
                "https:// feeds (for local files, write the folder's path)"
            )
        if not parts.hostname:
            raise ValueError(f"{entry!r} has no host; write it like https://example.org/feed.xml")
        if re.search(r"\s", entry):
            raise ValueError(
                f"{entry!r} contains a space; write one URL per line, and encode a space in a "
                "URL as %20"
            )
        return Source(entry, "feed", where)
    folder = (base / Path(entry).expanduser()).resolve()
    if folder.is_dir() or (folder.is_file() and folder.suffix.lower() in SUPPORTED):
        return Source(str(folder), "folder", where)
    if folder.is_file():
        raise ValueError(f"{folder} is not a file newsdesk reads; {SUPPORTED_HINT}")
    if _HOSTLIKE.match(entry):
        raise ValueError(f"no folder {folder}; if {entry!r} is a feed, write it as https://{entry}")
    raise ValueError(
        f"no folder {folder}; fix the path (a relative one starts from the list's folder) or "
        "write the feed's full http(s):// URL"
    )
