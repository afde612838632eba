"""Publication days as the integers the vector and keyword indexes filter on.

``day_number(day)`` encodes a date as YYYYMMDD (0 for an undated article, so any date bound
excludes it); ``day_of(number)`` decodes one.
"""

from __future__ import annotations

from datetime import date


def day_number(day: date | None) -> int:
    """A date as the integer YYYYMMDD that Chroma and BM25 filter on (0 when unknown)."""
    return day.year * 10000 + day.month * 100 + day.day if day else 0


def day_of(number: int) -> date:
    """The date a YYYYMMDD integer from ``day_number`` stands for."""
    return date(number // 10000, number // 100 % 100, number % 100)
