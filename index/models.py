"""The records ingestion produces: articles, their sentence-addressable chunks, and reports."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class Article(BaseModel):
    """One news article, its text kept exactly as read so sentence offsets stay valid."""

    id: str = Field(description="Stable id: given by the source, or derived from URL or content.")
    title: str
    text: str = Field(description="Full original text; sentence offsets index into it.")
    outlet: str | None = None
    published: date | None = Field(None, description="Publication date, None when unknown.")
    url: str | None = None
    authors: list[str] = Field(default_factory=list)
    source: str | None = Field(None, description="File (and line) the article was read from.")

    def content_hash(self, salt: str = "") -> str:
        """Hash of everything that is indexed, so a changed article is re-indexed."""
        payload = self.model_dump(mode="json", exclude={"source"})
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False) + salt
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class Chunk(BaseModel):
    """A run of consecutive sentences of one article, the unit that is embedded and searched."""

    id: str
    article_id: str
    index: int = Field(description="Position of the chunk within its article, from 0.")
    sentences: list[tuple[int, int]] = Field(
        description="[start, end) offsets of each sentence in the article's text."
    )
    text: str = Field(description="The chunk's own text: article.text[first start:last end].")
    embed_text: str = Field(description="What is embedded: a title/outlet/date header + text.")

    @property
    def start(self) -> int:
        """Offset of the chunk's first character in the article text."""
        return self.sentences[0][0]

    @property
    def end(self) -> int:
        """Offset just past the chunk's last character in the article text."""
        return self.sentences[-1][1]


class Skip(BaseModel):
    """An input that was not ingested, and why."""

    source: str = Field(description="File path, with ':LINE' for one line of a JSONL file.")
    reason: str
    error: bool = Field(True, description="False for benign skips such as an unsupported file.")


Outcome = Literal["added", "updated", "unchanged"]


class IngestReport(BaseModel):
    """What an ingest run did: counts, each skip with its reason, and whether it finished."""

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    skipped: list[Skip] = Field(default_factory=list)
    chunks_written: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def errors(self) -> list[Skip]:
        """Skips caused by bad input (these make the CLI exit non-zero)."""
        return [s for s in self.skipped if s.error]

    def count(self, outcome: Outcome) -> int:
        """How many articles ended with this outcome."""
        return len(getattr(self, outcome))
