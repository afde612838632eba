"""What writes the answer text, behind one small interface chosen by the ``llm`` setting.

A ``Generator`` turns a question and numbered sources into answer text carrying [n] markers,
streamed in pieces.  Two backends exist:

- ``OpenAIGenerator``: OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM
  Studio) through the ``openai`` client, with the citation-enforcing prompt from ``prompts/``.
- ``ExtractiveGenerator``: no model at all; picks the source sentences that best answer the
  question and cites them.  The default when no LLM is configured, and the fallback when the
  LLM fails.

Adding a backend is one class with ``name``, ``mode`` and ``generate``.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol

from assistant.errors import LLMError
from assistant.models import CANNOT_ANSWER, Source
from assistant.prompts import load_prompts
from index.timex import Mention

if TYPE_CHECKING:
    from assistant.settings import Settings
    from index.embeddings import Embedder


class Generator(Protocol):
    """Writes answer text with [n] citation markers from numbered sources."""

    name: str
    mode: Literal["llm", "extractive"]

    def generate(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[str]:
        """Yield the answer text in pieces. Raises LLMError when the model cannot be used."""
        ...


def render_messages(
    question: str, sources: Sequence[Source], *, as_of: date | None, prompts: dict[str, str]
) -> list[dict[str, str]]:
    """The chat messages for a question: system rules, then numbered sources and the question."""
    blocks = [
        prompts["source"].format(
            number=s.number,
            title=s.title,
            outlet=s.outlet or "unknown outlet",
            published=s.published.isoformat() if s.published else "date unknown",
            text=s.text,
            dates=_dates_note(s),
        ).strip()
        for s in sources
    ]
    system = prompts["answer_system"].format(
        as_of=as_of.isoformat() if as_of else "today", cannot_answer=CANNOT_ANSWER
    )
    user = prompts["answer_user"].format(sources="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _dates_note(source: Source) -> str:
    """The source's resolved dates, one line, for the prompt ('' when there are none)."""
    notes = []
    for sentence in source.sentences:
        for m in sentence.dates:
            if m.kind == "absolute":
                continue
            how = f"; {m.note}" if m.note else ""
            flag = ", inferred" if m.inferred else ""
            notes.append(f'"{m.text}" = {m.label()}{flag}{how}')
    return "\nResolved dates: " + " | ".join(notes) if notes else ""


