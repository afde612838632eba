"""Run a question set through newsdesk and score it: ``run_eval(...) -> EvalRun``.

Every question goes through ``Assistant.ask``, the same Python API the CLI, HTTP API and UI
call, once per configuration (retriever × answer mode), on one shared index.  Results are
appended to ``results.jsonl`` as each answer arrives, so Ctrl-C loses nothing that finished;
the summary, report and plots are then written for what finished, marked partial.

Only ``question`` and ``as_of`` reach the system under test: ``answers``, the article ids and
``evidence_text`` are for scoring and for people reading the report.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from assistant.errors import ArticleNotFound, InputError, NewsdeskError, NothingIndexed
from evals import metrics as m
from evals.metrics import EVAL_TOP_K
from evals.questions import Question, load_questions, unknown_ids
from evals.report import write_report

if TYPE_CHECKING:
    from assistant.models import Answer
    from assistant.settings import Settings

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
REPORT = "report.md"


@dataclass(frozen=True)
class Config:
    """One configuration under evaluation: how chunks are retrieved and who writes the answer."""

    retriever: str
    llm: str = "extractive"

    @property
    def name(self) -> str:
        """Column header and key in the summary, e.g. 'hybrid/extractive'."""
        return f"{self.retriever}/{self.llm}"


def configs(retrievers: Iterable[str], llms: Iterable[str] = ("extractive",)) -> list[Config]:
    """Every retriever with every answer mode, in the order given (duplicates dropped)."""
    llm_list = list(dict.fromkeys(llms))
    return list(
        dict.fromkeys(Config(r, llm) for r in dict.fromkeys(retrievers) for llm in llm_list)
    )


@dataclass
class Event:
    """What the harness reports while it runs (for a progress bar and for warnings)."""

    kind: Literal["warning", "ingest", "question"]
    message: str = ""
    done: int = 0
    total: int = 0


Progress = Callable[[Event], None]
"""Called with each event.  It may raise KeyboardInterrupt to stop the run (as Ctrl-C does)."""


@dataclass
class EvalRun:
    """What a run produced: where its files are, the summary, and whether it finished."""

    out_dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    partial: bool = False

    @property
    def results_path(self) -> Path:
        """Per-question results, one JSON object per (question, configuration)."""
        return self.out_dir / RESULTS

    @property
    def summary_path(self) -> Path:
        """The summary as JSON (what --compare reads)."""
        return self.out_dir / SUMMARY

    @property
    def report_path(self) -> Path:
        """The Markdown report."""
        return self.out_dir / REPORT


def default_out_dir(root: str | Path = "evals/runs") -> Path:
    """A fresh folder for a run: ``evals/runs/<timestamp>``."""
    return Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")


def run_eval(
    questions_path: str | Path,
    *,
    corpus: str | Path | None = None,
    configs: Sequence[Config],
    settings: Settings | None = None,
    out_dir: str | Path,
    compare: str | Path | None = None,
    progress: Progress | None = None,
    use_as_of: bool = True,
    top_k: int = EVAL_TOP_K,
) -> EvalRun:
    """Evaluate every configuration on every question and write results, summary, report, plots.

    ``corpus`` is ingested first (idempotent: a second run reuses the index).  Bad question
    lines and unknown article ids become warnings and the run goes on; a missing question or
    corpus file, a bad configuration, an unreadable ``compare`` run or an empty index raise a
    ``NewsdeskError`` before anything is asked.  Ctrl-C (or ``progress`` raising
    KeyboardInterrupt) stops the run and returns it marked partial.
    """
    if settings is None:
        from assistant.settings import get_settings  # here: every `newsdesk` command loads this

        settings = get_settings()
    started = datetime.now()
    emit: Progress = progress or _print_warnings
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        emit(Event("warning", message))

    if not configs:
        raise InputError("no configuration to evaluate", hint="name at least one --retriever")
    questions_set = load_questions(questions_path)
    corpus_path = Path(corpus) if corpus is not None else None
    if corpus_path is not None and not corpus_path.exists():
        raise InputError(
            f"corpus file not found: {corpus_path}",
            hint="give the articles the questions are about (JSONL, a file or a folder)",
        )
    per_config = {c.name: _config_settings(settings, c, top_k) for c in configs}
    previous = _load_previous(compare) if compare is not None else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for problem in questions_set.problems:
        warn(str(problem))
    questions = questions_set.questions

    # here, not at the top: every `newsdesk` command imports this module, few of them evaluate
    from assistant.answer import Assistant
    from index import ingest, open_store
    from index.embeddings import get_embedder

    store, embedder = open_store(settings), get_embedder(settings)
    rows: list[dict[str, Any]] = []
    ingested: dict[str, Any] | None = None
    partial = False
    with (out / RESULTS).open("w", encoding="utf-8") as results:
        try:
            if corpus_path is not None:
                report = ingest(
                    [corpus_path],
                    config=settings,
                    store=store,
                    embedder=embedder,
                    progress=lambda r, total: emit(
                        Event("ingest", "ingesting the corpus", _ingested(r), total)
                    ),
                )
                ingested = {
                    "added": len(report.added),
                    "updated": len(report.updated),
                    "unchanged": len(report.unchanged),
                    "skipped": len(report.skipped),
                    "seconds": round(report.seconds, 1),
                }
                for skip in report.skipped:
                    warn(f"corpus {skip.source}: {skip.reason}")
                if report.interrupted:
                    raise KeyboardInterrupt
            if store.count_articles() == 0:
                raise NothingIndexed(settings.index.data_dir)
            wanted = {i for q in questions for i in (*q.relevant_doc_ids, *q.gold_doc_ids)}
            indexed = set(store.content_hashes(wanted))
            for problem in unknown_ids(
                questions, indexed, str(questions_set.path), corpus_given=corpus_path is not None
            ):
                warn(str(problem))
            store.keyword_index()  # load now: the first question should not pay for it
            embedder.embed_query("warm up")
            assistants = {
                name: Assistant(s, store=store, embedder=embedder.with_own_cache())
                for name, s in per_config.items()
            }
            total = len(questions) * len(configs)
            emit(Event("question", "answering", 0, total))
            for q in questions:
                for config in configs:
                    row = evaluate_one(q, config, assistants[config.name], indexed, use_as_of)
                    if row["error"]:
                        warn(f"{questions_set.path}:{q.line}: {config.name}: {row['error']}")
                    results.write(json.dumps(row, ensure_ascii=False) + "\n")
                    results.flush()
                    rows.append(row)
                    emit(Event("question", f"{config.name} {q.id}", len(rows), total))
        except KeyboardInterrupt:
            partial = True
            warn(
                f"interrupted after {len(rows)} of {len(questions) * len(configs)} answers; "
                "the summary covers the questions every configuration finished"
            )

    summary = summarise(rows, configs, questions)
    summary.update(
        partial=partial,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now().isoformat(timespec="seconds"),
        questions_path=str(questions_set.path),
        questions_loaded=len(questions),
        corpus=str(corpus_path) if corpus_path else None,
        ingest=ingested,
        data_dir=str(settings.index.data_dir),
        articles_indexed=store.count_articles(),
        as_of=use_as_of,
        top_k=top_k,
        configs=[{"name": c.name, "retriever": c.retriever, "llm": c.llm} for c in configs],
        warnings=warnings,  # the same list: warnings below still land in the summary
    )
    if previous is not None:
        summary["compare"] = compare_summaries(summary, previous, str(compare))
        if not summary["compare"]["deltas"]:
            warn(f"--compare {compare}: no configuration in common with this run, so no Δ column")
        for difference in summary["compare"]["differences"]:
            warn(f"--compare {compare}: the runs differ in {difference}; read the Δ with care")
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    plots = write_report(out, summary, rows, {q.id: q for q in questions})
    return EvalRun(out, summary, rows, warnings, plots, partial)


def _print_warnings(event: Event) -> None:
    if event.kind == "warning":
        print(f"warning: {event.message}", file=sys.stderr)


def _ingested(report: Any) -> int:
    return len(report.added) + len(report.updated) + len(report.unchanged)


def _config_settings(base: Settings, config: Config, top_k: int) -> Settings:
    """The base settings with this configuration's retriever, answer mode and top_k, validated
    (an unknown retriever or writer is a ConfigError before anything runs)."""
    from assistant.llm import choose_llm
    from assistant.retrieve import retriever_class

    settings = base.updated(retriever=config.retriever, llm=config.llm, top_k=top_k)
    retriever_class(settings.retrieval.retriever)
    choose_llm(settings)
    return settings


def _load_previous(path: str | Path) -> dict[str, Any]:
    folder = Path(path)
    file = folder / SUMMARY if folder.is_dir() else folder
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"no {SUMMARY} in {folder}", hint="--compare takes the folder of an earlier eval run"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{file} is not valid JSON: {exc.msg}") from None
    if not isinstance(summary, dict) or "metrics" not in summary:
        raise InputError(f"{file} is not an eval summary (no 'metrics')")
    return summary


def evaluate_one(
    question: Question, config: Config, assistant: Any, indexed: set[str], use_as_of: bool
) -> dict[str, Any]:
    """Ask one question in one configuration and score the answer; errors become the row's error."""
    row: dict[str, Any] = {
        "question_id": question.id,
        "line": question.line,
        "config": config.name,
        "question": question.question,
        "as_of": question.as_of.isoformat() if question.as_of else None,
        "answerable": question.answerable,
        "expected": question.answers,
        "relevant_doc_ids": question.relevant_doc_ids,
        "gold_doc_ids": question.gold_doc_ids,
        "error": None,
    }
    started = time.perf_counter()
    try:
        answer: Answer = assistant.ask(
            question.question, as_of=question.as_of if use_as_of else None
        )
    except NothingIndexed:
        raise
    except NewsdeskError as exc:
        row.update(error=str(exc), metrics={})
        return row
    wall = time.perf_counter() - started
    texts = _article_texts(assistant.store, {c.article_id for c in answer.citations})
    ranked = m.distinct(s.article_id for s in answer.sources)
    row.update(
        answer={
            "short_answer": answer.short_answer.model_dump() if answer.short_answer else None,
            "text": answer.text,
            "refused": answer.refused,
            "mode": answer.mode,
            "model": answer.model,
            "notice": answer.notice,
            "warnings": answer.warnings,
            "sentences": [s.model_dump() for s in answer.sentences],
        },
        citations=[
            {**c.model_dump(mode="json"), "valid": m.citation_valid(c, texts.get(c.article_id))}
            for c in answer.citations
        ],
        retrieved_ids=ranked,
        sources=[s.model_dump(mode="json", exclude={"sentences"}) for s in answer.sources],
        timings=answer.timings,
        usage=answer.usage,
        metrics=score(question, answer, ranked, indexed, texts, wall),
    )
    return row


