"""Evaluation: run a question set through newsdesk, score it, and write a report people can read.

Entry point: ``evals.harness.run_eval(questions_path, corpus=..., configs=..., settings=...,
out_dir=...)``.  ``evals.metrics`` holds the metric functions, ``evals.questions`` the question
format, ``evals.report`` the Markdown report and plots, ``evals.cli`` the command.  From a shell:
``newsdesk eval QUESTIONS.jsonl`` (or ``python -m evals QUESTIONS.jsonl``).  This package file
imports nothing, so the `newsdesk` command can register `eval` without loading the harness.
"""
