"""Evaluation: run a question set through newsdesk, score it, and write a report people can read.

Entry point: ``run_eval(questions_path, corpus=..., configs=..., settings=..., out_dir=...)``
(``evals.harness``).  ``evals.metrics`` holds the metric functions, ``evals.questions`` the
question format, ``evals.report`` the Markdown report and plots.  From a shell:
``newsdesk eval QUESTIONS.jsonl`` (or ``python -m evals QUESTIONS.jsonl``).
"""

from evals.harness import EVAL_TOP_K, Config, EvalRun, Event, configs, default_out_dir, run_eval
from evals.questions import Question, QuestionSet, load_questions

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
