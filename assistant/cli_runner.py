"""How a command-line face runs: newsdesk errors become a message and a hint, never a traceback.

Every command-line entry point (``newsdesk``, ``python -m evals``) starts its typer app through
``run(app)``, so all of them report errors the same way; ``safe`` and ``json_line`` make any
text fit to reach a terminal.
"""

from __future__ import annotations

import gc
import re
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from assistant.errors import NewsdeskError

err = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Index folder (default: NEWSDESK_DATA_DIR, else the per-user data folder).",
        show_default=False,
    ),
]
"""The ``--data-dir`` option every command that opens an index takes."""


def with_progress(
    label: str,
    work: Callable[[Callable[[Any, int], None]], T],
    describe: Callable[[Any], tuple[int, str]],
) -> T:
    """``work(progress)`` under a transient progress bar on stderr titled ``label``.

    ``work`` calls ``progress(report, total)`` as it goes; ``describe(report)`` gives the count
    done so far and the line shown beside the bar.
    """
    columns = (
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(report: Any, total: int) -> None:
            done, description = describe(report)
            bar.update(task, total=total, completed=done, description=description)

        return work(progress)

# Text from articles (titles, outlets, quotes, file names) can hold terminal control sequences:
# ESC/CSI/OSC sequences that recolour, retitle or clear the terminal, BEL, backspaces, and the
# bidirectional overrides that make text read differently from what it is.  They are removed
# before anything reaches the terminal; line breaks and tabs survive only in running text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n]+")


def safe(value: object, *, multiline: bool = False) -> str:
    """``value`` as text fit for the terminal: control characters removed, rich markup escaped,
    and (unless ``multiline``) line breaks and tabs made spaces."""
    text = _CONTROL.sub("", str(value))
    if not multiline:
        text = _LINE_BREAKS.sub(" ", text)
    return escape(text)


def json_line(text: str) -> str:
    """JSON output with the controls JSON leaves raw (DEL, C1, bidi overrides) escaped as
    \\uXXXX: still the same JSON, but inert in a terminal."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def run(app: typer.Typer, *, read_only: Collection[str] = ()) -> None:
    """Run ``app`` as this process's command; exit with a ``NewsdeskError``'s code after
    printing its message and hint.

    Ctrl-C prints "interrupted" and exits with code 130.  Other exceptions propagate.

    When the command (``sys.argv[1]``) is one of ``read_only`` (short, and writing nothing),
    the cyclic garbage collector stays off while it runs, and what it leaves is frozen out of
    the collector before the process exits, so the interpreter's teardown skips collecting it:
    a cold ``newsdesk ask`` spends about 0.1 s of CPU collecting the cycles its imports leave
    (dropped by the exit anyway) and 0.2-0.3 s in the teardown otherwise
    (benchmarks/RESULTS.md).  Memory freed by reference counting is freed as usual; commands
    that write or keep running (``ingest``, ``serve``, ``watch``) keep the collector.
    """
    quick = bool(sys.argv[1:2]) and sys.argv[1] in read_only
    if quick:
        gc.disable()
    try:
        app()
    except NewsdeskError as exc:
        err.print(f"[red]error:[/] {safe(exc.message)}")
        if exc.hint:
            err.print(f"[dim]hint:[/] {safe(exc.hint)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    finally:
        if quick:
            gc.freeze()
