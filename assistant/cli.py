"""The `newsdesk` command: a thin face over the Python API.

Every command builds settings from its options, calls the library, and prints the result.
Library errors (``NewsdeskError``) become a one-line message and a hint; no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant.errors import NewsdeskError
from assistant.settings import Settings, get_settings

app = typer.Typer(
    name="newsdesk",
    help="Ask questions of a pile of news articles; every claim cites its source sentence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

SAMPLES = Path(__file__).resolve().parent.parent / "index" / "samples"

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Index folder (default: NEWSDESK_DATA_DIR, else the per-user data folder).",
        show_default=False,
    ),
]


def _settings(data_dir: Path | None) -> Settings:
    return get_settings(data_dir=data_dir)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of articles.")],
    data_dir: DataDir = None,
) -> None:
    """Index articles: .txt/.md, .html, .json/.jsonl (corpus format) and RSS/Atom feeds."""
    from index import ingest as run_ingest

    settings = _settings(data_dir)
    report = _with_progress(lambda progress: run_ingest(paths, settings=settings, progress=progress))
    _print_report(report)
    if report.interrupted:
        err.print(
            "[yellow]Interrupted.[/] Every article is either fully indexed or absent; "
            "run the same command again to finish."
        )
        raise typer.Exit(130)
    if report.errors:
        raise typer.Exit(1)


def _with_progress(run: Any) -> Any:
    columns = (
        TextColumn("[bold]ingesting[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=None)

        def progress(report: Any, total: int) -> None:
            done = len(report.added) + len(report.updated) + len(report.unchanged)
            bar.update(
                task,
                total=total,
                completed=done,
                description=f"added {len(report.added)} · updated {len(report.updated)} · "
                f"unchanged {len(report.unchanged)} · skipped {len(report.skipped)}",
            )

        return run(progress)


def _print_report(report: Any) -> None:
    out.print(
        f"[green]added {len(report.added)}[/], updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)}, removed {len(report.removed)}, "
        f"skipped {len(report.skipped)} "
        f"({report.chunks_written} chunks written in {report.seconds:.1f}s)"
    )
    for skip in report.skipped:
        colour = "red" if skip.error else "yellow"
        out.print(f"  [{colour}]skipped[/] {escape(skip.source)}: {escape(skip.reason)}")


@app.command("list")
def list_articles(
    data_dir: DataDir = None,
    outlet: Annotated[str | None, typer.Option(help="Only this outlet.")] = None,
    search: Annotated[str | None, typer.Option(help="Only titles containing this.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0: all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List indexed articles, newest first."""
    from index import open_store

    store = open_store(_settings(data_dir))
    rows = store.list_articles(limit=limit or None, outlet=outlet, search=search)
    if as_json:
        for article in rows:
            print(article.model_dump_json(exclude={"text"}))
        return
    table = Table("id", "published", "outlet", "title")
    for article in rows:
        table.add_row(
            escape(article.id),
            article.published.isoformat() if article.published else "?",
            escape(article.outlet or ""),
            escape(article.title),
        )
    out.print(table)
    out.print(f"{len(rows)} of {store.count_articles()} articles")


@app.command()
def remove(
    ids: Annotated[list[str], typer.Argument(help="Article ids, as `newsdesk list` shows them.")],
    data_dir: DataDir = None,
) -> None:
    """Remove articles and all their chunks from the index."""
    from index import open_store

    store = open_store(_settings(data_dir))
    removed = store.remove(ids)
    store.keyword_index()
    for article_id in ids:
        if article_id in removed:
            out.print(f"removed {escape(article_id)}")
        else:
            err.print(f"[red]not indexed:[/] {escape(article_id)} (`newsdesk list` shows the ids)")
    if len(removed) < len(set(ids)):
        raise typer.Exit(1)


@app.command()
def stats(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what is indexed: counts, date range, outlets."""
    from index import open_store

    info = open_store(_settings(data_dir)).stats()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "outlets":
            value = ", ".join(f"{k} ({n})" for k, n in value.items()) or "-"
        out.print(f"[bold]{key}[/]: {escape(str(value))}")


@app.command()
def demo(data_dir: DataDir = None) -> None:
    """Index the bundled sample articles, then answer the question newsdesk was built around."""
    from index import ingest as run_ingest

    settings = _settings(data_dir)
    report = _with_progress(
        lambda progress: run_ingest([SAMPLES], settings=settings, progress=progress)
    )
    _print_report(report)
    out.print(f"index: {settings.data_dir}")


def main() -> None:
    """Entry point: run the app, turning newsdesk errors into clean messages."""
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


if __name__ == "__main__":
    main()
