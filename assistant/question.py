"""What a question asks for, what it already names, and where a sentence holds such an answer.

``analyse(question) -> Question`` reads the asking sentence (the last one ending in "?", since
news-quiz questions open with context) with rules over its wh-word and head noun:

- "when", "what year/day/date" → ``date``; "how many/much", "what percentage" → ``number``;
- "who" → ``person`` (or an organisation: "who won" is often a team); "where",
  "which country/city" → ``place``; "which company/agency/team" → ``org``;
  "which president/actor" → ``person``; any other "which/what NOUN" or "what is the name" →
  ``thing`` (any named entity);
- anything else ("why", "how did", "what happened") asks for no particular kind (``None``);
- "what did X say" also records X as the ``speaker`` the answer must quote.

``spans(question, sentence)`` gives the spans of the asked-for kind in a sentence that the
question does not already name.  Dates come from ``index.timex`` (the mentions stored with
each sentence) and numbers from a pattern, so those questions never load a model; the other
kinds use the named entities of ``assistant.entities`` (spaCy, loaded on first need).

``asked_words(question)`` are the roots (lemma, then stem: "ran" and "run" meet) of what the
question asks about, leaving out names, framing ("did", "this week") and the answer's type
noun ("which state"); ``event_words`` are those its article's title does not already hold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import pairwise
from typing import Literal

from index.timex import Mention

Kind = Literal["date", "number", "person", "org", "place", "thing"]

LABELS: dict[str, frozenset[str]] = {
    "date": frozenset({"DATE", "TIME"}),
    "number": frozenset({"CARDINAL", "MONEY", "PERCENT", "QUANTITY"}),
    "person": frozenset({"PERSON"}),
    "org": frozenset({"ORG"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "thing": frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "PRODUCT", "EVENT",
                        "WORK_OF_ART", "LAW", "LANGUAGE"}),
}
"""The spaCy entity labels that answer each kind."""

_HEADS: dict[str, Kind] = {}
for _head_kind, _words in {
    "person": "person people man woman men women president leader actor actress singer star "
    "player athlete rapper musician artist author writer ceo executive senator politician "
    "candidate judge justice official minister governor king queen prince princess celebrity "
    "comedian host director founder chancellor coach quarterback pope billionaire lawmaker "
    "lawmakers rep representative secretary chief spokesperson anchor journalist son daughter "
    "mother father wife husband winner star's individual figure",
    "org": "company companies agency agencies organization organizations organisation group "
    "groups team teams party parties network networks firm firms bank banks brand brands "
    "retailer retailers airline airlines automaker automakers university universities college "
    "school union outlet outlets newspaper newspapers publication league club corporation "
    "manufacturer startup chain restaurant store stores department ministry committee court "
    "government governments charity business businesses carrier studio label broadcaster "
    "giant maker service platform",
    "place": "country countries city cities state states region regions town towns island "
    "islands continent nation nations province county capital location place area village "
    "district neighborhood territory airport port site venue stadium park river sea ocean "
    "mountain border",
    "date": "day date year month decade weekday time",
    "number": "number amount percentage percent price cost age total figure share rate",
    "thing": "product show series film movie app disease drug vaccine book song album game "
    "sport word phrase animal species car vehicle model technology device bill law event "
    "holiday award title character dish food drink",
}.items():
    for _word in _words.split():
        _HEADS[_word] = _head_kind  # type: ignore[assignment]

_SENTENCE_BREAK = re.compile(r"(?<=[.!?:])\s+(?=[\"“A-Z])")
_WORD = re.compile(r"[\w'’-]+")
_AUX = frozenset(
    ["is", "are", "was", "were", "did", "does", "do", "has", "have", "had", "will", "would", "can", "could", "should", "may", "might", "be", "been", "being"]
)
_SAY = re.compile(
    r"\bwhat did (?P<who>.+?) (?:say|said|tell|write|tweet|claim|announce|argue|warn)\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:[A-Z][\w'’.-]*|of|de|al|bin|van|von)){0,4}")
_HOW_MANY = re.compile(r"\bhow many\s+(?P<what>(?:[\w'’-]+\s*){1,5})", re.IGNORECASE)
_WH = frozenset(["what", "which", "who", "whom", "whose", "when", "where", "why", "how"])
_PREPOSITIONS = frozenset(["of", "in", "on", "at", "to", "for", "from", "by", "with", "after", "before", "during", "since"])
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_RECENT = re.compile(
    rf"\b(?:(?:this|last|past)\s+(?:week|weekend)|this\s+past\s+(?:week|weekend)|today|"
    rf"yesterday|(?:on|this|last)\s+{_WEEKDAY})\b", re.IGNORECASE)
_NAME_OF = re.compile(r"\bnames?\b|\bcalled\b", re.IGNORECASE)
_HOW = {"many": "number", "much": "number", "long": "number", "old": "number", "far": "number",
        "tall": "number", "big": "number", "high": "number", "large": "number"}

SPEAKING = (
    r"(?:said|says|say|told|tells|added|adds|stated|states|wrote|writes|tweeted|posted|"
    r"argued|argues|warned|warns|insisted|insists|noted|notes|declared|declares|announced|"
    r"explained|explains|asked|asks|urged|urges|claimed|claims|acknowledged|admitted|replied|"
    r"responded|called|described|stressed|suggested|continued|recalled|testified|remarked)"
)


@dataclass(frozen=True)
class Question:
    """A question analysed: what it asks for and what it already names."""

    text: str
    kind: Kind | None = None
    """What a right answer is: a date, a number, a person, ...; None when no one kind is."""
    named: frozenset[str] = field(default_factory=frozenset)
    """Lower-cased words the question itself uses (a span made only of these is not new)."""
    speaker: str | None = None
    """For "what did X say": X, who must appear in the answer as a speaker."""
    plural: bool = False
    """Asks for several ("which agencies"), so a list may answer."""
    counted: frozenset[str] = field(default_factory=frozenset)
    """For "how many X": stems of X's words; a number answers only when one follows it."""
    head: str | None = None
    """The noun that named the kind ("state" in "which state"), if one did."""
    recent: bool = False
    """Places what it asks about in the last days ("this week", "on Tuesday", "yesterday"):
    an article from months before cannot report it."""

    @property
    def needs_entities(self) -> bool:
        """Whether answering needs the NER model (dates and numbers do not)."""
        return self.kind not in (None, "date", "number")


