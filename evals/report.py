"""The run's report for people: a Markdown metrics table, the worst failures quoted, and plots.

``write_report(out_dir, summary, rows, questions) -> [plot paths]`` writes ``report.md`` beside
``hit_at_k.png`` and ``latency.png`` (matplotlib's Agg backend: no display needed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from evals.metrics import HIT_KS
from evals.questions import Question

Format = Literal["rate", "count", "ms", "number"]

METRICS: list[tuple[str, str, Format]] = [
    ("questions", "questions scored", "count"),
    ("answerable", "answerable", "count"),
    ("unanswerable", "unanswerable", "count"),
    ("retrieval_scored", "questions naming relevant articles", "count"),
    *[(f"hit@{k}", f"retrieval hit@{k}", "rate") for k in HIT_KS],
    ("mrr@10", "retrieval MRR@10", "rate"),
    ("gold_scored", "questions naming a gold article", "count"),
    *[(f"gold_hit@{k}", f"gold article hit@{k}", "rate") for k in HIT_KS],
    ("gold_mrr@10", "gold article MRR@10", "rate"),
    ("articles_retrieved", "distinct articles in sources (mean)", "number"),
    ("answer_accuracy", "answer correct (answerable)", "rate"),
    ("short_answer_exact", "short answer exact (answerable)", "rate"),
    ("answer_accuracy_answered", "answer correct (answerable, not refused)", "rate"),
    ("refusal_accuracy", "refusal accuracy (unanswerable)", "rate"),
    ("false_refusal_rate", "false-refusal rate (answerable)", "rate"),
    ("citation_validity", "citation validity", "rate"),
    ("citation_precision", "citation precision", "rate"),
    ("citation_recall", "citation recall", "rate"),
    ("citations_per_answer", "citations per answer", "number"),
    ("retrieval_p50_ms", "retrieval p50 ms", "ms"),
    ("retrieval_p95_ms", "retrieval p95 ms", "ms"),
    ("generation_p50_ms", "generation p50 ms", "ms"),
    ("generation_p95_ms", "generation p95 ms", "ms"),
    ("total_p50_ms", "total p50 ms", "ms"),
    ("total_p95_ms", "total p95 ms", "ms"),
    ("prompt_tokens_mean", "prompt tokens (mean)", "number"),
    ("completion_tokens_mean", "completion tokens (mean)", "number"),
    ("errors", "errors", "count"),
]
"""The rows of the metrics table, in order: summary key, label, how to print it."""

NOTES = """\
- **hit@k / MRR@10**: a `relevant_doc_ids` article among the first k distinct articles of the
  answer's sources, in rank order (gold: the quiz's own `gold_doc_ids`, where given).
- **answer correct**: an accepted answer occurs, SQuAD-normalised and as whole words, in the
  answer text; a refusal counts as wrong.
- **short answer exact**: the answer's `short_answer` (the asked-for words marked in the quoted
  sentence), SQuAD-normalised, equals an accepted answer; no short answer counts as wrong.
- **refusal accuracy**: unanswerable questions refused; **false-refusal rate**: answerable ones
  refused anyway.
- **citation validity**: the quote is exactly `article.text[start:end]` in the index;
  **precision**: citations whose span supports their sentence; **recall**: the sentences the
  writer wrote (kept or removed by the citation check) that have a supporting citation
  (ALCE-style; averaged over answers that wrote any).
