"""Dates inside articles: find temporal expressions and resolve them against the article itself.

``find_mentions(text, published)`` returns every temporal expression with its character span,
resolved to a calendar date or range anchored on the publication date, or, for expressions
anchored on another event ("two days after Assad's visit"), on the nearest dated statement of
that event in the same article, marked ``inferred``.  The article text is never modified.

Thirteen patterns find the expressions, and each is read by the rule for its shape: full dates
("October 22, 2015", "22 Oct 2015", "2015-10-21") part by part; partial dates ("October 22") in
the year nearest the publication day; "N days ago"; weekdays relative to the publication day with
tense; week/month/year ranges ("last week", "earlier this month"); and event-anchored offsets.
(dateparser, which once read the full dates, agreed with the part-by-part reading on every one
of RealTime QA dev's and cost a hundred times more; it still reads publication dates, in
``index.records``.)
Undated articles get a year only when their own full dates agree on one (marked inferred);
otherwise dates stay partial ("October 22", year unknown) rather than guessed.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, Field

TIMEX_VERSION = "2"
"""Bumped when resolution rules change, so stored mentions are recomputed."""

Kind = Literal["absolute", "partial", "relative", "anchored"]
Granularity = Literal["day", "week", "month", "year"]

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
         r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d\d"
_NUM = r"(?:\d+|" + "|".join(NUMBERS) + r")"
_UNIT = r"(?:day|week|month|year)s?"
_WD = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"

# Longest, most specific patterns first; a later pattern never takes text an earlier one took.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(rf"\b{_YEAR}-[01]\d-[0-3]\d\b")),
    ("mdy", re.compile(rf"\b(?:{_WD},?\s+)?{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.IGNORECASE)),
    ("dmy", re.compile(rf"\b(?:{_WD},?\s+)?{_DAY}\s+{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE)),
    ("md", re.compile(rf"\b(?:{_WD},?\s+)?{_MONTH}\s+{_DAY}\b(?!\s*,?\s*{_YEAR})(?!\d)", re.IGNORECASE)),
    ("dm", re.compile(rf"\b{_DAY}\s+{_MONTH}\b(?!,?\s*{_YEAR})", re.IGNORECASE)),
    ("my", re.compile(rf"\b{_MONTH}\s+(?:of\s+)?{_YEAR}\b", re.IGNORECASE)),
    ("anchored", re.compile(rf"\b{_NUM}\s+{_UNIT}\s+(?:after|before)\b", re.IGNORECASE)),
    ("later", re.compile(rf"\b(?:{_NUM}\s+{_UNIT}\s+(?:later|earlier)|the\s+(?:next|following|"
                         rf"previous)\s+(?:day|week|month|year)|the\s+day\s+(?:before|after))\b",
                         re.IGNORECASE)),
    ("ago", re.compile(rf"\b{_NUM}\s+{_UNIT}\s+ago\b", re.IGNORECASE)),
    ("span", re.compile(r"\b(?:(?:earlier|later)\s+(?:this|that)|last|this|next|past)\s+"
                        r"(?:week|month|year)(?:end)?\b", re.IGNORECASE)),
    ("weekday", re.compile(rf"\b(?:(?:last|next|this|on)\s+)?{_WD}\b(?:\s+(?:morning|afternoon|"
                           rf"evening|night))?", re.IGNORECASE)),
    ("deictic", re.compile(r"\b(?:today|yesterday|tomorrow|tonight|this\s+(?:morning|afternoon|"
                           r"evening))\b", re.IGNORECASE)),
    ("year", re.compile(rf"\b(?:in|since|by|during|until|from|of|early|late|mid-?)\s+({_YEAR})\b",
                        re.IGNORECASE)),
]

# Every pattern above needs one of these in the lowercased sentence: a digit, a month's name, or
# "day", "week", "month", "year", "tomorrow", "tonight" or a part of the day.  Sentences without
# any (about half) skip the thirteen patterns.  No word boundaries: a wider net is still correct,
# and the plain alternation is several times faster.
_CUE = re.compile(r"[0-9]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|day|week|month|year"
                  r"|tomorrow|tonight|morning|afternoon|evening")

# What each pattern needs in the lowercased sentence to match at all (any one of these).  Most
# cued sentences hold a number or a day's name and nothing more, so most patterns are skipped.
_MONTH_CUES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_NEEDS: dict[str, tuple[str, ...]] = {
    "iso": ("-",),
    "mdy": _MONTH_CUES, "dmy": _MONTH_CUES, "md": _MONTH_CUES, "dm": _MONTH_CUES,
    "my": _MONTH_CUES,
    "anchored": ("after", "before"),
    "later": ("later", "earlier", "next", "following", "previous", "before", "after"),
    "ago": ("ago",),
    "span": ("week", "month", "year"),
    "weekday": ("day",),  # every weekday's name ends in "day"
    "deictic": ("today", "yesterday", "tomorrow", "tonight", "this"),
    "year": ("19", "20"),
}

_FUTURE = re.compile(r"\b(?:will|would|is\s+(?:due|set|expected|scheduled)\s+to|are\s+(?:due|set|"
                     r"expected|scheduled)\s+to|plans?\s+to|upcoming|next)\b", re.IGNORECASE)


class Mention(BaseModel):
    """One temporal expression in an article, resolved as far as is safe."""

    start: int = Field(description="Offset of the expression in the article text.")
    end: int
    text: str
    kind: Kind
    granularity: Granularity
    year: int | None = None
    month: int | None = None
    day: int | None = None
    until: date | None = Field(None, description="Last day of a range (week, month...).")
    inferred: bool = Field(False, description="Anchored on another event, or the year guessed.")
    note: str = Field("", description="How the value was derived.")
    anchor: tuple[int, int] | None = Field(
        None, description="Span of the sentence whose date this was derived from."
    )

    @property
    def value(self) -> date | None:
        """The (first) calendar day, when the year is known."""
        if self.year is None:
            return None
        return date(self.year, self.month or 1, self.day or 1)

    def label(self) -> str:
        """Human form: 'October 20, 2015', 'October 20' (year unknown), 'the week of ...'."""
        month = calendar.month_name[self.month] if self.month else ""
        if self.granularity == "year":
            return str(self.year)
        if self.granularity == "month":
            return f"{month} {self.year}" if self.year else month
        if self.granularity == "week" and self.value:
            return f"the week of {_human(self.value)}"
        if self.year is None:
            return f"{month} {self.day}"
        return _human(date(self.year, self.month or 1, self.day or 1))

    def iso(self) -> str:
        """ISO-like sortable form; unknown parts are '??' ('????-10-22')."""
        y = f"{self.year:04d}" if self.year else "????"
        m = f"{self.month:02d}" if self.month else "??"
        d = f"{self.day:02d}" if self.day else "??"
        return f"{y}-{m}-{d}"


def _human(day: date) -> str:
    return f"{calendar.month_name[day.month]} {day.day}, {day.year}"


def _num(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word.lower()]


def _shift(day: date, n: int, unit: str) -> date:
    unit = unit.rstrip("s").lower()
    if unit == "day":
        return day + timedelta(days=n)
    if unit == "week":
        return day + timedelta(weeks=n)
    months = day.month - 1 + (n if unit == "month" else 12 * n)
    year, month = day.year + months // 12, months % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _calendar_date(text: str, kind: str) -> date | None:
    """The day a full date names ("Monday, Oct. 22nd, 2015", "22 October 2015", "2015-10-22"),
    or the first of the month of "October (of) 2015"; None when there is no such day.

    The patterns have already fixed each part's place, so reading them is exact: the same
    result as dateparser on every one of the 3,531 full dates in RealTime QA dev, at a
    hundredth of its cost.
    """
    words = re.findall(r"[a-z]+|\d+", text.lower())
    numbers = [int(w) for w in words if w.isdigit()]
    if kind == "iso":
        year, month, day = numbers[:3]
    else:
        month = next(MONTHS[w] for w in words if w in MONTHS and w not in WEEKDAYS)
        year, day = numbers[-1], 1 if kind == "my" else numbers[0]
    try:
        return date(year, month, day)
    except ValueError:  # "February 30, 2015"
        return None


def resolve(text: str, kind: str, published: date | None, sentence: str = "") -> Mention | None:
    """Resolve one matched expression against the publication day (None: cannot be resolved)."""
    lower = text.lower()
    future = bool(_FUTURE.search(sentence))
    m = Mention(start=0, end=len(text), text=text, kind="absolute", granularity="day")
    if kind in ("iso", "mdy", "dmy"):
        parsed = _calendar_date(text, kind)
        if parsed is None:
            return None
        m.year, m.month, m.day = parsed.year, parsed.month, parsed.day
        return m
    if kind in ("md", "dm"):
        month_word = next(w for w in re.findall(r"[a-z]+", lower) if w.rstrip(".") in MONTHS
                          and w not in WEEKDAYS)
        m.kind, m.month = "partial", MONTHS[month_word.rstrip(".")]
        m.day = int(re.search(r"\d+", text).group())  # type: ignore[union-attr]
        if m.day > calendar.monthrange(2000, m.month)[1]:
            return None
        if published:
            candidates = [date(y, m.month, min(m.day, calendar.monthrange(y, m.month)[1]))
                          for y in (published.year - 1, published.year, published.year + 1)]
            # The nearest such day, unless the sentence speaks of the future.
            pool = [c for c in candidates if c >= published] if future else candidates
            best = min(pool, key=lambda c: abs((c - published).days))
            m.year, m.note = best.year, f"year from publication date {published}"
        return m
    if kind == "my":
        parsed = _calendar_date(text, kind)
        if parsed is None:
            return None
        m.granularity, m.year, m.month = "month", parsed.year, parsed.month
        m.until = _shift(date(parsed.year, parsed.month, 1), 1, "month") - timedelta(days=1)
        return m
    if kind == "year":
        year = int(re.search(_YEAR, text).group())  # type: ignore[union-attr]
        m.granularity, m.year, m.until = "year", year, date(year, 12, 31)
        return m
    if kind in ("anchored", "later"):
        m.kind, m.inferred = "anchored", True
        return m  # resolved by find_mentions against a dated statement of the same article
    if published is None:
        m.kind = "relative"
        m.granularity = "week" if "week" in lower else "month" if "month" in lower else (
            "year" if "year" in lower else "day")
        m.note = "relative to an unknown publication date"
        return m
    m.kind = "relative"
    if kind == "ago":
        n, unit = re.findall(r"\w+", lower)[:2]
        day = _shift(published, -_num(n), unit)
        m.granularity = "day" if unit.startswith("day") else unit.rstrip("s")  # type: ignore[assignment]
        m.year, m.month, m.day = day.year, day.month, day.day
        m.note = f"{text}, counted from publication on {published}"
        return m
    if kind == "deictic":
        offset = {"yesterday": -1, "tomorrow": 1}.get(lower.split()[0], 0)
        day = published + timedelta(days=offset)
        m.year, m.month, m.day = day.year, day.month, day.day
        m.note = f"{text.lower()}, counted from publication on {published}"
        return m
    if kind == "weekday":
        words = lower.split()
        weekday = WEEKDAYS[next(w for w in words if w in WEEKDAYS)]
        back = (published.weekday() - weekday) % 7
        ahead = (weekday - published.weekday()) % 7
        if words[0] == "last":
            day = published - timedelta(days=back or 7)
        elif words[0] == "next":
            day = published + timedelta(days=ahead or 7)
        elif future or words[0] == "this" and ahead < back:
            day = published + timedelta(days=ahead)
        else:
            day = published - timedelta(days=back)
        m.year, m.month, m.day = day.year, day.month, day.day
        relation = "after" if day > published else "before" if day < published else "of"
        m.note = f"the {calendar.day_name[weekday]} {relation} publication on {published}"
        return m
    # spans: last/this/next/past week|month|year, earlier/later this month...
    unit = next(u for u in ("week", "month", "year") if u in lower)
    step = -1 if lower.startswith(("last", "past")) else 1 if lower.startswith("next") else 0
    if unit == "week":
        monday = published - timedelta(days=published.weekday())
        first = monday + timedelta(weeks=step)
        last = first + timedelta(days=6)
    elif unit == "month":
        first = _shift(date(published.year, published.month, 1), step, "month")
        last = _shift(first, 1, "month") - timedelta(days=1)
    else:
        first = date(published.year + step, 1, 1)
        last = date(published.year + step, 12, 31)
    if lower.startswith("earlier"):
        last = min(last, published)
    elif lower.startswith("later"):
        first = max(first, published)
    m.granularity = unit  # type: ignore[assignment]
    m.year, m.month, m.day, m.until = first.year, first.month, first.day, last
    if unit == "year":
        m.month = m.day = None
    elif unit == "month":
        m.day = None
        if lower.startswith(("earlier", "later")):
            m.granularity, m.day = "week", first.day  # a part of the month, kept as a range
    m.note = f"{text.lower()}, counted from publication on {published}"
    return m


def find_mentions(
    text: str, published: date | None, sentences: list[tuple[int, int]] | None = None
) -> list[Mention]:
    """Every temporal expression in ``text``, resolved; see the module docstring."""
    from index.chunking import sentence_spans

    sentences = sentences if sentences is not None else sentence_spans(text)
    year_guess = None if published else _year_from_content(text)
    mentions: list[Mention] = []
    for s_start, s_end in sentences:
        sentence = text[s_start:s_end]
        lower = sentence.lower()
        if not _CUE.search(lower):
            continue
        taken: list[tuple[int, int]] = []
        for kind, pattern in PATTERNS:
            if not any(cue in lower for cue in _NEEDS[kind]):
                continue
            for match in pattern.finditer(sentence):
                span = match.span(1) if kind == "year" else match.span()
                if any(a < span[1] and span[0] < b for a, b in taken):
                    continue
                try:
                    resolved = resolve(sentence[span[0]:span[1]], kind, published, sentence)
                except (OverflowError, ValueError):  # "99999999 days ago": no calendar day
                    resolved = None
                if resolved is None:
                    continue
                taken.append(span)
                resolved.start, resolved.end = s_start + span[0], s_start + span[1]
                resolved.text = sentence[span[0]:span[1]]
                if resolved.kind == "partial" and resolved.year is None and year_guess:
                    resolved.year, resolved.inferred = year_guess, True
                    resolved.note = f"year {year_guess} inferred from the article's own dates"
                mentions.append(resolved)
    mentions.sort(key=lambda m: m.start)
    _resolve_anchored(text, sentences, mentions)
    return mentions


def _year_from_content(text: str) -> int | None:
    """The year of an undated article, when all its full dates agree on one."""
    years = {int(m.group()[-4:]) for kind, p in PATTERNS if kind in ("mdy", "dmy", "iso")
             for m in p.finditer(text)}
    return years.pop() if len(years) == 1 else None


def _resolve_anchored(text: str, sentences: list[tuple[int, int]], mentions: list[Mention]) -> None:
    """Resolve 'two days after X' / 'three days later' from a dated sentence of the article."""
    dated = [m for m in mentions if m.kind != "anchored" and m.granularity == "day" and m.month]
    for m in mentions:
        if m.kind != "anchored":
            continue
        here = next((s for s in sentences if s[0] <= m.start < s[1]), None)
        if here is None:
            continue
        words = re.findall(r"\w+", m.text.lower())
        anchor = _anchor_for(
            text, here, dated, sentences, same_names=words[-1] in ("after", "before")
        )
        if anchor is None:
            m.note = "anchored on an event the article does not date"
            continue
        source, sentence_span = anchor
        if words[0] == "the":
            n, unit = 1, words[2] if words[1] in ("next", "following", "previous") else "day"
            sign = -1 if "previous" in words or "before" in words else 1
        else:
            n, unit = _num(words[0]), words[1]
            # "X happened N days after Y": the anchor dates X, so the mention (Y) is N earlier.
            sign = {"after": -1, "before": 1, "later": 1, "earlier": -1}[words[2]]
        base = date(source.year or 2000, source.month or 1, source.day or 1)
        try:
            day = _shift(base, sign * n, unit)
        except (OverflowError, ValueError):
            m.note = "too far from its anchor to be a calendar day"
            continue
        m.granularity = "day" if unit.startswith("day") else unit.rstrip("s")  # type: ignore[assignment]
        m.year = day.year if source.year else None
        m.month, m.day = day.month, day.day
        m.anchor = sentence_span
        direction = "before" if sign < 0 else "after"
        m.note = f"{m.text.rsplit(' ', 1)[0]} {direction} {source.label()}"


def _anchor_for(
    text: str,
    here: tuple[int, int],
    dated: list[Mention],
    sentences: list[tuple[int, int]],
    *,
    same_names: bool,
) -> tuple[Mention, tuple[int, int]] | None:
    """The nearest dated statement about the anchoring event: a dated sentence before this one
    (up to three back; for "N days after X", one sharing a name with this sentence), else this
    sentence's own date, if any."""
    names = set(re.findall(r"\b[A-Z][a-z]{2,}\b", text[here[0]:here[1]]))
    spans = [s for s in sentences if s[1] <= here[0]][-3:]
    for span in reversed(spans):
        inside = [m for m in dated if span[0] <= m.start < span[1]]
        shared = names & set(re.findall(r"\b[A-Z][a-z]{2,}\b", text[span[0]:span[1]]))
        if inside and (shared or not same_names):
            return inside[0], span
    own = [m for m in dated if here[0] <= m.start < here[1]]
    return (own[0], here) if own else None
