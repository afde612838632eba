"""The ``eval`` command: a thin face over ``evals.run_eval`` with a progress bar.

``eval_command`` is the command itself: ``newsdesk eval`` mounts it, and ``main()`` runs it on
its own as ``python -m evals``, with the same options and the same error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assistant.cli_runner import DataDir, run
from evals.metrics import EVAL_TOP_K

if TYPE_CHECKING:  # the harness loads pydantic models: `newsdesk --help` needs none of it
    from evals.harness import EvalRun, Event
    from evals.harness import Progress as ProgressCallback

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

def _split(value: str, option: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise typer.BadParameter("give at least one value", param_hint=option)
    return items


def eval_command(
    questions: Annotated[
        Path, typer.Argument(help="Question set, JSONL (e.g. evals/questions.jsonl).")
    ],
    corpus: Annotated[
        Path | None,
        typer.Option(help="Articles to ingest first (idempotent: a second run reuses the index)."),
    ] = None,
    data_dir: DataDir = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Output folder (default: evals/runs/<timestamp>).", show_default=False
        ),
    ] = None,
    retriever: Annotated[
        str, typer.Option(help="Retrievers to compare, comma-separated: dense,bm25,hybrid.")
    ] = "hybrid",
    llm: Annotated[
        str,
        typer.Option(
            help="Answer modes, comma-separated: extractive, openai:MODEL, openai-compatible:MODEL, "
            "local:PATH.gguf."
        ),
    ] = "extractive",
    compare: Annotated[
        Path | None, typer.Option(help="An earlier run's folder: adds a Δ column to the report.")
    ] = None,
    no_as_of: Annotated[
        bool, typer.Option("--no-as-of", help="Ignore each question's as_of date.")
    ] = False,
    top_k: Annotated[int, typer.Option(help="Chunks retrieved per question.")] = EVAL_TOP_K,
) -> None:
    """Evaluate newsdesk on a question set: retrieval, answers, refusals, citations, latency."""
    from assistant.retrieve import RETRIEVERS
    from assistant.settings import get_settings
    from evals.harness import configs, default_out_dir, run_eval

    retrievers = _split(retriever, "--retriever")
    unknown = [r for r in retrievers if r not in RETRIEVERS]
    if unknown:
        raise typer.BadParameter(
            f"unknown retriever {', '.join(unknown)}; use {', '.join(RETRIEVERS)}",
            param_hint="--retriever",
        )
    chosen = configs(retrievers, _split(llm, "--llm"))

    settings = get_settings(data_dir=data_dir)
    target = out_dir or default_out_dir()
    run = _with_progress(
        lambda progress: run_eval(
            questions,
            corpus=corpus,
            configs=chosen,
            settings=settings,
            out_dir=target,
            compare=compare,
            progress=progress,
            use_as_of=not no_as_of,
            top_k=top_k,
        )
    )
    print_summary(run)
    if run.partial:
        err.print("[yellow]Interrupted.[/] The results so far are written (marked partial).")
        raise typer.Exit(130)


def _with_progress(start: Callable[[ProgressCallback], EvalRun]) -> EvalRun:
    columns = (
        TextColumn("[bold]{task.fields[stage]}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=None, stage="starting")

        def progress(event: Event) -> None:
            if event.kind == "warning":
                bar.console.print(f"[yellow]warning:[/] {escape(event.message)}")
                return
            stage = "ingesting" if event.kind == "ingest" else "evaluating"
            bar.update(
                task,
                total=event.total or None,
                completed=event.done,
                description=escape(event.message),
                stage=stage,
            )

        return start(progress)


def print_summary(run: EvalRun) -> None:
    """The headline metrics as a table, then where the full report is."""
    from evals.report import METRICS, fmt_value

    table_data = run.summary["metrics"]
    names = list(table_data)
    table = Table("metric", *names)
    shown = {
        "questions",
        "hit@1",
        "hit@5",
        "mrr@10",
        "answer_accuracy",
        "refusal_accuracy",
        "false_refusal_rate",
        "citation_validity",
        "citation_precision",
        "citation_recall",
        "total_p50_ms",
        "total_p95_ms",
        "errors",
    }
    for key, label, fmt in METRICS:
        if key in shown:
            table.add_row(label, *(fmt_value(table_data[n].get(key), fmt) for n in names))
    out.print(table)
    if run.warnings:
        out.print(f"[yellow]{len(run.warnings)} warnings[/] (listed in the report)")
    out.print(f"report: {escape(str(run.report_path))}")


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(eval_command)


def main() -> None:
    """Run the command on its own, turning newsdesk errors into clean messages."""
    run(app)
