"""The answer newsdesk gives, as every face (Python, CLI, HTTP, UI) receives it."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from index.timex import Mention

CANNOT_ANSWER = "The articles I have do not answer this question."
"""The one cannot-answer sentinel, shared by the prompt, the code and the tests."""


class SourceSentence(BaseModel):
    """One sentence of a retrieved chunk, addressable in its article."""

    start: int
    end: int
    text: str
    dates: list[Mention] = Field(
        default_factory=list, description="Temporal expressions in the sentence, resolved."
    )


class ArticleRef(BaseModel):
    """Which article something comes from, as every face shows it."""

    article_id: str
    title: str
    outlet: str | None = None
    published: date | None = None
    url: str | None = None

    def quoting(self, sentence: SourceSentence) -> dict[str, object]:
        """The fields of a ``QuotedSpan`` of this article: its reference and the sentence."""
        return {
            **{name: getattr(self, name) for name in ArticleRef.model_fields},
            "quote": sentence.text, "start": sentence.start, "end": sentence.end,
        }


class QuotedSpan(ArticleRef):
    """A verbatim span of an article, at exact offsets."""

    quote: str = Field(description="Exactly article.text[start:end].")
    start: int
    end: int


class Source(ArticleRef):
    """A retrieved chunk offered as evidence, numbered as the answer cites it ([number])."""

    number: int
    chunk_id: str
    score: float = Field(description="Fused retrieval score (higher is better).")
    dense_rank: int | None = None
    keyword_rank: int | None = None
    sentences: list[SourceSentence]

    @property
    def text(self) -> str:
        """The chunk's sentences joined (for prompts and display)."""
        return " ".join(s.text for s in self.sentences)


class Citation(QuotedSpan):
    """One [n] marker of the answer, resolved to the verbatim sentence that supports it."""

    number: int = Field(description="The source number as it appears in the answer text.")
    sentence: int = Field(description="Index of the answer sentence that carries the marker.")
    support: float = Field(description="How well the quote supports the answer sentence, 0..1.")
    supported: bool = Field(description="support is at or above the calibrated threshold.")


class ShortAnswer(BaseModel):
    """The words of a cited sentence that answer the question ("Mexico"), at exact offsets."""

    text: str = Field(description="Exactly article.text[start:end] of the cited article.")
    kind: str = Field(description="What the question asked for: date, number, person, org, "
                      "place or thing.")
    number: int = Field(description="The source number the answer cites for it.")
    article_id: str
    start: int
    end: int


class AnswerSentence(BaseModel):
    """One sentence of the answer with the citations it carries."""

    text: str = Field(description="The sentence without its [n] markers.")
    citations: list[int] = Field(description="Indexes into Answer.citations.")
    supported: bool = Field(description="At least one citation supports it.")


class DroppedSentence(BaseModel):
    """A sentence the writer wrote that the citation check removed from the answer."""

    text: str = Field(description="The sentence without its [n] markers.")
    kind: Literal["uncited", "invalid", "unsupported"] = Field(
        description="'uncited': no marker; 'invalid': its markers name no retrieved source; "
        "'unsupported': no cited source sentence supports it."
    )
    reason: str = Field(description="Why, in words (with the support scores when judged).")


class Answer(BaseModel):
    """A cited answer (or an honest refusal), JSON-serialisable."""

    question: str
    short_answer: ShortAnswer | None = Field(
        None, description="The answer in a few words, when a cited sentence holds the kind of "
        "thing the question asks for (extractive answers); null otherwise.",
    )
    text: str = Field(description="The answer with [n] markers referring to sources.")
    sentences: list[AnswerSentence] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    mode: Literal["llm", "extractive"]
    model: str = Field(description="What wrote the answer: 'extractive' or 'openai:MODEL'.")
    refused: bool = False
    notice: str | None = Field(None, description="Plain words about how the answer was made.")
    fallback: str | None = Field(
        None,
        description="Why the configured language model did not write this answer (it failed, "
        "and the answer is extractive instead); null when it did, or when none is configured.",
    )
    searched: str | None = Field(
        None,
        description="The standalone question retrieval used, when it differs from the user's "
        "words (a follow-up rewritten with the conversation); null otherwise.",
    )
    warnings: list[str] = Field(default_factory=list)
    dropped: list[DroppedSentence] = Field(
        default_factory=list,
        description="Sentences the writer wrote that are not in `text`: each had no valid or no "
        "supporting citation. An answer left with none is a refusal.",
    )
    sources: list[Source] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage.")
    usage: dict[str, int] = Field(default_factory=dict, description="LLM tokens, when used.")

    @property
    def unsupported(self) -> list[AnswerSentence]:
        """Sentences with no supporting citation."""
        return [s for s in self.sentences if not s.supported]


class StreamEvent(BaseModel):
    """One event of a streamed answer: text deltas, then the final answer.

    ``delta`` carries the draft as it is written, before its citations are checked; ``reset``
    means the text so far is void (the language model failed mid-answer; the fallback's text
    follows); ``answer`` comes last, once, with the checked ``Answer``, whose ``text`` is what
    to show: sentences without a supporting citation are not in it (see ``Answer.dropped``).
    """

    type: Literal["delta", "reset", "answer"]
    text: str | None = None
    answer: Answer | None = None


class TimelineSource(QuotedSpan):
    """One article's sentence dating a timeline event."""

    expression: str = Field(description="The words that date it, as written ('on Tuesday').")
    how: str = Field("", description="How the date was worked out.")


class TimelineEvent(BaseModel):
    """A dated event, told by one cited sentence, with every article that reports it."""

    date: str = Field(description="Sortable date, unknown parts as '?': '2015-10-20', '????-10-20'.")
    label: str = Field(description="Readable date: 'October 20, 2015', 'the week of ...'.")
    granularity: str
    inferred: bool = Field(description="Derived from another event, or the year guessed.")
    text: str = Field(description="The sentence that tells the event.")
    relevance: float
    sources: list[TimelineSource]


class Timeline(BaseModel):
    """Dated events relevant to a query, in date order."""

    query: str
    events: list[TimelineEvent]
    timings: dict[str, float] = Field(default_factory=dict)
