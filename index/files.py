"""Files on disk, before any format is parsed: which paths to read, their bytes, their text.

``walk(paths)`` turns the files and folders given to ``newsdesk ingest`` into the regular files
to read, in a stable order, and a ``Skip`` for everything else, each named as the user named it
(a symbolic link by its own name, never its target): missing paths, named pipes, sockets and
devices, broken links, link loops.  ``read_regular(path)`` reads one regular file and never
blocks (a named pipe is refused before it is opened).  ``decode(data)`` reads UTF-8, or UTF-16
and UTF-32 that start with a byte-order mark, and says which encoding a file seems to be in when
it cannot.  Failures are ``Unreadable`` with a reason a user can act on.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from index.models import Skip


class Unreadable(Exception):
    """A path or file that cannot be read; ``reason`` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def display(path: str | Path) -> str:
    """The path as text that can always be printed and stored: a file name that is not valid
    UTF-8 keeps its undecodable bytes as backslash escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def absolute(path: Path) -> Path:
    """The path made absolute without resolving symbolic links, so a link keeps its own name."""
    return Path(os.path.abspath(path))


def walk(paths: Iterable[str | Path], suffixes: set[str], hint: str) -> Iterator[Path | Skip]:
    """Every regular file to read under these files and folders, in a stable order, and a Skip
    for each path that cannot be read as one.

    Inside folders, hidden names (a leading dot) are passed over silently, a file whose suffix
    is not in ``suffixes`` is a benign skip (its reason ends with ``hint``), and so is a named
    pipe, socket or device; a broken link, a link loop or an unreadable entry is an error.
    Whatever is named on the command line and is not a file or folder is an error.
    """
    seen: dict[tuple[int, int], str] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            kind = _kind(path)
        except Unreadable as exc:
            yield Skip(source=display(raw), reason=exc.reason)
            continue
        if kind == "folder":
            yield from _walk_folder(absolute(path), seen, (), suffixes, hint)
        elif kind == "file":
            yield absolute(path)
        else:
            yield Skip(source=display(raw), reason=_not_a_file(kind))


def _walk_folder(
    folder: Path,
    seen: dict[tuple[int, int], str],
    parents: tuple[tuple[int, int], ...],
    suffixes: set[str],
    hint: str,
) -> Iterator[Path | Skip]:
    try:
        info = os.stat(folder)
        key = (info.st_dev, info.st_ino)
        if key in parents:
            yield Skip(
                source=display(folder),
                reason="symbolic link loop: this link leads back to a folder that contains it; "
                "not followed again",
            )
            return
        if key in seen:
            yield Skip(
                source=display(folder),
                reason=f"the same folder as {seen[key]}, already read; not read twice",
                error=False,
            )
            return
        seen[key] = display(folder)
        with os.scandir(folder) as listing:
            names = sorted(entry.name for entry in listing)
    except OSError as exc:
        yield Skip(source=display(folder), reason=f"cannot list this folder: {_os_reason(exc)}")
        return
    for name in names:
        if name.startswith("."):
            continue
        path = folder / name
        try:
            kind = _kind(path)
        except Unreadable as exc:
            yield Skip(source=display(path), reason=exc.reason)
            continue
        if kind == "folder":
            yield from _walk_folder(path, seen, (*parents, key), suffixes, hint)
        elif kind != "file":
            yield Skip(source=display(path), reason=_not_a_file(kind), error=False)
        elif path.suffix.lower() in suffixes:
            yield path
        else:
            yield Skip(source=display(path), reason=f"unsupported file type; {hint}", error=False)


_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _kind(path: Path) -> str:
    """'file', 'folder', or what else the path is; raises Unreadable when it cannot be known."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.lexists(path):
            raise Unreadable(
                f"broken symbolic link: its target {display(os.readlink(path))} does not exist; "
                "fix or remove the link"
            ) from None
        raise Unreadable("no such file or folder; check the path") from None
    except OSError as exc:
        raise Unreadable(_os_reason(exc)) from None
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _not_a_file(kind: str) -> str:
    return f"{kind}, not a regular file; newsdesk reads only regular files and folders"


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop: the link leads back to itself; fix or remove it"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; check the file's permissions"
    return f"cannot read: {exc.strerror or exc}"


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file. Raises Unreadable for anything else, without blocking:
    the kind is checked before the file is opened, and again on the open file."""
    kind = _kind(path)
    if kind != "file":
        raise Unreadable("a folder, not a file" if kind == "folder" else _not_a_file(kind))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise Unreadable(_os_reason(exc)) from None
    with open(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was checked
            raise Unreadable(_not_a_file("no longer a regular file"))
        try:
            return file.read()
        except OSError as exc:
            raise Unreadable(_os_reason(exc)) from None


# Longest first: the UTF-32 little-endian mark begins with the UTF-16 one.
_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
]
RESAVE = "re-save the file as UTF-8"


def marked_encoding(data: bytes) -> tuple[str, str] | None:
    """(codec, name) of the byte-order mark the data starts with, if any."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            return codec, name
    return None


def check_text(data: bytes, hint: str = "") -> None:
    """Raise Unreadable if these bytes are not text in any encoding a reader could detect:
    binary data (the reason ends with ``hint``), or UTF-16 without a byte-order mark."""
    if marked_encoding(data) or b"\x00" not in data[:8192]:
        return
    head = data[:8192]
    odd, even = head[1::2].count(0), head[0::2].count(0)
    if max(odd, even) >= len(head) // 4 and min(odd, even) == 0:
        order = "little" if odd else "big"
        raise Unreadable(
            f"looks like UTF-16 ({order}-endian) text without a byte-order mark; {RESAVE} "
            "(or as UTF-16 with a byte-order mark)"
        )
    raise Unreadable("looks like a binary file, not text" + (f"; {hint}" if hint else ""))


def decode(data: bytes) -> str:
    """The text of a file: UTF-8, or UTF-16/UTF-32 when it starts with a byte-order mark.
    Raises Unreadable naming the encoding problem and the offset of the first bad byte."""
    check_text(data)
    codec, name = marked_encoding(data) or ("utf-8", "UTF-8")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        marked = " although it starts with a UTF-16/32 byte-order mark" if name != "UTF-8" else ""
        raise Unreadable(
            f"not valid {name} (bad byte at offset {exc.start}){marked}; {RESAVE}"
        ) from None
