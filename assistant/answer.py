"""Where a question becomes a cited answer: retrieve → generate → enforce citations.

``Assistant(settings).ask(question, outlets=..., since=..., until=..., as_of=...) -> Answer`` and
``Assistant.stream(...)`` (text deltas, then the final ``Answer``) are the Python API that the
CLI, the HTTP service and the chat UI all call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from assistant.citations import enforce
from assistant.errors import LLMError
from assistant.llm import ExtractiveGenerator, Generator, get_generator
from assistant.models import Answer, Source, SourceSentence, StreamEvent
from assistant.retrieve import Filters, retrieve
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder, get_embedder
from index.store import Store, open_store

EXTRACTIVE_NOTICE = (
    "Extractive answer: no language model is configured, so these are the source sentences that "
    "best answer the question, quoted verbatim."
)


class Assistant:
    """Answers questions over one index. Dependencies are passed in; settings are the default."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        llm: Generator | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or open_store(self.settings)
        self.embedder = embedder or get_embedder(self.settings)
        self.llm = llm or get_generator(self.settings, self.embedder)
        self.extractive = (
            self.llm
            if isinstance(self.llm, ExtractiveGenerator)
            else ExtractiveGenerator(self.embedder, threshold=self.settings.extractive_threshold)
        )

    def ask(
        self,
        question: str,
        *,
        outlets: Sequence[str] | None = None,
        since: date | None = None,
        until: date | None = None,
        as_of: date | None = None,
        retriever: str | None = None,
    ) -> Answer:
        """Answer ``question`` from the indexed articles, every sentence cited."""
        final: Answer | None = None
        for event in self.stream(
            question, outlets=outlets, since=since, until=until, as_of=as_of, retriever=retriever
        ):
            if event.type == "answer":
                final = event.answer
        assert final is not None
        return final

    def stream(
        self,
        question: str,
        *,
        outlets: Sequence[str] | None = None,
        since: date | None = None,
        until: date | None = None,
        as_of: date | None = None,
        retriever: str | None = None,
    ) -> Iterator[StreamEvent]:
        """Like ``ask``, yielding text deltas as they are written, then the final answer.

        If the LLM fails after text was streamed, a ``reset`` event tells the client to discard
        it before the extractive fallback's text arrives.
        """
        question = question.strip()
        started = time.perf_counter()
        filters = Filters(
            outlets=list(outlets) if outlets else None, since=since, until=until, as_of=as_of
        )
        retrieval = retrieve(
            question, filters, mode=retriever, settings=self.settings, store=self.store,
            embedder=self.embedder,
        )
        timings = {"retrieval": time.perf_counter() - started, **retrieval.timings}
        sources = self._sources(retrieval)

        generator: Generator = self.llm
        warnings: list[str] = []
        text = ""
        started = time.perf_counter()
        try:
            for piece in generator.generate(question, sources, as_of=as_of):
                text += piece
                yield StreamEvent(type="delta", text=piece)
        except LLMError as exc:
            warnings.append(f"{exc}; answered extractively instead")
            if text:
                yield StreamEvent(type="reset")
            generator, text = self.extractive, ""
            for piece in generator.generate(question, sources, as_of=as_of):
                text += piece
                yield StreamEvent(type="delta", text=piece)
        timings["generation"] = time.perf_counter() - started

        started = time.perf_counter()
        enforced = enforce(
            text, sources, self.support, threshold=self.settings.support_threshold
        )
        timings["citations"] = time.perf_counter() - started
        notice = None
        if generator.mode == "extractive":
            notice = EXTRACTIVE_NOTICE if not warnings else "Extractive answer: " + warnings[0]
        answer = Answer(
            question=question,
            text=enforced.text,
            sentences=enforced.sentences,
            citations=enforced.citations,
            mode=generator.mode,
            model=generator.name,
            refused=enforced.refused,
            notice=notice,
            warnings=warnings + enforced.warnings,
            sources=sources,
            timings={k: round(v, 4) for k, v in timings.items()},
            usage=getattr(generator, "usage", {}) or {},
        )
        yield StreamEvent(type="answer", answer=answer)

    def _sources(self, retrieval: Any) -> list[Source]:
        sources = []
        for number, (hit, chunk) in enumerate(retrieval.chunks(self.store), start=1):
            article = self.store.get_article(chunk.article_id)
            mentions = self.store.mentions(article.id)
            sources.append(
                Source(
                    number=number,
                    chunk_id=chunk.id,
                    article_id=article.id,
                    title=article.title,
                    outlet=article.outlet,
                    published=article.published,
                    url=article.url,
                    score=round(hit.score, 6),
                    dense_rank=hit.dense_rank,
                    keyword_rank=hit.keyword_rank,
                    sentences=[
                        SourceSentence(
                            start=s,
                            end=e,
                            text=article.text[s:e],
                            dates=[m for m in mentions if s <= m.start < e],
                        )
                        for s, e in chunk.sentences
                    ],
                )
            )
        return sources

    def support(self, claims: Sequence[str], evidence: Sequence[str]) -> list[list[float]]:
        """Cosine similarity (clipped to 0..1) of each claim against each evidence sentence."""
        vectors = self.embedder.embed_cached([*claims, *evidence])
        left, right = vectors[: len(claims)], vectors[len(claims) :]
        return [
            [max(0.0, min(1.0, sum(a * b for a, b in zip(c, e, strict=True)))) for e in right]
            for c in left
        ]


def ask(question: str, *, settings: Settings | None = None, **filters: Any) -> Answer:
    """One-shot convenience: ``Assistant(settings).ask(question, **filters)``."""
    return Assistant(settings).ask(question, **filters)
