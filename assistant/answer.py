"""Where a question becomes a cited answer: (condense →) retrieve → write → enforce citations.

``Assistant`` is the Python API that the CLI, the HTTP service and the chat UI all call:

- ``ask(question, filters) -> Answer`` and ``stream(question, filters)`` (``StreamEvent``: the
  draft's text deltas, ``reset`` when the LLM failed mid-answer, then the final, checked
  ``Answer``);
- ``chat(messages, filters) -> Answer`` and ``chat_stream(messages, filters)``: the last user
  message of a conversation, made standalone with the turns before it, then answered;
- ``timeline(query, filters) -> Timeline``: dated, cited events in order.

``filters`` is ``assistant.retrieve.Filters``; faces build it with
``assistant.filters.make_filters``, which turns bad input into an ``InputError``.  The core
decides everything an answer says about itself: ``Answer.fallback`` (why the configured LLM did
not write it) and ``Answer.searched`` (the standalone question retrieval used).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.chat_model import ChatEvent, ChatModel, TextDelta, Usage
from assistant.citations import enforce
from assistant.errors import ArticleNotFound, LLMError
from assistant.extractive import ExtractiveText
from assistant.filters import make_filters
from assistant.followup import Message, condense, split_conversation
from assistant.llm import ExtractiveWriter, LLMChoice, Writer, extractive_writer, get_writer
from assistant.models import (
    Answer,
    ShortAnswer,
    Source,
    SourceSentence,
    StreamEvent,
    Timeline,
    TimelineEvent,
    TimelineSource,
)
from assistant.retrieve import Filters, retrieve
from assistant.settings import Settings, get_settings
from index.embeddings import Embedder, get_embedder
from index.store import Store, open_store
from index.timex import Mention

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
        writer: Writer | None = None,
    ) -> None:
        """Each dependency defaults to what ``settings`` (default: the environment) configure.

        ``writer`` writes the answers (``assistant.llm.get_writer``); its chat model, if any,
        also condenses follow-ups. Raises ConfigError for an unusable configuration.
        """
        self.settings = settings or get_settings()
        self.store = store or open_store(self.settings)
        self.embedder = embedder or get_embedder(self.settings)
        self.writer = writer or get_writer(self.settings, self.embedder)
        self.chat_model: ChatModel | None = self.writer.chat_model
        # What answers when the LLM fails, and what ranks sentences for timelines.
        self.extractive: ExtractiveWriter = extractive_writer(
            LLMChoice("extractive"), self.settings, self.embedder
        )

    @property
    def llm(self) -> Writer:
        """The old name of ``writer``."""
        return self.writer

    def ask(
        self,
        question: str,
        filters: Filters | None = None,
        *,
        retriever: str | None = None,
        **legacy: Any,
    ) -> Answer:
        """Answer ``question`` from the indexed articles, every sentence cited.

        ``filters`` limits the articles drawn on (build it with ``assistant.filters.make_filters``);
        ``retriever`` overrides the configured retrieval mode. The old keyword filters
        (``outlets``, ``since``, ``until``, ``as_of``) are still accepted instead of ``filters``.
        Raises NothingIndexed when the index is empty and InputError for impossible filters; an
        LLM failure is not raised but answered extractively, with ``Answer.fallback`` saying why.
        """
        return _final(self.stream(question, filters, retriever=retriever, **legacy))

    def chat(
        self,
        messages: Sequence[Message],
        filters: Filters | None = None,
        *,
        retriever: str | None = None,
    ) -> Answer:
        """Answer the last user message of a conversation (OpenAI-style role/content messages).

        The message is first rewritten into a standalone question with the turns before it
        (``assistant.followup.condense``: this assistant's chat model when one is configured,
        else the rule); retrieval and writing use that question, which the answer reports in
        ``searched`` when it differs from the user's words. Raises InputError when no user
        message has text.
        """
        return _final(self.chat_stream(messages, filters, retriever=retriever))

    def chat_stream(
        self,
        messages: Sequence[Message],
        filters: Filters | None = None,
        *,
        retriever: str | None = None,
    ) -> Iterator[StreamEvent]:
        """Like ``chat``, as events: text deltas (and ``reset``), then the final answer.

        Nothing runs until the first event is asked for; errors are raised from there.
        """
        history, question = split_conversation(messages)
        standalone = condense(history, question, settings=self.settings, chat_model=self.chat_model)
        yield from self._answer(question, standalone, filters, retriever)

    def stream(
        self,
        question: str,
        filters: Filters | None = None,
        *,
        retriever: str | None = None,
        **legacy: Any,
    ) -> Iterator[StreamEvent]:
        """Like ``ask``, yielding text deltas as they are written, then the final answer.

        The deltas are the writer's draft, before its citations are checked; the final
        ``answer`` carries the checked text, which drops every sentence without a supporting
        citation (``Answer.dropped``), so a face shows ``answer.text`` once it arrives.  If the
        LLM fails after text was streamed, a ``reset`` event tells the client to discard it
        before the extractive fallback's text arrives. Bad filters raise InputError at once;
        everything else runs when the first event is asked for.
        """
        question = question.strip()
        return self._answer(question, question, _filters(filters, legacy), retriever)

    def _answer(
        self, question: str, searched: str, filters: Filters | None, retriever: str | None
    ) -> Iterator[StreamEvent]:
        started = time.perf_counter()
        filters = filters or Filters()
        retrieval = retrieve(
            searched, filters, mode=retriever, settings=self.settings, store=self.store,
            embedder=self.embedder,
        )
        timings = {"retrieval": time.perf_counter() - started, **retrieval.timings}
        sources = self._sources(retrieval)

        writer: Writer = self.writer
        warnings: list[str] = []
        fallback: str | None = None
        draft = _Draft()
        started = time.perf_counter()
        try:
            yield from draft.take(writer.write(searched, sources, as_of=filters.as_of))
            if not draft.text.strip():
                raise LLMError(f"{writer.name} returned an empty reply")
        except LLMError as exc:
            fallback = str(exc)
            warnings.append(f"{exc}; answered extractively instead")
            if draft.text:
                yield StreamEvent(type="reset")
            writer, draft = self.extractive, _Draft()
            yield from draft.take(writer.write(searched, sources, as_of=filters.as_of))
        timings["generation"] = time.perf_counter() - started

        started = time.perf_counter()
        enforced = enforce(
            draft.text, sources, self.support, threshold=self.settings.writer.support_threshold,
            pieces=draft.pieces,
        )
        timings["citations"] = time.perf_counter() - started
        notice = None
        if writer.mode == "extractive":
            notice = EXTRACTIVE_NOTICE if fallback is None else "Extractive answer: " + warnings[0]
        answer = Answer(
            question=question,
            text=enforced.text,
            sentences=enforced.sentences,
            citations=enforced.citations,
            mode=writer.mode,
            model=writer.name,
            refused=enforced.refused,
            short_answer=None if enforced.refused else draft.short_answer,
            notice=notice,
            fallback=fallback,
            searched=searched if searched != question else None,
            warnings=warnings + enforced.warnings,
            dropped=enforced.dropped,
            sources=sources,
            timings={k: round(v, 4) for k, v in timings.items()},
            usage=draft.usage,
        )
        yield StreamEvent(type="answer", answer=answer)

    def timeline(
        self,
        query: str,
        filters: Filters | None = None,
        *,
        limit: int = 15,
        **legacy: Any,
    ) -> Timeline:
        """The dated events relevant to ``query``, ordered, one cited sentence each.

        Sentences that date something (see ``index.timex``) are taken from the best chunks,
        ranked by relevance to the query like extractive answers, and ordered by date; the same
        event told by several articles (same date, similar sentence) becomes one line listing
        all its sources. ``filters`` (or the old keyword filters) limit the articles drawn on.
        """
        started = time.perf_counter()
        filters = _filters(filters, legacy)
        retrieval = retrieve(
            query, filters, k=max(30, self.settings.retrieval.top_k), settings=self.settings,
            store=self.store, embedder=self.embedder,
        )
        sources = self._sources(retrieval)
        floor = self.settings.writer.extractive_threshold * 0.8
        picked: list[tuple[float, Source, SourceSentence, Mention]] = []
        seen: set[tuple[str, int]] = set()
        for score, i, j in self.extractive.rank(query, sources):
            if score < floor or len(picked) >= 3 * limit:
                break
            source, sentence = sources[i], sources[i].sentences[j]
            mention = _event_date(sentence.dates)
            if mention is None or (source.article_id, sentence.start) in seen:
                continue
            seen.add((source.article_id, sentence.start))
            picked.append((score, source, sentence, mention))
        events: list[TimelineEvent] = []
        texts: list[str] = []
        for score, source, sentence, mention in picked:
            cite = TimelineSource(
                **source.quoting(sentence), expression=mention.text, how=mention.note
            )
            same = [
                n for n, e in enumerate(events)
                if e.date == mention.iso() and self.support([sentence.text], [texts[n]])[0][0]
                >= self.settings.writer.timeline_support
            ]
            if same:
                if all(s.article_id != source.article_id for s in events[same[0]].sources):
                    events[same[0]].sources.append(cite)
                continue
            if len(events) >= limit:
                continue
            events.append(
                TimelineEvent(
                    date=mention.iso(), label=mention.label(), granularity=mention.granularity,
                    inferred=mention.inferred, text=sentence.text, relevance=round(score, 4),
                    sources=[cite],
                )
            )
            texts.append(sentence.text)
        events.sort(key=lambda e: e.date)
        return Timeline(
            query=query, events=events, timings={"total": round(time.perf_counter() - started, 4)}
        )

    def _sources(self, retrieval: Any) -> list[Source]:
        sources = []
        for number, (hit, chunk) in enumerate(retrieval.chunks(self.store), start=1):
            try:
                article = self.store.get_article(chunk.article_id)
                mentions = self.store.mentions(article.id)
            except ArticleNotFound:  # removed while this question was being answered
                continue
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


@dataclass
class _Draft:
    """The answer text as a writer streams it, and the tokens it reports."""

    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    short_answer: ShortAnswer | None = None
    pieces: tuple[str, ...] = ()

    def take(self, events: Iterator[ChatEvent]) -> Iterator[StreamEvent]:
        """Pass the writer's text on as delta events, keeping the text and the usage."""
        for event in events:
            match event:
                case TextDelta(text=piece):
                    self.text += piece
                    if isinstance(event, ExtractiveText):
                        self.short_answer = event.short_answer
                        self.pieces = event.pieces
                    yield StreamEvent(type="delta", text=piece)
                case Usage():
                    self.usage = event.as_dict()


