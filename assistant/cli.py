"""The `newsdesk` command: a thin face over the Python API.

Every command builds settings from its options, calls the library, and prints the result.
Library errors (``NewsdeskError``) become a one-line message and a hint; no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli_runner import DataDir, json_line, run, safe, with_progress
from assistant.cli_watch import watch_command
from evals.cli import eval_command

if TYPE_CHECKING:  # heavy at run time; the commands import what they use
    from assistant.retrieve import Filters
    from assistant.settings import Settings

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


Outlets = Annotated[
    list[str] | None, typer.Option("--outlet", help="Only this outlet (repeatable).")
]
Since = Annotated[str | None, typer.Option(help="Only articles published on/after YYYY-MM-DD.")]
Until = Annotated[str | None, typer.Option(help="Only articles published on/before YYYY-MM-DD.")]
AsOf = Annotated[
    str | None, typer.Option("--as-of", help="As of YYYY-MM-DD: later articles are not used.")
]
Llm = Annotated[
    str | None,
    typer.Option(
        help="extractive, openai:MODEL, openai-compatible:MODEL or local:PATH.gguf "
        "(default: NEWSDESK_LLM, else extractive)."
    ),
]


def get_settings(**overrides: Any) -> Settings:
    """The settings for a command (imported here: ``newsdesk --help`` needs none)."""
    from assistant.settings import get_settings as from_environment

    return from_environment(**overrides)


def _settings(data_dir: Path | None) -> Settings:
    return get_settings(data_dir=data_dir)


def _ready_model(settings: Settings) -> None:
    """Export the bundled embedding model now, saying so, if this machine has no export yet."""
    if not settings.index.embedding.startswith("local:"):
        return
    from index.bundled_model import is_exported
    from index.embeddings import get_embedder

    if not is_exported(settings.index.model_cache_dir):
        err.print("preparing the bundled embedding model: a one-time check and ONNX export "
                  f"into {settings.index.model_cache_dir} (about 10-30 s)")
        get_embedder(settings).bundled  # noqa: B018 - the export happens here


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of articles.")],
    data_dir: DataDir = None,
) -> None:
    """Index articles: .txt/.md, .html, .json/.jsonl (corpus format) and RSS/Atom feeds."""
    from assistant.library import Library

    settings = _settings(data_dir)
    _ready_model(settings)
    library = Library(settings)
    report = _with_progress(lambda progress: library.ingest_paths(paths, progress=progress))
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
    return with_progress("ingesting", run, lambda report: (
        len(report.added) + len(report.updated) + len(report.unchanged),
        (f"added {len(report.added)} · updated {len(report.updated)} · "
        f"unchanged {len(report.unchanged)} · skipped {len(report.skipped)}"),
    ))


def _print_report(report: Any) -> None:
    out.print(
        f"[green]added {len(report.added)}[/], updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)}, removed {len(report.removed)}, "
        f"skipped {len(report.skipped)} "
        f"({report.chunks_written} chunks written in {report.seconds:.1f}s)"
    )
    for skip in report.skipped:
        colour = "red" if skip.error else "yellow"
        out.print(f"  [{colour}]skipped[/] {safe(skip.source)}: {safe(skip.reason)}")


@app.command("list")
def list_articles(
    data_dir: DataDir = None,
    outlet: Annotated[str | None, typer.Option(help="Only this outlet.")] = None,
    search: Annotated[str | None, typer.Option(help="Only titles containing this.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0: all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List indexed articles, newest first."""
    from assistant.library import Library

    page = Library(_settings(data_dir)).list_articles(
        limit=limit or None, outlet=outlet, search=search
    )
    if as_json:
        for article in page.articles:
            print(json_line(article.model_dump_json(exclude={"text"})))
        return
    table = Table("id", "published", "outlet", "title")
    for article in page.articles:
        table.add_row(
            safe(article.id),
            article.published.isoformat() if article.published else "?",
            safe(article.outlet or ""),
            safe(article.title),
        )
    out.print(table)
    out.print(f"{len(page.articles)} of {page.total} articles")


@app.command()
def remove(
    ids: Annotated[list[str], typer.Argument(help="Article ids, as `newsdesk list` shows them.")],
    data_dir: DataDir = None,
) -> None:
    """Remove articles and all their chunks from the index."""
    from assistant.library import Library

    removed = Library(_settings(data_dir)).remove_many(ids)
    for article_id in ids:
        if article_id in removed:
            out.print(f"removed {safe(article_id)}")
        else:
            err.print(f"[red]not indexed:[/] {safe(article_id)} (`newsdesk list` shows the ids)")
    if len(removed) < len(set(ids)):
        raise typer.Exit(1)