def _article_texts(store: Any, ids: Iterable[str]) -> dict[str, str | None]:
    texts: dict[str, str | None] = {}
    for article_id in ids:
        try:
            texts[article_id] = store.get_article(article_id).text
        except ArticleNotFound:
            texts[article_id] = None
    return texts


def score(
    question: Question,
    answer: Answer,
    ranked: list[str],
    indexed: set[str],
    texts: dict[str, str | None],
    wall: float,
) -> dict[str, Any]:
    """The per-question metrics (``None`` where a metric does not apply)."""
    relevant = [i for i in question.relevant_doc_ids if i in indexed]
    gold = [i for i in question.gold_doc_ids if i in indexed]
    scores: dict[str, Any] = {}
    for k in m.HIT_KS:
        scores[f"hit@{k}"] = m.hit_at_k(ranked, relevant, k)
    scores["mrr@10"] = m.reciprocal_rank(ranked, relevant)
    for k in m.HIT_KS:
        scores[f"gold_hit@{k}"] = m.hit_at_k(ranked, gold, k)
    scores["gold_mrr@10"] = m.reciprocal_rank(ranked, gold)
    correct = exact = None
    if question.answerable:
        found = m.contains_answer(answer.text, question.answers)
        correct = None if found is None else (found and not answer.refused)
        short = answer.short_answer.text if answer.short_answer else None
        exact = m.short_answer_exact(short, question.answers)
    scores.update(
        {
            "articles_retrieved": len(ranked),
            "answer_correct": correct,
            "short_answer_exact": exact,
            "refused": answer.refused,
            "citations": len(answer.citations),
            "citation_validity": m.citation_validity(answer.citations, texts),
            "citation_precision": m.citation_precision(answer.citations),
            "citation_recall": m.citation_recall(answer.sentences, answer.dropped),
            "latency_retrieval": answer.timings.get("retrieval"),
            "latency_generation": answer.timings.get("generation"),
            "latency_citations": answer.timings.get("citations"),
            "latency_total": round(wall, 4),
            "prompt_tokens": answer.usage.get("prompt_tokens"),
            "completion_tokens": answer.usage.get("completion_tokens"),
        }
    )
    return scores