class OpenAIGenerator:
    """Answers through the OpenAI chat completions protocol, streaming."""

    mode: Literal["llm", "extractive"] = "llm"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        prompts: dict[str, str],
        label: str = "openai",
    ) -> None:
        from openai import OpenAI

        self.name = f"{label}:{model}"
        self.model = model
        self.prompts = prompts
        self._local = threading.local()  # usage is per request; one generator serves many threads
        # Local servers often need no key, but the client insists on one.
        self.client = OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )

    @property
    def usage(self) -> dict[str, int]:
        """Token counts of this thread's latest request."""
        return getattr(self._local, "usage", {})

    def generate(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[str]:
        """Stream the model's answer; every failure becomes an LLMError naming its cause."""
        import openai

        messages = render_messages(question, sources, as_of=as_of, prompts=self.prompts)
        self._local.usage = {}
        try:
            stream = self.client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model,
                messages=messages,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.usage:
                    self._local.usage = {
                        "prompt_tokens": chunk.usage.prompt_tokens,
                        "completion_tokens": chunk.usage.completion_tokens,
                    }
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
        except openai.AuthenticationError:
            raise LLMError(
                f"{self.name} rejected the API key (401)", hint="check OPENAI_API_KEY"
            ) from None
        except openai.RateLimitError:
            raise LLMError(f"{self.name} is rate limited (429) even after retries") from None
        except openai.APITimeoutError:
            raise LLMError(
                f"{self.name} timed out", hint="raise NEWSDESK_LLM_TIMEOUT or check the server"
            ) from None
        except openai.APIConnectionError:
            raise LLMError(
                f"cannot reach {self.name} at {self.client.base_url}",
                hint="check OPENAI_BASE_URL and that the server is running",
            ) from None
        except openai.APIStatusError as exc:
            raise LLMError(f"{self.name} failed with HTTP {exc.status_code}") from None
        except openai.OpenAIError as exc:
            raise LLMError(f"{self.name} failed: {exc}") from None


_HOW_MUCH = re.compile(
    r"\bhow (?:many|much|long|old|far|tall|big|high)\b|"
    r"\bwhat (?:percentage|percent|share|proportion|number|amount)\b|\bby how\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundreds?|thousands?|millions?|billions?|trillions?|dozens?|half|twice|"
    r"once|double|triple)\b",
    re.IGNORECASE,
)
_WH_NAME = re.compile(r"\b(?:which|who|whom|whose|what|where)\b", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][a-zA-Z'’.-]+")


@functools.cache
def _stop_words() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def _names(text: str) -> set[str]:
    """Capitalised words of ``text``, lower-cased, leaving out stop words ("The", "It")."""
    return {w.lower() for w in _NAME.findall(text)} - _stop_words()


_WHEN = re.compile(r"^\s*(when|what (day|date|year|month|time))\b", re.IGNORECASE)
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_EXPLICIT_DATE = re.compile(
    rf"\b(?:{_MONTHS}\s+\d{{1,2}}\b|\d{{1,2}}\s+{_MONTHS}|\b(?:19|20)\d\d\b)", re.IGNORECASE
)
_ANAPHORIC_TIME = re.compile(
    r"\b(?:(?:two|three|four|five|six|seven|\d+|a few|several) (?:days?|weeks?|months?|years?) "
    r"(?:after|before|later|earlier)|the (?:next|following|previous) day|that day|the remarks|"
    r"the (?:visit|meeting|talks|announcement)|then)\b",
    re.IGNORECASE,
)


class ExtractiveGenerator:
    """Answers with the source sentences that best answer the question, each cited.

    Relevance mixes the embedding similarity of question and sentence with how many of the
    question's content words the sentence (or its article's title) contains.  Among sentences
    relevant enough to answer, those of better-ranked articles are preferred: ``source_prior``
    is added for the first article, half of it for the second, and so on (0.4 lifted answer
    correctness on RealTime QA dev from 0.363 to 0.387; 0.1 and 0.2 gave 0.367 and 0.380).  A "when" question
    whose best sentence dates the event only relative to another ("two days after the remarks")
    also gets the nearest earlier sentence of the same article that carries an explicit date.
    A "how many / how much" question is answered only by a sentence that states a quantity.
    A "which / who / what / where" question asks for a name it does not contain, so among
    relevant sentences those naming things the question does not (capitalised words other than
    stop words) get up to ``novelty_bonus`` more (0.2 lifted answer correctness on RealTime QA
    dev from 0.383 to 0.417 in the offline replay recorded in benchmarks/RESULTS.md).  A second
    sentence, from another article, is added when its relevance is at least ``second_ratio`` of
    the first's (0.85 rather than 0.92: 0.417 -> 0.433, with 63% of answers two sentences long).
    """

    name = "extractive"
    mode: Literal["llm", "extractive"] = "extractive"

    def __init__(
        self,
        embedder: Embedder,
        *,
        threshold: float,
        max_sentences: int = 2,
        source_prior: float = 0.4,
        novelty_bonus: float = 0.2,
        second_ratio: float = 0.85,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.source_prior = source_prior
        self.novelty_bonus = novelty_bonus
        self.second_ratio = second_ratio

    def rank(self, question: str, sources: Sequence[Source]) -> list[tuple[float, int, int]]:
        """(relevance, source index, sentence index) for every source sentence, best first."""
        from index.store import KeywordIndex

        cells = [(i, j) for i, s in enumerate(sources) for j in range(len(s.sentences))]
        if not cells:
            return []
        texts = [sources[i].sentences[j].text for i, j in cells]
        vectors = self.embedder.embed_cached([question, *texts])
        q = vectors[0]
        q_words = set(KeywordIndex.tokenize([question], return_ids=False)[0])
        token_lists = KeywordIndex.tokenize(
            texts + [s.title for s in sources], return_ids=False
        )
        titles = token_lists[len(texts):]
        scored = []
        for n, ((i, j), vec) in enumerate(zip(cells, vectors[1:], strict=True)):
            cosine = sum(a * b for a, b in zip(q, vec, strict=True))
            words = set(token_lists[n])
            overlap = len(q_words & words) / len(q_words) if q_words else 0.0
            context = len(q_words & (words | set(titles[i]))) / len(q_words) if q_words else 0.0
            scored.append((0.5 * cosine + 0.3 * overlap + 0.2 * context, i, j))
        scored.sort(key=lambda t: -t[0])
        return scored

    def generate(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[str]:
        """Yield the chosen sentences with their markers, or the cannot-answer sentinel."""
        ranked = [t for t in self.rank(question, sources) if t[0] >= self.threshold]
        how_much = bool(_HOW_MUCH.search(question))
        if how_much:  # only a sentence that states a quantity can answer
            ranked = [t for t in ranked if _QUANTITY.search(sources[t[1]].sentences[t[2]].text)]
        if not ranked:
            yield CANNOT_ANSWER
            return
        order = {a: n for n, a in enumerate(dict.fromkeys(s.article_id for s in sources))}
        asked_names = _names(question)
        asks_name = not how_much and bool(_WH_NAME.search(question))

        def preference(t: tuple[float, int, int]) -> float:
            score, i, j = t
            bonus = self.source_prior * 0.5 ** order[sources[i].article_id]
            if asks_name and self.novelty_bonus:
                names = _names(sources[i].sentences[j].text)
                bonus += self.novelty_bonus * min(len(names - asked_names), 3) / 3
            return score + bonus

        ranked.sort(key=lambda t: -preference(t))  # relevance decided who may answer; now rank
        best_score, i, j = ranked[0]
        picks = [(i, j)]
        best = sources[i].sentences[j].text
        lead = None
        if _WHEN.match(question):
            mention = _when_mention(sources[i].sentences[j].dates)
            if mention is not None:
                lead = _when_lead(mention, best)
            dated = self._anchor_sentence(sources[i], j, mention)
            if dated is None and not _EXPLICIT_DATE.search(best):
                dated = self._dating_sentence(sources[i], j)
            if dated is not None:
                picks.append((i, dated))
        if len(picks) < self.max_sentences:
            for score, i2, j2 in ranked[1:]:
                if score < best_score * self.second_ratio:
                    continue
                text = sources[i2].sentences[j2].text
                if sources[i2].article_id != sources[i].article_id and text != best:
                    picks.append((i2, j2))
                    break
        parts = [f"{sources[a].sentences[b].text} [{sources[a].number}]" for a, b in picks]
        if lead:  # one sentence with its evidence, so the support check sees both together
            parts[0] = f"{lead}: {parts[0]}"
        yield " ".join(parts)

    @staticmethod
    def _anchor_sentence(source: Source, j: int, mention: Mention | None) -> int | None:
        """The sentence of this source that an anchored date was derived from, if present."""
        if mention is None or mention.anchor is None:
            return None
        for k, sentence in enumerate(source.sentences):
            if k != j and sentence.start == mention.anchor[0]:
                return k
        return None

    @staticmethod
    def _dating_sentence(source: Source, j: int) -> int | None:
        """The nearest earlier sentence (within three) of the same chunk with an explicit date."""
        for back in range(j - 1, max(-1, j - 4), -1):
            if _EXPLICIT_DATE.search(source.sentences[back].text):
                return back
        return None


_PREFERENCE = {"anchored": 0, "relative": 1, "partial": 2, "absolute": 3}
_REMARKS = re.compile(
    r"^(?P<who>[A-Z][\w.-]+)\s+(?:made|gave|delivered|issued)\s+(?:the|his|her|their)\s+"
    r"(?P<what>remarks|comments|statement|speech|announcement)\b"
)


def _when_mention(dates: list[Mention]) -> Mention | None:
    """The date that best answers 'when' in a sentence: derived ones first, day-level only."""
    usable = [m for m in dates if m.granularity == "day" and m.month and m.day]
    return min(usable, key=lambda m: _PREFERENCE[m.kind], default=None)


def _when_lead(mention: Mention, sentence: str) -> str | None:
    """'Around October 20 (two days before Putin's October 22 remarks)', or None when the
    sentence already states the date in full."""
    if mention.kind == "absolute":
        return None
    if mention.kind == "anchored":
        how = mention.note
        match = _REMARKS.match(sentence)
        head, _, anchor_day = how.partition(" before ") if " before " in how else how.partition(" after ")
        if match and anchor_day:
            word = "before" if " before " in how else "after"
            how = f"{head} {word} {match['who']}'s {anchor_day} {match['what']}"
        return f"Around {mention.label()} ({how})"
    if mention.kind == "partial" and not mention.inferred:
        return f"On {mention.label()}" if mention.year else None
    return f"On {mention.label()} ({mention.note})" if mention.note else f"On {mention.label()}"


def get_generator(settings: Settings, embedder: Embedder) -> Generator:
    """The generator the settings choose (``llm``: extractive, openai:MODEL, ...)."""
    choice = settings.resolved_llm
    if choice == "extractive":
        return ExtractiveGenerator(
            embedder,
            threshold=settings.writer.extractive_threshold,
            source_prior=settings.writer.source_prior,
            second_ratio=settings.writer.second_sentence_ratio,
        )
    kind, _, model = choice.partition(":")
    return OpenAIGenerator(
        model or settings.writer.llm_model,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=settings.openai_base_url,
        timeout=settings.writer.llm_timeout,
        max_retries=settings.writer.llm_max_retries,
        prompts=load_prompts(settings.writer.prompts_dir),
        label=kind,
    )
