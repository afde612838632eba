"""Build the public ``Filters`` from what a face was given, failing with a domain error.

``make_filters(outlets=..., since=..., until=..., as_of=...) -> Filters`` is what every face (CLI,
HTTP, UI) calls: dates may be ``date`` objects or ``YYYY-MM-DD`` text, blanks mean "no filter",
and an impossible combination (``since`` after ``until`` or ``as_of``) raises ``InputError`` with
a hint rather than a pydantic ``ValidationError`` traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from assistant.errors import InputError
from assistant.retrieve import Filters

LABELS = {"outlets": "outlets", "since": "since", "until": "until", "as_of": "as_of"}
"""How errors name each filter unless the face passes its own words (``--since``, "Since")."""


def make_filters(
    *,
    outlets: Sequence[str] | str | None = None,
    since: date | str | None = None,
    until: date | str | None = None,
    as_of: date | str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Filters:
    """The filters for these values, checked.

    ``labels`` maps a filter's name to what the face calls it, so a message can say "--since"
    or "Since". Raises InputError naming the field when a date is not ``YYYY-MM-DD`` or when
    ``since`` is after ``until``/``as_of`` (no article could match).
    """
    names = {**LABELS, **(labels or {})}
    chosen = [outlets] if isinstance(outlets, str) else list(outlets or [])
    days = {
        "since": _day(since, names["since"]),
        "until": _day(until, names["until"]),
        "as_of": _day(as_of, names["as_of"]),
    }
    latest = min((d for d in (days["until"], days["as_of"]) if d), default=None)
    if days["since"] and latest and days["since"] > latest:
        bound = names["until"] if latest == days["until"] else names["as_of"]
        raise InputError(
            f"{names['since']} ({days['since']}) is after {bound} ({latest}), so no article "
            "can match",
            hint=f"swap the dates or leave out {names['since']} or {bound}",
        )
    return Filters(outlets=[o.strip() for o in chosen if o.strip()] or None, **days)


def _day(value: date | str | None, label: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{label}: {text!r} is not a date", hint="use YYYY-MM-DD, e.g. 2015-10-21"
        ) from None
