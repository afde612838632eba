"""Evaluation: run a question set through newsdesk, score it, and write a report people can read.

Entry point: ``run_eval(questions_path, corpus=..., configs=..., settings=..., out_dir=...)``
(``evals.harness``).  ``evals.metrics`` holds the metric functions, ``evals.questions`` the
question format, ``evals.report`` the Markdown report and plots.  From a shell:
``newsdesk eval QUESTIONS.jsonl`` (or ``python -m evals QUESTIONS.jsonl``).  The names below load
on first use, so the `newsdesk` command can register `eval` without loading the harness.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evals.harness import Config, EvalRun, Event, configs, default_out_dir, run_eval
    from evals.metrics import EVAL_TOP_K
    from evals.questions import Question, QuestionSet, load_questions

_HOME = {
    "EVAL_TOP_K": "evals.metrics",
    "Config": "evals.harness",
    "EvalRun": "evals.harness",
    "Event": "evals.harness",
    "Question": "evals.questions",
    "QuestionSet": "evals.questions",
    "configs": "evals.harness",
    "default_out_dir": "evals.harness",
    "load_questions": "evals.questions",
    "run_eval": "evals.harness",
}

__all__ = [
    "EVAL_TOP_K",
    "Config",
    "EvalRun",
    "Event",
    "Question",
    "QuestionSet",
    "configs",
    "default_out_dir",
    "load_questions",
    "run_eval",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'evals' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value
