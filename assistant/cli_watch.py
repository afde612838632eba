"""`newsdesk watch`: follow feeds and folders, showing progress and each feed's status with rich.

A thin face over ``index.watch``: ``run_round`` for ``--once``, ``watch`` for the loop,
``feed_statuses`` for ``--status``.  ``assistant.cli`` mounts ``watch_command`` as ``watch``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli_runner import DataDir, safe, with_progress
from assistant.errors import ConfigError
from assistant.long_running import keep_freed_memory

if TYPE_CHECKING:
    from index.watch import FeedStatus, WatchReport

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

STYLE = {"changed": "green", "error": "red", "disallowed": "yellow", "waiting": "dim"}


def watch_command(
    feeds: Annotated[
        Path | None,
        typer.Argument(
            help="Feed list: one http(s) feed URL or folder per line, '#' comments "
            "(default: NEWSDESK_WATCH_FEEDS).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run one round (the sources that are due), then exit.")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show each source's stored status; poll nothing.")
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between polls of a healthy feed (NEWSDESK_WATCH_INTERVAL)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Follow RSS/Atom feeds and folders: poll on a schedule and index new and edited articles."""
    from assistant.settings import get_settings
    from index.watch import feed_statuses, run_round, watch

    settings = get_settings(data_dir=data_dir, watch_interval=interval)
    if status:
        print_statuses(feed_statuses(settings))
        return
    feeds = feeds or settings.watch.watch_feeds
    if feeds is None:
        raise ConfigError(
            "no feed list to watch",
            hint="give one (`newsdesk watch FEEDS.txt`: one http(s) feed URL or folder per "
            "line) or set NEWSDESK_WATCH_FEEDS",
        )
    if once:
        report = _with_progress(lambda progress: run_round(feeds, config=settings,
                                                           progress=progress))
        print_round(report, every_feed=True)
        if report.problems:
            raise typer.Exit(1)
        return
    keep_freed_memory()  # a long-running process
    err.print(f"[dim]following {safe(str(feeds))} into {settings.index.data_dir}; "
              "Ctrl-C stops after the current batch[/]")
    watch(feeds, config=settings, on_round=lambda report: print_round(report, every_feed=False))


def _with_progress(run: Any) -> Any:
    return with_progress("polling", run, lambda report: (
        report.polled,
        (f"added {len(report.added)} · updated {len(report.updated)} · "
        f"batches {report.batches} · {report.requests} requests"),
    ))


def print_round(report: WatchReport, *, every_feed: bool) -> None:
    """The round's totals, its list problems, and the sources (all, or those with news)."""
    for problem in report.problems:
        err.print(f"[red]bad line[/] {safe(problem.source)}: {safe(problem.reason)}")
    shown = [f for f in report.feeds if every_feed or f.status in {"changed", "error"}]
    if shown:
        print_statuses(shown)
    when = datetime.now().astimezone().strftime("%H:%M:%S")
    out.print(
        f"[bold]{when}[/] polled {report.due} of {len(report.feeds)}: "
        f"[green]added {len(report.added)}[/], updated {len(report.updated)}, "
        f"duplicates {report.duplicates}, not modified {report.count('not modified')}, "
        f"errors {report.count('error')}"
        + (f", forgot {report.forgotten} unlisted" if report.forgotten else "")
        + f" · {report.requests} requests, "
        f"{report.bytes / 1024:.0f} KiB in {report.seconds:.1f}s"
    )
    for skip in report.skipped:
        out.print(f"  [yellow]skipped[/] {safe(skip.source)}: {safe(skip.reason)}")
    if report.interrupted:
        err.print("[yellow]Interrupted.[/] Every article is either fully indexed or absent; "
                  "the next round fetches again whatever was not recorded.")


def print_statuses(statuses: list[FeedStatus]) -> None:
    """One row per feed or folder: status, what its last poll brought, how many entries it is
    remembered with, when it is next due."""
    if not statuses:
        out.print("no feeds polled yet: `newsdesk watch FEEDS.txt --once` polls them")
        return
    table = Table("source", "status", "new", "upd", "dup", "known", "err", "next", "note")
    for s in statuses:
        style = STYLE.get(s.status, "")
        label = s.status + (f" {s.http_status}" if s.http_status and s.status != "waiting" else "")
        table.add_row(
            safe(s.title or s.source) + ("" if not s.title else f"\n[dim]{safe(s.source)}[/]"),
            f"[{style}]{label}[/]" if style else label,
            str(s.added), str(s.updated), str(s.duplicates), str(s.remembered),
            str(s.errors or ""),
            _relative(s.next_poll), safe(s.message or ""),
        )
    out.print(table)


def _relative(when: datetime | None) -> str:
    if when is None:
        return "now"
    seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds <= 0:
        return "due"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"in {seconds / size:.0f}{unit}"
    return f"in {seconds:.0f}s"