def summarise(
    rows: Sequence[dict[str, Any]], configs: Sequence[Config], questions: Sequence[Question]
) -> dict[str, Any]:
    """Aggregate metrics per configuration over the questions every configuration finished."""
    names = [c.name for c in configs]
    done: dict[str, set[str]] = {}
    for row in rows:
        done.setdefault(row["question_id"], set()).add(row["config"])
    complete = {qid for qid, cs in done.items() if cs >= set(names)}
    table = {
        name: aggregate([r for r in rows if r["config"] == name and r["question_id"] in complete])
        for name in names
    }
    return {"metrics": table, "questions_scored": len(complete)}


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary metrics of one configuration's rows."""
    ok = [r for r in rows if not r.get("error")]

    def values(key: str, where: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[Any]:
        return [r["metrics"].get(key) for r in ok if where(r)]

    def ms(values: list[Any], q: float) -> float | None:
        value = m.percentile(values, q)
        return None if value is None else round(1000 * value, 1)

    out: dict[str, Any] = {
        "questions": len(rows),
        "answerable": sum(r["answerable"] for r in rows),
        "unanswerable": sum(not r["answerable"] for r in rows),
        "errors": len(rows) - len(ok),
        "retrieval_scored": sum(r["metrics"].get("hit@1") is not None for r in ok),
        "gold_scored": sum(r["metrics"].get("gold_hit@1") is not None for r in ok),
    }
    for prefix in ("", "gold_"):
        for k in m.HIT_KS:
            out[f"{prefix}hit@{k}"] = m.mean(values(f"{prefix}hit@{k}"))
        out[f"{prefix}mrr@10"] = m.mean(values(f"{prefix}mrr@10"))
    answerable = [r["answerable"] for r in ok]
    refused = [r["metrics"]["refused"] for r in ok]
    out.update(
        {
            "articles_retrieved": m.mean(values("articles_retrieved")),
            "answer_accuracy": m.mean(values("answer_correct")),
            "short_answer_exact": m.mean(values("short_answer_exact")),
            "answer_accuracy_answered": m.mean(
                values("answer_correct", lambda r: not r["metrics"]["refused"])
            ),
            "refusal_accuracy": m.refusal_accuracy(answerable, refused),
            "false_refusal_rate": m.false_refusal_rate(answerable, refused),
            "citation_validity": m.mean(values("citation_validity")),
            "citation_precision": m.mean(values("citation_precision")),
            "citation_recall": m.mean(values("citation_recall")),
            "citations_per_answer": m.mean(
                values("citations", lambda r: not r["metrics"]["refused"])
            ),
        }
    )
    for stage in ("retrieval", "generation", "citations", "total"):
        timings = values(f"latency_{stage}")
        out[f"{stage}_p50_ms"] = ms(timings, 50)
        out[f"{stage}_p95_ms"] = ms(timings, 95)
    out["prompt_tokens_mean"] = m.mean(values("prompt_tokens"))
    out["completion_tokens_mean"] = m.mean(values("completion_tokens"))
    return out


def compare_summaries(
    current: dict[str, Any], previous: dict[str, Any], label: str
) -> dict[str, Any]:
    """Per configuration present in both runs: current minus previous for every numeric metric.

    ``differences`` names what else changed between the runs (question file, index, top_k, ...).
    """
    deltas: dict[str, dict[str, float | None]] = {}
    for name, now in current["metrics"].items():
        before = previous["metrics"].get(name)
        if before is None:
            continue
        deltas[name] = {
            key: (value - before[key])
            if isinstance(value, int | float) and isinstance(before.get(key), int | float)
            else None
            for key, value in now.items()
        }
    differences = [
        f"{key} ({previous.get(key)!r} then, {current.get(key)!r} now)"
        for key in ("questions_path", "questions_scored", "data_dir", "top_k", "as_of", "partial")
        if key in current and previous.get(key) != current[key]
    ]
    return {
        "path": label,
        "questions_path": previous.get("questions_path"),
        "finished": previous.get("finished"),
        "differences": differences,
        "deltas": deltas,
    }