@app.command()
def stats(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what is indexed: counts, date range, outlets."""
    from assistant.library import Library

    info = Library(_settings(data_dir)).stats()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "outlets":
            value = ", ".join(f"{k} ({n})" for k, n in value.items()) or "-"
        out.print(f"[bold]{key}[/]: {safe(str(value))}")


@app.command()
def optimize(data_dir: DataDir = None) -> None:
    """Lay the index out for reading: a large archive built batch by batch reads faster from a
    cold disk afterwards.  Needs free space for two copies of the catalog; other processes
    go on reading meanwhile, and wait to write."""
    from assistant.library import Library

    err.print("[dim]optimizing the index: a minute or more per GB of catalog …[/]")
    report = Library(_settings(data_dir)).optimize()
    before, after = report["catalog_bytes_before"], report["catalog_bytes_after"]
    sizes = f" ({_size(before)} -> {_size(after)})" if before is not None else ""
    out.print(f"[green]optimized[/] in {report['seconds']}s: catalog {safe(report['catalog'])}"
              f"{sizes}; scan table {report['scan_table']}")


def _size(n: int) -> str:
    """Bytes as MB, or GB from a gigabyte on."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _filters(
    outlets: list[str] | None, since: str | None, until: str | None, as_of: str | None
) -> Filters:
    """The filter options as ``Filters``; a bad date or range raises InputError naming the option."""
    from assistant.filters import make_filters

    return make_filters(
        outlets=outlets, since=since, until=until, as_of=as_of,
        labels={"outlets": "--outlet", "since": "--since", "until": "--until", "as_of": "--as-of"},
    )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    data_dir: DataDir = None,
    outlet: Outlets = None,
    since: Since = None,
    until: Until = None,
    as_of: AsOf = None,
    retriever: Annotated[
        str | None, typer.Option(help="hybrid (default), dense or bm25.")
    ] = None,
    llm: Llm = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON.")] = False,
    stream: Annotated[bool, typer.Option(help="Print the answer as it is written.")] = True,
) -> None:
    """Answer a question from the indexed articles, citing the sentence behind every claim."""
    from assistant.answer import Assistant

    filters = _filters(outlet, since, until, as_of)
    settings = get_settings(data_dir=data_dir, llm=llm, retriever=retriever)
    _ready_model(settings)
    assistant = Assistant(settings)
    if as_json:
        print(json_line(assistant.ask(question, filters).model_dump_json(indent=2)))
        return
    answer = None
    live = stream and out.is_terminal
    draft = ""  # what was shown as it was written, before the citation check
    for event in assistant.stream(question, filters):
        if event.type == "delta" and live:
            draft += event.text or ""
            out.print(safe(event.text or "", multiline=True), end="")
        elif event.type == "reset" and live:
            draft = ""
            out.print("\n[yellow](the language model failed; answering extractively)[/]")
        elif event.type == "answer":
            answer = event.answer
    assert answer is not None
    checked = draft.strip() == answer.text
    if live:
        out.print()
        if not checked:
            out.print("[yellow](checked: sentences without a supporting citation are removed; "
                      "the answer is:)[/]")
    print_answer(answer, text=not live or not checked)


def print_answer(answer: Any, *, text: bool = True) -> None:
    """The answer, how it was made, then each citation with its quoted span, outlet and date."""
    if answer.notice:
        out.print(f"[dim]{safe(answer.notice)}[/]")
    short = answer.short_answer
    if text:
        if short:  # the answer in a few words, then the sentence that says it
            out.print(f"[bold]{safe(short.text)}[/] [dim][{short.number}][/]")
        out.print(safe(answer.text, multiline=True))
    elif short:  # the sentence was streamed already; the short answer is known at the end
        out.print(f"Short answer: [bold]{safe(short.text)}[/] [dim][{short.number}][/]")
    for d in answer.dropped:
        out.print(f"[yellow]removed:[/] {safe(d.text)} [dim]({safe(d.reason)})[/]")
    if answer.refused:
        return
    out.print()
    for c in answer.citations:
        mark = "" if c.supported else " [yellow](weak support)[/]"
        day = c.published.isoformat() if c.published else "date unknown"
        out.print(
            f"[bold][{c.number}][/] {safe(c.title)} — {safe(c.outlet or 'unknown outlet')}, "
            f"{day}{mark}\n    “{safe(c.quote)}”\n    [dim]{safe(c.article_id)} "
            f"chars {c.start}–{c.end}[/]"
        )
    for s in answer.unsupported:
        out.print(f"[yellow]unsupported:[/] {safe(s.text)}")


