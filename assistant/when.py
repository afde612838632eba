"""The lead of a "when" answer: which date of a sentence answers, and how it was derived.

``when_mention(dates)`` picks the sentence's date that best answers "when" (derived ones first,
day-level only); ``when_lead(mention, sentence)`` says it, e.g. "Around October 20 (two days
before Putin's October 22 remarks)", or None when the sentence already states the date in full.
"""

from __future__ import annotations

import re

from index.timex import Mention

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
EXPLICIT_DATE = re.compile(
    rf"\b(?:{_MONTHS}\s+\d{{1,2}}\b|\d{{1,2}}\s+{_MONTHS}|\b(?:19|20)\d\d\b)", re.IGNORECASE
)


_PREFERENCE = {"anchored": 0, "relative": 1, "partial": 2, "absolute": 3}
_REMARKS = re.compile(
    r"^(?P<who>[A-Z][\w.-]+)\s+(?:made|gave|delivered|issued)\s+(?:the|his|her|their)\s+"
    r"(?P<what>remarks|comments|statement|speech|announcement)\b"
)


def when_mention(dates: list[Mention]) -> Mention | None:
    """The date that best answers 'when' in a sentence: derived ones first, day-level only."""
    usable = [m for m in dates if m.granularity == "day" and m.month and m.day]
    return min(usable, key=lambda m: _PREFERENCE[m.kind], default=None)


def when_lead(mention: Mention, sentence: str) -> str | None:
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