def asking(question: str) -> str:
    """The asking sentence of ``question``: the last one holding a "?" (news-quiz questions
    open with context), else its last sentence."""
    parts = [p for p in _SENTENCE_BREAK.split(question.strip()) if p.strip()]
    return ([p for p in parts if "?" in p] or parts or [question])[-1]


def analyse(question: str) -> Question:
    """What ``question`` asks for and what it names; see the module docstring."""
    ask = asking(question)
    named = frozenset(w.lower() for w in _WORD.findall(question))
    speaker = None
    if match := _SAY.search(ask):
        who = match["who"].strip()
        if _NAME.fullmatch(who):
            speaker = who
    kind, plural, head = _kind_and_head(ask)
    counted: frozenset[str] = frozenset()
    if match := _HOW_MANY.search(ask):
        words = []
        for word in _WORD.findall(match["what"].lower()):
            if word in _AUX or word in _PREPOSITIONS:
                break
            words.append(word)
            if _plural(word):  # "how many astronauts flew aboard Orion": astronauts only
                break
        counted = frozenset(stem(w) for w in words if w not in stop_words())
    return Question(text=question, kind=kind, named=named, speaker=speaker, plural=plural,
                    counted=counted, head=head, recent=bool(_RECENT.search(question)))


_PLURALS = frozenset(["people", "children", "men", "women", "police", "staff", "feet", "teeth",
                      "mice", "geese", "cattle", "personnel", "crew"])


def _plural(word: str) -> bool:
    """Whether ``word`` looks like a plural noun: what a "how many" question counts ends
    there ("astronauts" in "how many astronauts flew aboard Orion")."""
    return word in _PLURALS or (word.endswith("s") and not word.endswith(("ss", "us", "is")))


def _kind(ask: str) -> tuple[Kind | None, bool]:
    """The kind the first wh-word of ``ask`` asks for, and whether it asks for several."""
    kind, plural, _ = _kind_and_head(ask)
    return kind, plural


def _kind_and_head(ask: str) -> tuple[Kind | None, bool, str | None]:
    """``_kind``, and the head noun that named the kind ("state" in "which state"), if any."""
    words = [w.lower() for w in _WORD.findall(ask)]
    for n, word in enumerate(words):
        after = words[n + 1 : n + 6]
        if word == "when":
            return "date", False, None
        if word == "how":
            return (_HOW.get(after[0]) if after else None), False, None  # type: ignore[return-value]
        if word == "where":
            return "place", False, None
        if word in ("who", "whom", "whose"):
            return "person", bool(after) and after[0] in ("are", "were"), None
        if word in ("which", "what"):
            if word == "what" and n >= 1 and words[n - 1] == "by" and after[:1] == ["how"]:
                continue
            for m, next_word in enumerate(after):
                if next_word in _AUX or (m and next_word in ("of", "in", "to", "for", "from")):
                    break
                head = next_word.removesuffix("'s").removesuffix("’s")
                if head in _HEADS:
                    return _HEADS[head], head.endswith("s") and not head.endswith("ss"), next_word
                if head.endswith("s") and head[:-1] in _HEADS:
                    return _HEADS[head[:-1]], True, next_word
                if head.endswith("ies") and head[:-3] + "y" in _HEADS:
                    return _HEADS[head[:-3] + "y"], True, next_word
            if word == "which" or not after or _NAME_OF.search(ask):
                return "thing", False, None
            return None, False, None
    return None, False, None


