"""Question sets: load a JSONL file into validated questions, reporting every bad line.

``load_questions(path) -> QuestionSet`` is the entry point.  The format is the RealTime QA one
described in ../shared/data/README.md (every field but ``id`` and ``question`` optional), plus
``answerable: false`` for a question the system must refuse.  A malformed line, an unknown field
or a duplicate id is skipped with a ``Problem`` naming its line; the rest of the set loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from assistant.errors import InputError


class Question(BaseModel):
    """One evaluation question. ``evidence_text`` is for people reading results, not the system."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Unique within the set.")
    question: str = Field(min_length=1, description="What is asked, verbatim.")
    answers: list[str] = Field(
        default_factory=list, description="Accepted answers, scored by normalised containment."
    )
    choices: list[str] = Field(default_factory=list, description="Multiple-choice options.")
    as_of: date | None = Field(
        None, description="The day it was asked: articles published later are not used."
    )
    relevant_doc_ids: list[str] = Field(
        default_factory=list, description="Articles whose text contains the answer."
    )
    gold_doc_ids: list[str] = Field(
        default_factory=list, description="The quiz's own linked source article, where known."
    )
    evidence_text: str | None = Field(
        None, description="The quiz's explanation of the answer; only for reading results."
    )
    source: str | None = Field(None, description="Where the question comes from.")
    answerable: bool = Field(True, description="False: the articles do not answer it; refuse.")

    _line: int = PrivateAttr(0)

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if not self.answerable and self.answers:
            raise ValueError("an unanswerable question ('answerable': false) lists answers")
        return self

    @property
    def line(self) -> int:
        """The line of the question file this question was read from (0 if built in code)."""
        return self._line


@dataclass
class Problem:
    """Something wrong with the input, located by file and line."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass
class QuestionSet:
    """The questions that loaded, and a problem for every line that did not."""

    path: Path
    questions: list[Question] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def load_questions(path: str | Path) -> QuestionSet:
    """Read a JSONL question file. Raises InputError only when the file itself is unusable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"question file not found: {path}",
            hint="give a JSONL file with one question per line (see evals/questions.jsonl)",
        )
    result = QuestionSet(path=path)
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            question = _parse(line, number, path, result.problems)
            if question is None:
                continue
            if question.id in seen:
                result.problems.append(
                    Problem(
                        str(path),
                        number,
                        f"duplicate id {question.id!r} (first on line {seen[question.id]}); "
                        "skipped",
                    )
                )
                continue
            seen[question.id] = number
            result.questions.append(question)
    return result


def _parse(line: str, number: int, path: Path, problems: list[Problem]) -> Question | None:
    def skip(message: str) -> None:
        problems.append(Problem(str(path), number, f"{message}; line skipped"))

    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        skip(f"malformed JSON ({exc.msg} at column {exc.colno})")
        return None
    if not isinstance(record, dict):
        skip(f"expected a JSON object, got {type(record).__name__}")
        return None
    try:
        question = Question.model_validate(record)
    except ValidationError as exc:
        skip(describe(exc))
        return None
    question._line = number
    return question


KNOWN_FIELDS = ", ".join(Question.model_fields)


def describe(exc: ValidationError) -> str:
    """A validation error in words that name the field and say what is accepted."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown field {where!r} (known fields: {KNOWN_FIELDS})")
        elif error["type"] == "missing":
            parts.append(f"missing required field {where!r}")
        elif where:
            parts.append(f"field {where!r}: {error['msg']}")
        else:
            parts.append(error["msg"].removeprefix("Value error, "))
    return "; ".join(parts)


def unknown_ids(
    questions: Iterable[Question], indexed: set[str], source: str, *, corpus_given: bool = False
) -> list[Problem]:
    """A problem for every question naming relevant or gold article ids that are not indexed.

    Such ids are left out of scoring; a question left with none is not scored for retrieval.
    """
    hint = (
        "they are not in the index after ingesting the corpus"
        if corpus_given
        else "ingest the corpus that goes with the questions: --corpus"
    )
    problems = []
    for q in questions:
        parts = []
        for name, ids in (
            ("relevant_doc_ids", q.relevant_doc_ids),
            ("gold_doc_ids", q.gold_doc_ids),
        ):
            missing = list(dict.fromkeys(i for i in ids if i not in indexed))
            if not missing:
                continue
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            scored = "the others are scored" if len(missing) < len(set(ids)) else "none is scored"
            parts.append(f"{name} not indexed: {shown} ({scored})")
        if parts:
            problems.append(
                Problem(source, q.line, f"question {q.id!r}: {'; '.join(parts)}; {hint}")
            )
    return problems
