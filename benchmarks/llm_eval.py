"""LLM-mode evaluation: local GGUF models against the extractive writer, on the same questions.

Questions: RealTime QA ``dev-small`` (60, answerable, each asked as of its own day) and its
near-topic negatives, built as ``benchmarks/refusal.py`` builds them: the same question asked
90 days earlier, kept when no article published by then contains an accepted answer (the topic
had coverage, the news had not happened), where the right answer is a refusal.

Each configuration answers every question through ``Assistant.ask`` and is scored by the eval
harness (``evals.harness.evaluate_one`` / ``aggregate``): answer correctness, citation
validity / precision / recall, refusals, tokens and latency.  Two more figures:

- ``json_valid``: structured configurations, the share of replies that parsed under the schema
  (the rest fell back to extractive);
- ``markers_failed``: the share of answers whose [n] markers were missing, out of range or
  left a sentence uncited — what structured answers are for.

    python benchmarks/assemble_model.py        # the verified Qwen2.5-Coder-1.5B GGUF
    flock /tmp/newsdesk-heavy.lock python benchmarks/llm_eval.py \\
        --model qwen=benchmarks/out/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \\
        --config extractive --config qwen:json:evidence --limit 30 --negatives 15

A configuration is ``extractive`` or ``NAME:json|text:evidence|chunks`` (NAME from --model).
``--limit``/``--negatives`` take the first N of each list in file order (a documented subset).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "realtimeqa" / "dev-small"
SHIFT = timedelta(days=90)
MARKER_TROUBLE = ("no such source", "uncited sentence", "cited no valid source")


def negatives(questions: list[Any], store: Any) -> list[Any]:
    """Near-topic negatives: each question asked 90 days early, when no article by then answers."""
    from evals.metrics import normalise

    articles = [
        (a.published, normalise(f"{a.title} {store.get_article(a.id).text}"))
        for a in store.list_articles()
    ]

    def holds(text: str, answers: list[str]) -> bool:
        return any(
            re.search(rf"\b{re.escape(a)}\b", text) for a in map(normalise, answers) if a
        )

    out = []
    for q in questions:
        if q.as_of is None:
            continue
        earlier: date = q.as_of - SHIFT
        if not any(p and p <= earlier and holds(t, q.answers) for p, t in articles):
            out.append(q.model_copy(update={
                "id": f"{q.id}-90d", "as_of": earlier, "answerable": False, "answers": [],
                "relevant_doc_ids": [], "gold_doc_ids": [],
            }))
    return out


def settings_for(base: Any, config: str, models: dict[str, str]) -> Any:
    """The settings of one configuration name."""
    if config == "extractive":
        return base.updated(llm="extractive")
    name, mode, context = config.split(":")
    return base.updated(
        llm=f"local:{models[name]}",
        llm_json="on" if mode == "json" else "off",
        llm_evidence="on" if context == "evidence" else "off",
    )


def run(config: str, settings: Any, questions: list[Any], embedder: Any) -> list[dict[str, Any]]:
    """Every question answered and scored in one configuration."""
    from assistant.answer import Assistant
    from evals.harness import Config, evaluate_one

    assistant = Assistant(settings, embedder=embedder)
    indexed = {a.id for a in assistant.store.list_articles()}
    rows = []
    for n, question in enumerate(questions, 1):
        row = evaluate_one(question, Config("hybrid", config), assistant, indexed, True)
        answer = row.get("answer") or {}
        warnings = answer.get("warnings") or []
        row["fell_back"] = any("answered extractively" in w for w in warnings)
        row["markers_failed"] = any(t in w for w in warnings for t in MARKER_TROUBLE)
        rows.append(row)
        metrics = row["metrics"]
        print(f"{config} {n}/{len(questions)} {question.id} correct={metrics.get('answer_correct')}"
              f" refused={metrics.get('refused')} {metrics.get('latency_total')}s",
              file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict[str, Any]], structured: bool) -> dict[str, Any]:
    """The harness's aggregate plus the figures about markers and JSON."""
    from evals.harness import aggregate

    out = aggregate(rows)
    answered = [r for r in rows if r.get("answer")]
    if answered:
        out["markers_failed"] = sum(r["markers_failed"] for r in answered) / len(answered)
        out["json_valid"] = (
            1 - sum(r["fell_back"] for r in answered) / len(answered) if structured else None
        )
        out["fell_back"] = sum(r["fell_back"] for r in answered) / len(answered)
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    """The side-by-side markdown table."""
    def f(value: Any, digits: int = 3) -> str:
        if value is None:
            return "–"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = [
        ("| config | correct (pos) | cit. validity | cit. precision | cit. recall | negatives "
         "refused | false refusals | prompt tok | completion tok | p50 s | p95 s | JSON valid "
         "| markers failed |"),
        "|---|" + "---:|" * 13,
    ]
    for name, r in results.items():
        pos = r["positives"]
        lines.append(
            f"| {name} | {f(pos.get('answer_accuracy'))} | {f(pos.get('citation_validity'))} "
            f"| {f(pos.get('citation_precision'))} | {f(pos.get('citation_recall'))} "
            f"| {f(r['negatives_refused'])} | {f(pos.get('false_refusal_rate'))} "
            f"| {f(r['all'].get('prompt_tokens_mean'), 0)} "
            f"| {f(r['all'].get('completion_tokens_mean'), 0)} "
            f"| {f(_s(r['all'].get('total_p50_ms')), 1)} | {f(_s(r['all'].get('total_p95_ms')), 1)} "
            f"| {f(r['all'].get('json_valid'), 2)} | {f(r['all'].get('markers_failed'), 2)} |"
        )
    return "\n".join(lines)


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def main() -> None:
    from assistant.settings import get_settings
    from evals.questions import load_questions
    from index import ingest, open_store
    from index.embeddings import get_embedder

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH.gguf")
    parser.add_argument("--config", action="append", default=[], help="see above")
    parser.add_argument("--limit", type=int, default=60, help="answerable questions (first N)")
    parser.add_argument("--negatives", type=int, default=1000, help="negatives (first N)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "llm_eval")
    args = parser.parse_args()
    if not (DATA / "questions.jsonl").exists():
        print(f"{DATA} is absent: nothing to run (internal data lives in ../shared).")
        return
    models = dict(m.split("=", 1) for m in args.model)
    base = get_settings(data_dir=REPO / "benchmarks" / "out" / "dev-small" / "newsdesk")
    embedder = get_embedder(base)
    report = ingest([DATA / "corpus.jsonl"], config=base, embedder=embedder)
    print(f"index: {len(report.added)} added, {len(report.unchanged)} unchanged", file=sys.stderr)
    questions = load_questions(DATA / "questions.jsonl").questions
    negative = negatives(questions, open_store(base))[: args.negatives]
    positive = questions[: args.limit]
    print(f"{len(positive)} answerable questions, {len(negative)} near-topic negatives",
          file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for config in args.config or ["extractive"]:
        started = time.perf_counter()
        settings = settings_for(base, config, models)
        rows = run(config, settings, positive + negative, embedder)
        structured = config != "extractive" and config.split(":")[1] == "json"
        neg_rows = [r for r in rows if not r["answerable"]]
        results[config] = {
            "positives": summary([r for r in rows if r["answerable"]], structured),
            "negatives": summary(neg_rows, structured),
            "negatives_refused": (
                sum(r["metrics"].get("refused") is True for r in neg_rows) / len(neg_rows)
                if neg_rows else None
            ),
            "all": summary(rows, structured),
            "seconds": round(time.perf_counter() - started, 1),
        }
        (args.out / f"{config.replace(':', '_')}.jsonl").write_text(
            "".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8"
        )
        # After every configuration, so a run cut short still leaves its table.
        (args.out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
        print(f"\n{len(positive)} answerable dev-small questions (first {args.limit}), "
              f"{len(negative)} near-topic negatives; {date.today().isoformat()}\n", flush=True)
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