def _event_date(dates: list[Mention]) -> Mention | None:
    """The mention that best dates a sentence's event: the most specific one with a month."""
    order = {"day": 0, "week": 1, "month": 2}
    usable = [m for m in dates if m.month]  # a bare year is too coarse to place an event
    return min(usable, key=lambda m: (order[m.granularity], m.kind == "absolute"), default=None)


def _filters(filters: Filters | None, legacy: dict[str, Any]) -> Filters:
    """``filters``, or the old keyword filters (outlets, since, until, as_of) made into one."""
    if not legacy:
        return filters or Filters()
    unknown = set(legacy) - {"outlets", "since", "until", "as_of"}
    if unknown or filters is not None:
        wrong = ", ".join(sorted(unknown)) if unknown else "both filters and keyword filters"
        raise TypeError(f"unexpected keyword arguments: {wrong}")
    return make_filters(**legacy)


def _final(events: Iterator[StreamEvent]) -> Answer:
    """The answer at the end of a stream of events."""
    final: Answer | None = None
    for event in events:
        if event.type == "answer":
            final = event.answer
    assert final is not None, "an answer stream always ends with its answer"
    return final


def ask(question: str, *, settings: Settings | None = None, **filters: Any) -> Answer:
    """One-shot convenience: ``Assistant(settings).ask(question, **filters)``."""
    return Assistant(settings).ask(question, **filters)
