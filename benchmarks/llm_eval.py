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

A configuration is ``extractive`` or ``NAME:json|quote|text:evidence[N]|chunks[:gate|:nogate]``
(NAME from --model; ``quote`` is JSON with the answering sentence quoted first; ``evidence4``
shows the 4 best sentences; ``gate``/``nogate`` turns the extractive refusal gate on or off,
default: the writer's ``auto``).

``--limit``/``--negatives`` take the first N of each list in file order (a documented subset);
``--offset``/``--neg-offset`` skip the first N, so a long run can be cut into pieces that each
fit the 12-minute lock.  Every piece writes its rows to ``OUT/CONFIG.POS-NEG.jsonl``, and
``--merge`` scores every piece of each ``--config`` found in OUT together, on the questions
every one of them answered (no model loaded)::

    python benchmarks/llm_eval.py ... --config qwen:json:evidence --limit 15 --negatives 8
    python benchmarks/llm_eval.py ... --config qwen:json:evidence --offset 15 --limit 15 \
        --neg-offset 8 --negatives 8
    python benchmarks/llm_eval.py --config extractive --config qwen:json:evidence --merge
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
    name, mode, context, *gate = config.split(":")
    options: dict[str, Any] = {}
    if context.startswith("evidence") and context != "evidence":
        options["evidence_sentences"] = int(context.removeprefix("evidence"))
    if gate:
        options["llm_gate"] = "on" if gate[0] == "gate" else "off"
    return base.updated(
        llm=f"local:{models[name]}",
        llm_json={"json": "on", "quote": "quote"}.get(mode, "off"),
        llm_evidence="on" if context.startswith("evidence") else "off",
        **options,
    )


def run(
    config: str, settings: Any, questions: list[Any], embedder: Any, piece: Path
) -> list[dict[str, Any]]:
    """Every question answered and scored in one configuration; each row is appended to
    ``piece`` as soon as it is scored, so a run stopped by its time limit keeps what it did."""
    from assistant.answer import Assistant
    from evals.harness import Config, evaluate_one

    assistant = Assistant(settings, embedder=embedder)
    indexed = {a.id for a in assistant.store.list_articles()}
    rows = []
    piece.write_text("", encoding="utf-8")
    for n, question in enumerate(questions, 1):
        row = evaluate_one(question, Config("hybrid", config), assistant, indexed, True)
        answer = row.get("answer") or {}
        warnings = answer.get("warnings") or []
        row["fell_back"] = any("answered extractively" in w for w in warnings)
        # refused by the gate: an LLM-mode answer for which no model was asked
        row["gated"] = answer.get("mode") == "llm" and not row.get("usage")
        row["markers_failed"] = any(t in w for w in warnings for t in MARKER_TROUBLE)
        rows.append(row)
        with piece.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(row, default=str) + "\n")
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
        out["gated"] = sum(bool(r.get("gated")) for r in answered) / len(answered)
        out["markers_failed"] = sum(r["markers_failed"] for r in answered) / len(answered)
        called = [r for r in answered if not r.get("gated")]  # the model was asked
        out["json_valid"] = (
            1 - sum(r["fell_back"] for r in called) / len(called) if structured and called else None
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
         "| markers failed | gated |"),
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
            f"| {f(r['all'].get('json_valid'), 2)} | {f(r['all'].get('markers_failed'), 2)} "
            f"| {f(r['all'].get('gated'), 2)} |"
        )
    return "\n".join(lines)


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def structured(config: str) -> bool:
    """Whether a configuration asks for JSON answers."""
    return config != "extractive" and config.split(":")[1] in ("json", "quote")


def scored(rows: list[dict[str, Any]], structured: bool) -> dict[str, Any]:
    """One configuration's summary: positives, negatives and all rows."""
    neg_rows = [r for r in rows if not r["answerable"]]
    return {
        "positives": summary([r for r in rows if r["answerable"]], structured),
        "negatives": summary(neg_rows, structured),
        "negatives_refused": (
            sum(r["metrics"].get("refused") is True for r in neg_rows) / len(neg_rows)
            if neg_rows else None
        ),
        "counts": [sum(r["answerable"] for r in rows), len(neg_rows)],
        "all": summary(rows, structured),
    }


def merged(out: Path, config: str) -> list[dict[str, Any]]:
    """Every row of every piece of ``config`` in ``out``, once per question (the latest piece)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob(f"{config.replace(':', '_')}.*.jsonl"), key=lambda p: p.stat().st_mtime):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["question_id"]] = row
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH.gguf")
    parser.add_argument("--config", action="append", default=[], help="see above")
    parser.add_argument("--limit", type=int, default=60, help="answerable questions (N)")
    parser.add_argument("--offset", type=int, default=0, help="skip the first N answerable")
    parser.add_argument("--negatives", type=int, default=1000, help="negatives (N)")
    parser.add_argument("--neg-offset", type=int, default=0, help="skip the first N negatives")
    parser.add_argument("--merge", action="store_true", help="score the pieces in OUT, run nothing")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "llm_eval")
    args = parser.parse_args()
    configs = args.config or ["extractive"]
    if args.merge:
        every = {config: merged(args.out, config) for config in configs}
        common = set.intersection(*({r["question_id"] for r in rows} for rows in every.values()))
        results = {}
        for config, rows in every.items():
            rows = [r for r in rows if r["question_id"] in common]  # like with like
            results[config] = scored(rows, structured(config))
            print(f"{config}: {results[config]['counts'][0]} answerable, "
                  f"{results[config]['counts'][1]} negatives", file=sys.stderr)
        print(table(results))
        return
    if not (DATA / "questions.jsonl").exists():
        print(f"{DATA} is absent: nothing to run (internal data lives in ../shared).")
        return
    evaluate(args, configs)


def evaluate(args: argparse.Namespace, configs: list[str]) -> None:
    """Run every configuration on the chosen slice, writing rows as they are scored."""
    from assistant.settings import get_settings
    from evals.questions import load_questions
    from index import ingest, open_store
    from index.embeddings import get_embedder

    models = dict(m.split("=", 1) for m in args.model)
    base = get_settings(data_dir=REPO / "benchmarks" / "out" / "dev-small" / "newsdesk")
    embedder = get_embedder(base)
    report = ingest([DATA / "corpus.jsonl"], config=base, embedder=embedder)
    print(f"index: {len(report.added)} added, {len(report.unchanged)} unchanged", file=sys.stderr)
    questions = load_questions(DATA / "questions.jsonl").questions
    negative = negatives(questions, open_store(base))
    negative = negative[args.neg_offset : args.neg_offset + args.negatives]
    positive = questions[args.offset : args.offset + args.limit]
    print(f"{len(positive)} answerable questions, {len(negative)} near-topic negatives",
          file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for config in configs:
        started = time.perf_counter()
        piece = args.out / f"{config.replace(':', '_')}.{args.offset}-{args.neg_offset}.jsonl"
        rows = run(config, settings_for(base, config, models), positive + negative, embedder, piece)
        results[config] = scored(rows, structured(config))
        results[config]["seconds"] = round(time.perf_counter() - started, 1)
        # After every configuration, so a run cut short still leaves its table.
        (args.out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
        print(f"\n{len(positive)} answerable dev-small questions (from {args.offset}), "
              f"{len(negative)} near-topic negatives (from {args.neg_offset}); "
              f"{date.today().isoformat()}\n", flush=True)
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