# --- spans of the asked-for kind in a sentence ------------------------------------------------

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundreds?|thousands?|millions?|billions?|trillions?|dozens?|half|twice|double|triple"
)
_NUMBER = re.compile(
    rf"(?<![\w-])(?:[$€£¥]\s?)?(?:\d[\d,]*(?:\.\d+)?|(?:{_NUMBER_WORDS})(?:[- ](?:{_NUMBER_WORDS}))*)"
    rf"(?:\s?(?:%|percent|per cent|million|billion|trillion|thousand|hundred))?(?![\w-])",
    re.IGNORECASE,
)
_YEARLIKE = re.compile(r"^(?:1[89]|20)\d\d$")


def number_spans(sentence: str, taken: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Quantities stated in ``sentence``: standalone numbers, not parts of names ("SU-25",
    "COVID-19"), not years and not inside a date expression (``taken``: sentence offsets)."""
    out = []
    for match in _NUMBER.finditer(sentence):
        start, end = match.span()
        text = match.group(0)
        if _YEARLIKE.match(text) or any(a <= start < b for a, b in taken):
            continue
        out.append((start, end))
    return out


def _counts(after: str, counted: frozenset[str]) -> bool:
    """Whether one of the (next four) words after a number is what the question counts."""
    return any(stem(w.lower()) in counted for w in _WORD.findall(after)[:4])


def stem(word: str) -> str:
    """The English Snowball stem of a lower-cased word (as bm25s indexes it)."""
    return _stemmer().stemWord(word)


@cache
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def date_spans(sentence_start: int, dates: Sequence[Mention]) -> list[tuple[int, int]]:
    """The date expressions of a sentence (timex mentions are article offsets)."""
    return [(m.start - sentence_start, m.end - sentence_start) for m in dates]


def is_new(question: Question, text: str) -> bool:
    """Whether a span names something the question does not: a word the question does not
    use, and no name it uses ("Sergei Lavrov" is not new to a question about Lavrov)."""
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in stop_words()] or words
    names = {w.lower() for w in _WORD.findall(question.text) if w[0].isupper()} - stop_words()
    return any(w not in question.named for w in content) and not any(w in names for w in content)


_SCAFFOLD = _AUX | frozenset(
    ["do", "does", "done", "week", "weekend", "recent", "recently", "now", "currently", "today",
     "according", "reportedly", "reported", "say", "said", "new", "latest", "up", "down", "out",
     "off", "over", "about", "into", "onto", "through", "under", "against", "between", "among",
     "within", "without", "upon", "toward", "towards", "across", "around", "ahead", "also",
     "most", "more", "many", "much", "some", "any", "all", "only", "other", "others", "such",
     "very", "each", "every"]) | _PREPOSITIONS
"""Words a news-quiz question uses to frame the ask ("did", "this week", "recently"), not to
say what it asks about."""


@lru_cache(maxsize=100_000)
def root(word: str) -> str:
    """The Snowball stem of a lower-cased word's lemma: irregular forms are first mapped by
    the entity model's lemma tables ("ran" → "run", "began" → "begin"), then stemmed."""
    from assistant.entities import lemma_exceptions

    return stem(lemma_exceptions().get(word, word))


def roots(text: str) -> set[str]:
    """``root`` of every word of ``text``."""
    return {root(w.lower()) for w in _WORD.findall(text)}


def asked_words(question: Question) -> frozenset[str]:
    """Roots of the asking sentence's own words that are not names, stop words or framing
    ("succeeded", "reopen", "injured"): what it asks about, which a sentence answering it
    usually repeats."""
    ask = _SENTENCE_BREAK.split(question.text.strip())[-1]
    head = _kind_and_head(ask)[2]  # the answer's type ("which state"), not what it is about
    words = [w for w in _WORD.findall(ask) if w[0].islower() and w.lower() not in stop_words()
             and w.lower() not in _WH and w.lower() not in _SCAFFOLD and w.lower() != head]
    return frozenset(root(w.lower()) for w in words)


def focus(asked: frozenset[str], sentence: str) -> float:
    """The share of ``asked`` (``asked_words``) that ``sentence`` uses."""
    if not asked:
        return 0.0
    return len(asked & roots(sentence)) / len(asked)


def event_words(asked: frozenset[str], title: str) -> frozenset[str]:
    """The asked words its article's title does not hold: what the question asks about beyond
    the story's topic ("reopen", "wake" in questions about a fire or a lander's landing)."""
    return asked - roots(title)


def spans(
    question: Question,
    sentence: str,
    *,
    sentence_start: int = 0,
    dates: Sequence[Mention] = (),
    ents: Sequence[tuple[int, int, str]] = (),
) -> list[tuple[int, int]]:
    """Spans (offsets into ``sentence``) of the kind ``question`` asks for that it does not name.

    ``dates`` are the sentence's timex mentions (article offsets; ``sentence_start`` maps them);
    ``ents`` its named entities (``assistant.entities``), needed only when
    ``question.needs_entities``.
    """
    if question.kind is None:
        return []
    if question.kind == "date":
        found = date_spans(sentence_start, dates)
        found += [(a, b) for a, b, label in ents if label in LABELS["date"]]
    elif question.kind == "number":
        found = number_spans(sentence, date_spans(sentence_start, dates))
        if question.counted:  # "how many people": a number of people, not of anything else
            found = [(a, b) for a, b in found if _counts(sentence[b:], question.counted)]
    else:
        labels = LABELS[question.kind]
        if question.kind == "person" and not question.plural and not _person_role(question.text):
            labels = labels | LABELS["org"]  # "who won" is as often a team or a company
        if question.kind == "place" and question.head in _POLITIES:
            labels = frozenset({"GPE"})  # a city or a country, not a sea or a building
        found = [_trimmed(sentence, a, b) for a, b, label in ents if label in labels]
        dateline = _DATELINE.match(sentence)
        if dateline:  # "WASHINGTON –", "(CNN)": where the story was filed, not an answer
            found = [(a, b) for a, b in found if a >= dateline.end()]
    unique = sorted(set(found))
    return [(a, b) for a, b in unique if b > a and is_new(question, sentence[a:b])]


_POLITIES = frozenset(["country", "countries", "city", "cities", "state", "states", "nation",
                       "nations", "town", "towns", "province", "provinces", "county",
                       "counties", "capital", "capitals"])
_DATELINE = re.compile(
    r"^\s*(?:\((?:[A-Z][\w.]*\s?)+\)|[A-Z][A-Z.'’]+(?:[ ,]+[A-Z][A-Za-z.'’]+){0,3}\s*"
    r"(?:\([A-Za-z. ]+\))?\s*[—–-])")
_EDGE = re.compile(r"^[\s\-–—:;,.\"“”'‘]+|(?:['’]s|[\s\-–—:;,\"“”'’])+$")


def _trimmed(sentence: str, start: int, end: int) -> tuple[int, int]:
    """An entity span without the punctuation or possessive NER sometimes includes
    ("– Northeastern University’s" → "Northeastern University")."""
    text = sentence[start:end]
    lead = _EDGE.match(text)
    if lead:
        start += lead.end()
    tail = _EDGE.search(sentence[start:end])
    if tail:
        end = start + tail.start()
    return start, end


def _person_role(question: str) -> bool:
    """Whether the asking sentence names a person's role ("as prime minister", "which
    actor"): then a "who" answer is a person, never an organisation."""
    ask = _SENTENCE_BREAK.split(question.strip())[-1]
    return any(_HEADS.get(w.lower()) == "person" for w in _WORD.findall(ask))


def list_span(sentence: str, found: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """The span of an enumeration of several found spans ("AFP, Reuters, Interfax, and AP"):
    from the first to the last of a run joined only by commas and "and"/"or"; None without one."""
    best: tuple[int, int] | None = None
    run = [found[0]] if found else []
    for prev, cur in pairwise(found):
        if re.fullmatch(r"\s*(?:,\s*)?(?:(?:and|or|&)\s+)?", sentence[prev[1]:cur[0]]):
            run.append(cur)
        else:
            run = [cur]
        if len(run) >= 2 and (best is None or run[-1][1] - run[0][0] > best[1] - best[0]):
            best = (run[0][0], run[-1][1])
    return best


def speaks(speaker: str, sentence: str) -> bool:
    """Whether ``speaker`` (or their surname) is quoted or reported as saying something here."""
    surname = re.escape(speaker.split()[-1])
    name = rf"(?:{re.escape(speaker)}|{surname})"
    return bool(
        re.search(rf"\b{name}\b(?:[^.;:\"“”]{{0,60}}?)\b{SPEAKING}\b", sentence)
        or re.search(rf"\b{SPEAKING}\s+(?:[A-Z][\w.-]*\s+){{0,4}}{name}\b", sentence)
        or re.search(rf"\b[Aa]ccording to\s+(?:[\w.-]+\s+){{0,4}}{name}\b", sentence)
    )


@cache
def stop_words() -> frozenset[str]:
    from index.keyword_tables import stop_words as keyword_stop_words

    return keyword_stop_words()
