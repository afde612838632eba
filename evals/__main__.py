"""``python -m evals QUESTIONS.jsonl ...``: the same command as ``newsdesk eval``."""

from evals.cli import main

main()