@app.command()
def timeline(
    query: Annotated[str, typer.Argument(help="What the timeline is about, in quotes.")],
    data_dir: DataDir = None,
    outlet: Outlets = None,
    since: Since = None,
    until: Until = None,
    as_of: AsOf = None,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 15,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Timeline as JSON.")] = False,
) -> None:
    """The dated events relevant to a query, in order, each with its cited sentence(s)."""
    from assistant.answer import Assistant

    filters = _filters(outlet, since, until, as_of)
    result = Assistant(_settings(data_dir)).timeline(query, filters, limit=limit)
    if as_json:
        print(json_line(result.model_dump_json(indent=2)))
        return
    if not result.events:
        out.print("No dated events found for this query.")
    for event in result.events:
        mark = " [dim](inferred)[/]" if event.inferred else ""
        out.print(f"[bold]{safe(event.label)}[/]{mark}  {safe(event.text)}")
        for s in event.sources:
            day = s.published.isoformat() if s.published else "date unknown"
            how = f" — {safe(s.how)}" if s.how else ""
            out.print(
                f"    [dim]{safe(s.outlet or 'unknown outlet')}, {day}: “{safe(s.expression)}”"
                f"{how}; {safe(s.article_id)} chars {s.start}–{s.end}[/]"
            )


DEMO_QUESTION = "When did Assad visit Moscow?"


@app.command()
def demo(data_dir: DataDir = None) -> None:
    """Index the bundled sample articles, then answer the question newsdesk was built around."""
    from assistant.answer import Assistant
    from assistant.library import Library

    settings = _settings(data_dir)
    _ready_model(settings)
    assistant = Assistant(settings)
    library = Library(settings, store=assistant.store, embedder=assistant.embedder)
    report = _with_progress(lambda progress: library.ingest_paths([SAMPLES], progress=progress))
    _print_report(report)
    out.print(f"index: {settings.index.data_dir}\n")
    out.print(f"[bold]Q:[/] {DEMO_QUESTION}")
    print_answer(assistant.ask(DEMO_QUESTION))
    out.print(f'\nAsk your own: newsdesk ask "..." (add --data-dir {settings.index.data_dir} if you set one)')


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback needs NEWSDESK_API_KEY.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    data_dir: DataDir = None,
    llm: Llm = None,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Mount the chat UI at /ui.")] = True,
) -> None:
    """Serve the HTTP API (REST and OpenAI-compatible) and the chat UI; docs at /docs."""
    from assistant.api import serve as run_server

    run_server(host, port, get_settings(data_dir=data_dir, llm=llm), mount_ui=ui)


@app.command()
def chat(
    data_dir: DataDir = None,
    host: Annotated[
        str, typer.Option(help="Address to serve on; keep the default to stay on this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 7860,
    llm: Llm = None,
) -> None:
    """Open the chat UI: answers with each cited sentence highlighted in its source."""
    from assistant.long_running import long_running
    from assistant.ui import launch

    settings = get_settings(data_dir=data_dir, llm=llm)
    err.print(f"[dim]loading the index in {settings.index.data_dir} …[/]")
    long_running(settings)
    launch(host, port, settings)


@app.command()
def migrate(
    to: Annotated[
        str, typer.Option("--to", help="The server catalog: postgresql://USER@HOST:PORT/DB.")
    ],
    chroma_host: Annotated[
        str | None,
        typer.Option(help="Chroma server for the vectors (default: NEWSDESK_CHROMA_HOST)."),
    ] = None,
    chroma_port: Annotated[
        int | None, typer.Option(help="Its port (default: NEWSDESK_CHROMA_PORT, else 8000).")
    ] = None,
    from_chroma_host: Annotated[
        str | None,
        typer.Option(help="Where the index's vectors are now, if on a Chroma server "
                     "(default: embedded Chroma in --data-dir)."),
    ] = None,
    from_chroma_port: Annotated[int, typer.Option(help="Its port.")] = 8000,
    data_dir: DataDir = None,
) -> None:
    """Copy the index in --data-dir into server mode (PostgreSQL + a Chroma server), reusing
    its vectors; run again to copy only what changed."""
    from index.migrate import migrate as copy_index

    settings = _settings(data_dir)
    source = settings.index.model_copy(update={
        "catalog_url": None, "chroma_host": from_chroma_host, "chroma_port": from_chroma_port})
    target = settings.updated(catalog_url=to, chroma_host=chroma_host, chroma_port=chroma_port)
    report = copy_index(source, target.index)
    out.print(
        f"[green]copied {len(report.copied)}[/] articles ({report.vectors} vectors), "
        f"unchanged {len(report.unchanged)}, skipped {len(report.skipped)} "
        f"in {report.seconds:.1f}s\n  from {safe(report.source)}\n  to   {safe(report.target)}"
    )
    for skip in report.skipped:
        out.print(f"  [red]skipped[/] {safe(skip.source)}: {safe(skip.reason)}")
    if report.skipped:
        raise typer.Exit(1)


app.command("eval", help="Evaluate question sets: retrieval, answers, citations, cost.")(
    eval_command
)
app.command("watch")(watch_command)


READ_ONLY = frozenset({"ask", "timeline", "list", "stats", "--help"})
"""Commands that only read the index: their process skips collecting its objects at exit."""


def main() -> None:
    """Entry point: run the app, turning newsdesk errors into clean messages."""
    run(app, read_only=READ_ONLY)


if __name__ == "__main__":
    main()
