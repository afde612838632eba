"""The extractive writer: answers with the source sentences that best answer the question.

No model at all: it quotes source sentences and cites them.  The default when no LLM is
configured, and the fallback when the LLM fails.  Chosen through ``assistant.llm.WRITERS``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Literal

from assistant.chat_model import ChatEvent, ChatModel, TextDelta
from assistant.models import CANNOT_ANSWER, Source
from index.timex import Mention

if TYPE_CHECKING:
    from index.embeddings import Embedder


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


class ExtractiveWriter:
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
    chat_model: ChatModel | None = None

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

    def write(
        self, question: str, sources: Sequence[Source], *, as_of: date | None = None
    ) -> Iterator[ChatEvent]:
        """The chosen sentences with their markers, or the cannot-answer sentinel, in one piece."""
        yield TextDelta(self.answer(question, sources))

    def answer(self, question: str, sources: Sequence[Source]) -> str:
        """The chosen sentences with their markers, or the cannot-answer sentinel."""
        ranked = [t for t in self.rank(question, sources) if t[0] >= self.threshold]
        how_much = bool(_HOW_MUCH.search(question))
        if how_much:  # only a sentence that states a quantity can answer
            ranked = [t for t in ranked if _QUANTITY.search(sources[t[1]].sentences[t[2]].text)]
        if not ranked:
            return CANNOT_ANSWER
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
        return " ".join(parts)

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