- **latency**: seconds per stage from `Answer.timings`; total is the wall time of `ask`.
"""

FAILURES_SHOWN = 10
MARKERS = re.compile(r"\s*\[\d+(?:\s*[,;–-]\s*\d+)*\]")


def write_report(
    out_dir: Path,
    summary: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    questions: Mapping[str, Question],
) -> list[Path]:
    """Write report.md and the plots into ``out_dir``; return the plot paths."""
    plots = plot(out_dir, summary, rows)
    (out_dir / "report.md").write_text(
        render(summary, rows, questions, [p.name for p in plots]), encoding="utf-8"
    )
    return plots


def render(
    summary: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    questions: Mapping[str, Question],
    plot_names: Sequence[str] = (),
) -> str:
    """The Markdown report."""
    names = [c["name"] for c in summary["configs"]]
    lines = [f"# newsdesk evaluation: {Path(summary['questions_path']).name}", ""]
    if summary.get("partial"):
        lines += [
            (
                "> **Partial run**: interrupted before every question was answered. The table "
                f"covers the {summary['questions_scored']} questions every configuration finished."
            ),
            "",
        ]
    lines += [
        (
            f"- questions: `{summary['questions_path']}` ({summary['questions_loaded']} loaded, "
            f"{summary['questions_scored']} scored)"
        ),
        _corpus_line(summary),
        f"- index: `{summary['data_dir']}` ({summary['articles_indexed']} articles)",
        f"- as_of: {'each question’s date (later articles unseen)' if summary['as_of'] else 'off'}",
        f"- sources per answer: {summary['top_k']} chunks (top_k; the app's default is 8)",
        f"- configurations: {', '.join(f'`{n}`' for n in names)}",
        f"- run: {summary['started']} → {summary['finished']}",
        "",
        "## Metrics",
        "",
    ]
    compare = summary.get("compare")
    if compare:
        lines.append(f"Δ: change against `{compare['path']}` (finished {compare.get('finished')}).")
        lines += [f"The runs differ in {d}." for d in compare.get("differences", [])] + [""]
    lines += [metrics_table(summary), "", NOTES]
    if plot_names:
        lines += ["## Plots", ""] + [f"![{n}]({n})" for n in plot_names] + [""]
    lines += failures_section(rows, questions, names)
    warnings = summary.get("warnings") or []
    lines += ["## Warnings", ""]
    lines += [f"- {_inline(w)}" for w in warnings] or ["None."]
    lines += [
        "",
        "## Files",
        "",
        "- `results.jsonl`: one line per question and configuration",
        "- `summary.json`: the numbers above (what `--compare` reads)",
        "",
    ]
    return "\n".join(lines)


def _corpus_line(summary: dict[str, Any]) -> str:
    if not summary.get("corpus"):
        return "- corpus: none given (the index as it was)"
    line = f"- corpus: `{summary['corpus']}`"
    done = summary.get("ingest")
    if done:
        line += (
            f" (ingested: {done['added']} added, {done['updated']} updated, "
            f"{done['unchanged']} unchanged, {done['skipped']} skipped, {done['seconds']} s)"
        )
    return line


def metrics_table(summary: dict[str, Any]) -> str:
    """The metrics as a Markdown table: one column per configuration, Δ beside it when comparing."""
    table = summary["metrics"]
    names = list(table)
    deltas = (summary.get("compare") or {}).get("deltas", {})
    header = ["metric"]
    for name in names:
        header += [name] + (["Δ"] if name in deltas else [])
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for key, label, fmt in METRICS:
        cells = [table[n].get(key) for n in names]
        if key.startswith("gold") and not any(table[n].get("gold_scored") for n in names):
            continue
        if all(c is None for c in cells) and fmt != "rate":
            continue  # tokens without an LLM, for instance
        row = [label]
        for name, value in zip(names, cells, strict=True):
            row.append(fmt_value(value, fmt))
            if name in deltas:
                row.append(fmt_delta(deltas[name].get(key), fmt))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def fmt_value(value: Any, fmt: Format) -> str:
    """A metric value as the table prints it (``n/a`` when it does not apply)."""
    if value is None:
        return "n/a"
    if fmt == "count":
        return str(int(value))
    if fmt == "rate":
        return f"{value:.3f}"
    return f"{value:.1f}"


def fmt_delta(value: Any, fmt: Format) -> str:
    """A change as the Δ column prints it: signed, or "0" when it rounds away."""
    if value is None:
        return ""
    text = fmt_value(abs(value), fmt)
    if not text.strip("0.") or abs(value) < 1e-12:
        return "0"  # a change too small to show is no change ("−0.000" reads like a regression)
    return ("+" if value > 0 else "−") + text


def failed(row: dict[str, Any]) -> bool:
    """Whether a result row counts as a failure in the report.

    A row fails when it has an error, when an answerable question got a wrong or refused answer
    (an answer the metrics could not judge is not a failure), or when an unanswerable question
    was answered instead of refused.
    """
    if row.get("error"):
        return True
    scores = row["metrics"]
    if row["answerable"]:
        return scores["answer_correct"] is False
    return not scores["refused"]


def failures_section(
    rows: Sequence[dict[str, Any]], questions: Mapping[str, Question], names: Sequence[str]
) -> list[str]:
    """The worst failures: questions failed by the most configurations, worst retrieval first."""
    by_question: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_question.setdefault(row["question_id"], []).append(row)
    ranked = []
    for qid, group in by_question.items():
        failures = [r for r in group if failed(r)]
        if failures:
            rr = [r.get("metrics", {}).get("mrr@10") or 0.0 for r in group]
            ranked.append((-len(failures), sum(rr) / len(rr), group[0]["line"], qid))
    ranked.sort()
    lines = ["## Failures", ""]
    if not ranked:
        return lines + ["None: every answer was right (or rightly refused).", ""]
    lines += [
        (
            f"{len(ranked)} questions failed in at least one configuration; the worst "
            f"{min(FAILURES_SHOWN, len(ranked))} are quoted (most configurations failing first, "
            "then worst retrieval). ✓ marks a relevant article."
        ),
        "",
    ]
    for n, (_, _, line, qid) in enumerate(ranked[:FAILURES_SHOWN], start=1):
        group = sorted(
            by_question[qid], key=lambda r: names.index(r["config"]) if r["config"] in names else 0
        )
        first = group[0]
        question = questions.get(qid)
        lines += [f"### {n}. `{qid}` (line {line})", "", f"**Q:** {_inline(first['question'])}", ""]
        if first["answerable"]:
            expected = (
                " / ".join(f"“{a}”" for a in first["expected"]) or "(no accepted answer given)"
            )
            lines.append(
                f"**Expected:** {expected}"
                + (f" (as of {first['as_of']})" if first["as_of"] else "")
            )
        else:
            lines.append("**Expected:** a refusal (the articles do not answer it)")
        if question is not None and question.evidence_text:
            lines.append(
                "\n**Evidence** (not shown to the system): " + _inline(question.evidence_text, 300)
            )
        lines.append("")
        relevant = set(first["relevant_doc_ids"]) | set(first["gold_doc_ids"])
        said: dict[str, list[dict[str, Any]]] = {}
        for row in group:  # configurations that said the same thing are quoted once
            said.setdefault(_said(row), []).append(row)
        for text, same in said.items():
            mark = "✗" if failed(same[0]) else "✓"
            who = ", ".join(f"**{r['config']}**" for r in same)
            lines.append(f"- {mark} {who}: {text}")
            for row in same:
                if failed(row) and not row.get("error"):
                    top = "; ".join(
                        f"`{a['article_id']}`{' ✓' if a['article_id'] in relevant else ''} "
                        f"{_inline(a['title'], 70)} ({a.get('outlet') or '?'}, "
                        f"{a.get('published') or 'undated'})"
                        for a in _top_articles(row["sources"], 3)
                    )
                    lines.append(f"    - top sources, {row['config']}: {top or '(none)'}")
        lines.append("")
    return lines


def _said(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"error: {_inline(row['error'])}"
    answer = row["answer"]
    if answer["refused"]:
        return "refused"
    # without its [n] markers: source numbers differ between retrievers, the words may not
    return f"said “{_inline(MARKERS.sub('', answer['text']), 400)}”"


def _top_articles(sources: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for source in sources:
        seen.setdefault(source["article_id"], source)
        if len(seen) == n:
            break
    return list(seen.values())


def _inline(text: str, limit: int = 0) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def plot(out_dir: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> list[Path]:
    """hit_at_k.png (hit@k per configuration) and latency.png (per-stage latency box plots)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [c["name"] for c in summary["configs"]]
    table = summary["metrics"]
    paths = []

    fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # Agg explicitly: no display, no pyplot state shared with callers
    ax = fig.add_subplot()
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-"), ("P", "--")]
    for i, name in enumerate(names):
        ys = [table[name].get(f"hit@{k}") for k in HIT_KS]
        if any(y is not None for y in ys):
            marker, line = styles[i % len(styles)]  # overlapping curves stay distinguishable
            values = [y if y is not None else float("nan") for y in ys]
            ax.plot(HIT_KS, values, marker=marker, linestyle=line, label=name)
    ax.set(
        xlabel="k (distinct articles)",
        ylabel="hit@k",
        ylim=(0, 1.02),
        xticks=list(HIT_KS),
        title="Retrieval: a relevant article in the top k",
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    else:
        ax.text(
            0.5, 0.5, "no question names relevant articles", ha="center", transform=ax.transAxes
        )
    paths.append(out_dir / "hit_at_k.png")
    fig.savefig(paths[-1])

    fig = Figure(figsize=(9, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for i, stage in enumerate(("retrieval", "generation", "total"), start=1):
        ax = fig.add_subplot(1, 3, i)
        data = [
            [
                1000 * r["metrics"][f"latency_{stage}"]
                for r in rows
                if r["config"] == name
                and not r.get("error")
                and r["metrics"].get(f"latency_{stage}") is not None
            ]
            for name in names
        ]
        if any(data):
            ax.boxplot([d or [float("nan")] for d in data], showfliers=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=8)
        ax.set(title=stage, ylabel="ms" if i == 1 else None)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Latency per question")
    paths.append(out_dir / "latency.png")
    fig.savefig(paths[-1])
    return paths
