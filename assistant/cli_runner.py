"""How a command-line face runs: newsdesk errors become a message and a hint, never a traceback.

Every command-line entry point (``newsdesk``, ``python -m evals``) starts its typer app through
``run(app)``, so all of them report errors the same way.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from assistant.errors import NewsdeskError

err = Console(stderr=True, soft_wrap=True)


def run(app: typer.Typer) -> None:
    """Run ``app``; exit with a ``NewsdeskError``'s code after printing its message and hint.

    Ctrl-C prints "interrupted" and exits with code 130.  Other exceptions propagate.
    """
    try:
        app()
    except NewsdeskError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}")
        if exc.hint:
            err.print(f"[dim]hint:[/] {escape(exc.hint)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
