"""The evaluation harness as a user meets it: one run, side-by-side configurations, a readable
report, bad input reported by line, --compare, and Ctrl-C keeping what finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assistant.errors import InputError
from assistant.settings import Settings, get_settings
from evals.cli import app
from evals.harness import Config, EvalRun, Event, configs, run_eval
from evals.questions import load_questions
from evals.report import fmt_delta
from tests.conftest import REPO, SAMPLES, write
from tests.fake_openai import FakeOpenAI, Reply

QUESTIONS = REPO / "evals" / "questions.jsonl"
ARTICLES = SAMPLES / "articles.jsonl"
PNG = b"\x89PNG\r\n\x1a\n"
FEW = 8
"""top_k for the tests that check mechanics rather than quality: fewer sentences to embed."""
ASSAD = {
    "id": "assad",
    "question": "When did Assad visit Moscow?",
    "answers": ["October 20"],
    "as_of": "2015-10-31",
    "relevant_doc_ids": ["sample-lavrov-free-syrian-army"],
}


def line(**fields: Any) -> str:
    return json.dumps({**ASSAD, **fields})


@pytest.fixture(scope="module")
def full_run(sample_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> EvalRun:
    """The shipped question set over the sample articles: dense, bm25 and hybrid, extractive."""
    return run_eval(
        QUESTIONS,
        configs=configs(["dense", "bm25", "hybrid"]),
        settings=sample_index,
        out_dir=tmp_path_factory.mktemp("eval") / "run",
        progress=lambda event: None,
    )


def test_shipped_question_set_is_valid() -> None:
    loaded = load_questions(QUESTIONS)
    assert not loaded.problems
    assert len(loaded.questions) == 30
    assert sum(not q.answerable for q in loaded.questions) == 11


def test_every_question_is_answered_in_every_configuration(full_run: EvalRun) -> None:
    rows = [json.loads(x) for x in full_run.results_path.read_text().splitlines()]
    assert len(rows) == 30 * 3 and not full_run.partial and not full_run.warnings
    assert {r["config"] for r in rows} == {
        "dense/extractive",
        "bm25/extractive",
        "hybrid/extractive",
    }
    first = rows[0]
    assert first["question_id"] == "q01" and first["line"] == 1
    assert first["answer"]["text"] and first["citations"] and first["retrieved_ids"]
    assert first["sources"][0]["score"] > 0 and "retrieval" in first["timings"]
    assert first["metrics"]["hit@5"] == 1.0 and first["metrics"]["answer_correct"] is True


def test_hybrid_finds_the_right_article(full_run: EvalRun) -> None:
    hybrid = full_run.summary["metrics"]["hybrid/extractive"]
    assert hybrid["retrieval_scored"] == 19  # the unanswerable ones name no article
    assert hybrid["hit@5"] >= 0.9 and hybrid["mrr@10"] >= 0.8
    assert hybrid["hit@1"] <= hybrid["hit@3"] <= hybrid["hit@5"] <= hybrid["hit@10"]


def test_refusals_are_scored_over_the_unanswerable_questions(full_run: EvalRun) -> None:
    rows = [r for r in full_run.rows if r["config"] == "hybrid/extractive"]
    unanswerable = [r for r in rows if not r["answerable"]]
    hybrid = full_run.summary["metrics"]["hybrid/extractive"]
    assert hybrid["unanswerable"] == len(unanswerable) == 11 and hybrid["answerable"] == 19
    refused = sum(r["metrics"]["refused"] for r in unanswerable)
    assert hybrid["refusal_accuracy"] == pytest.approx(refused / 11)
    assert 0 <= hybrid["false_refusal_rate"] <= 1
    assert all(r["metrics"]["answer_correct"] is None for r in unanswerable)
    assert hybrid["answer_accuracy"] >= 0.5


def test_unanswerable_how_many_and_what_did_x_say_questions_are_refused(full_run: EvalRun) -> None:
    rows = [r for r in full_run.rows if r["config"] == "hybrid/extractive"]
    kinds = [r for r in rows if not r["answerable"]
             and r["question"].startswith(("How many", "What did"))]
    assert len(kinds) == 6 and all(r["metrics"]["refused"] for r in kinds)
    assert full_run.summary["metrics"]["hybrid/extractive"]["refusal_accuracy"] >= 0.6


def test_short_answers_are_scored_beside_containment(full_run: EvalRun) -> None:
    hybrid = full_run.summary["metrics"]["hybrid/extractive"]
    assert 0 < hybrid["short_answer_exact"] <= hybrid["answer_accuracy"]
    rows = {r["question_id"]: r for r in full_run.rows if r["config"] == "hybrid/extractive"}
    short = rows["q08"]["answer"]["short_answer"]  # "Which British prime minister ...?"
    assert short["text"] in ("David Cameron", "Cameron") and short["kind"] == "person"
    assert rows["q08"]["metrics"]["short_answer_exact"] is True
    assert all(r["metrics"]["short_answer_exact"] is None for r in rows.values() if not r["answerable"])
    assert "| short answer exact (answerable) |" in full_run.report_path.read_text()


def test_citations_are_verbatim_spans_of_the_stored_articles(full_run: EvalRun) -> None:
    for metrics in full_run.summary["metrics"].values():
        assert metrics["citation_validity"] == 1.0
        assert 0 < metrics["citation_precision"] <= 1 and 0 < metrics["citation_recall"] <= 1
        assert metrics["total_p50_ms"] <= metrics["total_p95_ms"]
        assert metrics["prompt_tokens_mean"] is None  # no LLM, no tokens


def test_report_has_the_table_failures_and_plots(full_run: EvalRun) -> None:
    report = full_run.report_path.read_text()
    assert "| metric | dense/extractive | bm25/extractive | hybrid/extractive |" in report
    assert "| retrieval hit@5 |" in report and "| refusal accuracy (unanswerable) |" in report
    assert "| prompt tokens (mean) |" not in report
    assert "## Failures" in report and "**Expected:**" in report and "top sources" in report
    assert "Partial run" not in report
    for name in ("hit_at_k.png", "latency.png"):
        png = full_run.out_dir / name
        assert png in full_run.plots and f"]({name})" in report
        assert png.read_bytes().startswith(PNG) and png.stat().st_size > 5_000
    summary = json.loads(full_run.summary_path.read_text())
    assert summary["partial"] is False and summary["top_k"] == 20 and summary["as_of"] is True


def test_bad_lines_are_reported_by_line_and_the_run_goes_on(
    sample_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = write(
        tmp_path / "qs.jsonl",
        "\n".join(
            [
                line(id="ok"),
                '{"id": "broken", "question": ',
                line(id="typo", answer=["October 20"]),
                line(id="contradiction", answerable=False),
                line(id="ok"),
                line(id="ghost", relevant_doc_ids=["no-such-article"]),
                '["not", "an", "object"]',
            ]
        )
        + "\n",
    )
    run = run_eval(
        questions,
        configs=[Config("bm25")],
        settings=sample_index,
        out_dir=tmp_path / "out",
        top_k=FEW,
    )
    expected = [
        f"{questions}:2: malformed JSON",
        f"{questions}:3: unknown field 'answer' (known fields: id, question, answers,",
        f"{questions}:4: an unanswerable question ('answerable': false) lists answers",
        f"{questions}:5: duplicate id 'ok' (first on line 1)",
        (
            f"{questions}:6: question 'ghost': relevant_doc_ids not indexed: no-such-article "
            "(none is scored); ingest the corpus that goes with the questions: --corpus"
        ),
        f"{questions}:7: expected a JSON object, got list",
    ]
    stderr = capsys.readouterr().err
    report = run.report_path.read_text()
    for message in expected:
        assert any(w.startswith(message) for w in run.warnings), (message, run.warnings)
        assert message in stderr and message in report
    assert [r["question_id"] for r in run.rows] == ["ok", "ghost"]
    assert run.rows[1]["metrics"]["hit@5"] is None  # its only relevant id is not indexed
    assert run.summary["metrics"]["bm25/extractive"]["retrieval_scored"] == 1


def test_missing_files_and_bad_configurations_fail_before_anything_runs(
    sample_index: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match="question file not found"):
        run_eval(
            tmp_path / "nope.jsonl", configs=[Config("bm25")], settings=sample_index, out_dir=out
        )
    questions = write(tmp_path / "qs.jsonl", line() + "\n")
    with pytest.raises(InputError, match="corpus file not found: .*missing.jsonl"):
        run_eval(
            questions,
            corpus=tmp_path / "missing.jsonl",
            configs=[Config("bm25")],
            settings=sample_index,
            out_dir=out,
        )
    with pytest.raises(InputError, match="no summary.json"):
        run_eval(
            questions,
            configs=[Config("bm25")],
            settings=sample_index,
            out_dir=out,
            compare=tmp_path,
        )
    with pytest.raises(Exception, match="retriever"):
        run_eval(questions, configs=[Config("fancy")], settings=sample_index, out_dir=out)
    assert not out.exists()


def test_corpus_is_ingested_once_and_its_bad_lines_reported(
    settings: Settings, tmp_path: Path
) -> None:
    records = [json.loads(x) for x in ARTICLES.read_text().splitlines()[:3]]
    corpus = write(
        tmp_path / "corpus.jsonl",
        "\n".join(json.dumps(r) for r in records) + '\n{"title": "no text"}\n',
    )
    questions = write(tmp_path / "qs.jsonl", line() + "\n")
    first = run_eval(
        questions,
        corpus=corpus,
        configs=[Config("hybrid")],
        settings=settings,
        out_dir=tmp_path / "one",
        top_k=FEW,
        progress=lambda e: None,
    )
    again = run_eval(
        questions,
        corpus=corpus,
        configs=[Config("hybrid")],
        settings=settings,
        out_dir=tmp_path / "two",
        top_k=FEW,
        progress=lambda e: None,
    )
    assert first.summary["ingest"]["added"] == 3
    assert again.summary["ingest"]["added"] == 0 and again.summary["ingest"]["unchanged"] == 3
    assert any(w.startswith(f"corpus {corpus}:4:") for w in first.warnings), first.warnings
    assert again.summary["metrics"]["hybrid/extractive"]["hit@5"] == 1.0


def test_compare_adds_a_delta_column_and_names_what_differs(
    sample_index: Settings, full_run: EvalRun, tmp_path: Path
) -> None:
    questions = write(
        tmp_path / "qs.jsonl", "\n".join(QUESTIONS.read_text().splitlines()[:2]) + "\n"
    )
    run = run_eval(
        questions,
        configs=configs(["bm25", "hybrid"]),
        settings=sample_index,
        out_dir=tmp_path / "out",
        compare=full_run.out_dir,
        progress=lambda e: None,
        top_k=FEW,
    )
    report = run.report_path.read_text()
    assert "| metric | bm25/extractive | Δ | hybrid/extractive | Δ |" in report
    assert f"Δ: change against `{full_run.out_dir}`" in report
    assert "| questions scored | 2 | −28 | 2 | −28 |" in report
    deltas = run.summary["compare"]["deltas"]["hybrid/extractive"]
    now, before = (
        run.summary["metrics"]["hybrid/extractive"],
        full_run.summary["metrics"]["hybrid/extractive"],
    )
    assert deltas["hit@1"] == pytest.approx(now["hit@1"] - before["hit@1"])
    differs = " ".join(run.warnings)
    assert "the runs differ in questions_path" in differs and "top_k (20 then, 8 now)" in differs


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (0.003, "rate", "+0.003"),
        (-0.0001, "rate", "0"),  # rounds away: not a regression
        (0.0, "rate", "0"),
        (-21, "count", "−21"),
        (-233.94, "ms", "−233.9"),
        (0.04, "number", "0"),
        (None, "rate", ""),
    ],
)
def test_delta_cells(value: float | None, fmt: Any, shown: str) -> None:
    assert fmt_delta(value, fmt) == shown


def test_ctrl_c_keeps_the_results_so_far(sample_index: Settings, tmp_path: Path) -> None:
    def interrupt_after_three(event: Event) -> None:
        if event.kind == "question" and event.done == 3:
            raise KeyboardInterrupt

    run = run_eval(
        QUESTIONS,
        configs=configs(["bm25", "hybrid"]),
        settings=sample_index,
        out_dir=tmp_path / "out",
        progress=interrupt_after_three,
        top_k=FEW,
    )
    assert run.partial
    assert len(run.results_path.read_text().splitlines()) == len(run.rows) == 3
    summary = json.loads(run.summary_path.read_text())
    assert summary["partial"] is True
    assert summary["questions_scored"] == 1  # the second question finished in bm25 only
    assert summary["metrics"]["bm25/extractive"]["questions"] == 1
    assert "Partial run" in run.report_path.read_text()
    assert any("interrupted after 3 of 60 answers" in w for w in run.warnings)


def test_evidence_text_never_reaches_the_system(
    sample_index: Settings, fake_llm: FakeOpenAI, tmp_path: Path
) -> None:
    fake_llm.script(Reply("Assad visited Moscow on October 20 [1]."))
    questions = write(tmp_path / "qs.jsonl", line(evidence_text="SECRET-EVIDENCE-7731") + "\n")
    settings = get_settings(
        data_dir=sample_index.index.data_dir, openai_base_url=fake_llm.base_url, llm_max_retries=0
    )
    run = run_eval(
        questions,
        configs=[Config("hybrid", "openai-compatible:test-model")],
        settings=settings,
        out_dir=tmp_path / "out",
        progress=lambda e: None,
        top_k=FEW,
    )
    (request,) = fake_llm.requests
    sent = json.dumps(request["body"])
    assert "When did Assad visit Moscow?" in sent and "SECRET-EVIDENCE-7731" not in sent
    metrics = run.summary["metrics"]["hybrid/openai-compatible:test-model"]
    assert metrics["prompt_tokens_mean"] == 100
    assert "| prompt tokens (mean) | 100.0 |" in run.report_path.read_text()


def test_command_line(sample_index: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    questions = write(tmp_path / "qs.jsonl", line() + "\n")
    args = [str(questions), "--data-dir", str(sample_index.index.data_dir), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--retriever", "bm25,hybrid", "--no-as-of", "--top-k", "8"])
    assert result.exit_code == 0, result.output
    assert "hybrid/extractive" in result.output and "report:" in result.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["as_of"] is False
    result = runner.invoke(app, [*args, "--retriever", "bm42"])
    assert result.exit_code == 2 and "unknown retriever bm42" in result.output
