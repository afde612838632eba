"""Temporal expressions resolved against the article's own publication date, as table tests."""

from __future__ import annotations

from datetime import date

import pytest

from index.timex import find_mentions

WED = date(2015, 10, 21)  # a Wednesday
NEW_YEAR = date(2016, 1, 2)  # a Saturday, just after a year roll-over


@pytest.mark.parametrize(
    ("sentence", "published", "expression", "resolved", "kind"),
    [
        # absolute dates, several spellings
        ("It happened on 2015-10-20 in Moscow.", WED, "2015-10-20", "2015-10-20", "absolute"),
        ("It happened on October 20, 2015.", WED, "October 20, 2015", "2015-10-20", "absolute"),
        ("It happened on Oct. 20, 2015.", WED, "Oct. 20, 2015", "2015-10-20", "absolute"),
        ("It happened on 20 October 2015.", WED, "20 October 2015", "2015-10-20", "absolute"),
        ("It happened on Tuesday, October 20, 2015.", WED, "Tuesday, October 20, 2015", "2015-10-20", "absolute"),
        ("It happened on March 23rd, 2021.", WED, "March 23rd, 2021", "2021-03-23", "absolute"),
        ("The war began in 2011.", WED, "2011", "2011-??-??", "absolute"),
        ("Prices rose in March 2020.", WED, "March 2020", "2020-03-??", "absolute"),
        ("Prices rose in October of 2014.", WED, "October of 2014", "2014-10-??", "absolute"),
        ("It happened on Sept. 9th, 2015.", WED, "Sept. 9th, 2015", "2015-09-09", "absolute"),
        ("It happened on Friday, 9 Sep 2016.", WED, "Friday, 9 Sep 2016", "2016-09-09", "absolute"),
        # partial dates take the year that puts them nearest the publication day
        ("On October 22, Putin spoke.", date(2015, 10, 25), "October 22", "2015-10-22", "partial"),
        ("Strikes began on September 30.", WED, "September 30", "2015-09-30", "partial"),
        ("On Dec. 30, talks resumed.", NEW_YEAR, "Dec. 30", "2015-12-30", "partial"),
        ("The summit opens on January 10.", date(2015, 12, 20), "January 10", "2016-01-10", "partial"),
        ("On 22 October, Putin spoke.", date(2015, 10, 25), "22 October", "2015-10-22", "partial"),
        ("The vote will be held on November 3.", WED, "November 3", "2015-11-03", "partial"),
        # partial dates stay partial when the article has no date to anchor them
        ("On October 22, Putin spoke.", None, "October 22", "????-10-22", "partial"),
        # weekdays: past by default, future with future tense, 'last'/'next'
        ("Assad flew to Moscow on Tuesday.", WED, "on Tuesday", "2015-10-20", "relative"),
        ("The Kremlin said on Wednesday.", WED, "on Wednesday", "2015-10-21", "relative"),
        ("He arrived on Monday.", WED, "on Monday", "2015-10-19", "relative"),
        ("Talks were held on Thursday.", WED, "on Thursday", "2015-10-15", "relative"),
        ("Talks will resume on Thursday.", WED, "on Thursday", "2015-10-22", "relative"),
        ("Ministers are due to meet on Friday.", WED, "on Friday", "2015-10-23", "relative"),
        ("He spoke last Wednesday.", WED, "last Wednesday", "2015-10-14", "relative"),
        ("He will speak next Wednesday.", WED, "next Wednesday", "2015-10-28", "relative"),
        ("The crash happened on Sunday night.", WED, "on Sunday night", "2015-10-18", "relative"),
        ("Markets fell on Thursday.", NEW_YEAR, "on Thursday", "2015-12-31", "relative"),
        ("He resigned on Saturday.", NEW_YEAR, "on Saturday", "2016-01-02", "relative"),
        # deictic words
        ("The result came yesterday.", WED, "yesterday", "2015-10-20", "relative"),
        ("The result came today.", WED, "today", "2015-10-21", "relative"),
        ("The result comes tomorrow.", NEW_YEAR, "tomorrow", "2016-01-03", "relative"),
        ("He spoke this morning.", WED, "this morning", "2015-10-21", "relative"),
        # counted from publication
        ("The ship sank three days ago.", WED, "three days ago", "2015-10-18", "relative"),
        ("The law passed two weeks ago.", WED, "two weeks ago", "2015-10-07", "relative"),
        ("It closed a year ago.", WED, "a year ago", "2014-10-21", "relative"),
        ("It opened two months ago.", date(2016, 1, 31), "two months ago", "2015-11-30", "relative"),
        # ranges: weeks (Monday-Sunday), months, years
        ("Protests grew last week.", WED, "last week", "2015-10-12", "relative"),
        ("Protests grew this week.", WED, "this week", "2015-10-19", "relative"),
        ("Protests will grow next week.", WED, "next week", "2015-10-26", "relative"),
        ("Sales fell last month.", WED, "last month", "2015-09-??", "relative"),
        ("Sales fell last month.", NEW_YEAR, "last month", "2015-12-??", "relative"),
        ("Sales fell earlier this month.", WED, "earlier this month", "2015-10-01", "relative"),
        ("Sales fell last year.", NEW_YEAR, "last year", "2015-??-??", "relative"),
        ("Sales rose this year.", WED, "this year", "2015-??-??", "relative"),
    ],
)
def test_expression_resolution(
    sentence: str, published: date | None, expression: str, resolved: str, kind: str
) -> None:
    mentions = [m for m in find_mentions(sentence, published) if m.text == expression]
    assert mentions, [m.text for m in find_mentions(sentence, published)]
    assert (mentions[0].iso(), mentions[0].kind) == (resolved, kind)
    assert sentence[mentions[0].start : mentions[0].end] == expression


@pytest.mark.parametrize(
    ("text", "until"),
    [
        ("Protests grew last week.", date(2015, 10, 18)),
        ("Sales fell last month.", date(2015, 9, 30)),
        ("Sales fell earlier this month.", date(2015, 10, 21)),
        ("Sales rose this year.", date(2015, 12, 31)),
    ],
)
def test_ranges_end_where_they_should(text: str, until: date) -> None:
    (mention,) = find_mentions(text, WED)
    assert mention.until == until


def test_event_anchored_offsets_resolve_from_a_dated_statement() -> None:
    text = ("On October 22, Russian President Vladimir Putin said Assad was ready to talk. "
            "Putin made the remarks two days after Assad made a surprise visit to Moscow.")
    anchored = [m for m in find_mentions(text, None) if m.kind == "anchored"]
    (m,) = anchored
    assert m.text == "two days after" and m.iso() == "????-10-20" and m.inferred
    assert m.note == "two days before October 22"
    assert m.anchor == (0, text.index(" Putin made"))
    dated = find_mentions(text, date(2015, 10, 25))
    assert [x.iso() for x in dated if x.kind == "anchored"] == ["2015-10-20"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The ship ran aground on March 23, 2021. Three days later, tugs arrived.", "2021-03-26"),
        ("The ship ran aground on March 23, 2021. The next day, tugs arrived.", "2021-03-24"),
        ("The ship ran aground on March 23, 2021. The day before, winds rose.", "2021-03-22"),
        ("Voters went to the polls on June 23, 2016. Two days earlier, polls were tied.", "2016-06-21"),
    ],
)
def test_later_and_earlier_count_from_the_previous_dated_statement(text: str, expected: str) -> None:
    anchored = [m for m in find_mentions(text, date(2021, 3, 30)) if m.kind == "anchored"]
    assert anchored and anchored[0].iso() == expected and anchored[0].inferred


def test_undated_article_year_is_inferred_only_when_its_dates_agree() -> None:
    agreeing = "The ship ran aground on March 23, 2021. It was freed on March 29."
    freed = next(m for m in find_mentions(agreeing, None) if m.text == "March 29")
    assert freed.iso() == "2021-03-29" and freed.inferred and "inferred" in freed.note
    mixed = "It began on March 23, 2021 and echoed May 2, 2019. It ended on March 29."
    ended = next(m for m in find_mentions(mixed, None) if m.text == "March 29")
    assert ended.iso() == "????-03-29" and not ended.inferred


@pytest.mark.parametrize(
    "text",
    [
        "He may return.",            # 'may' is not a month here
        "She scored 30 points.",     # a bare number is not a day
        "Room 2015 was booked.",     # a bare year without a cue is not a date
        "The March for Science grew.",
        "The memo is dated February 30, 2015.",  # no such day
        "Build 2015-13-01 shipped.",             # no thirteenth month
    ],
)
def test_non_dates_are_left_alone(text: str) -> None:
    assert find_mentions(text, WED) == []


def test_relative_dates_without_a_publication_date_stay_unresolved() -> None:
    (m,) = find_mentions("Assad flew to Moscow on Tuesday.", None)
    assert m.year is None and m.kind == "relative" and "unknown publication date" in m.note


def test_mentions_never_alter_the_text() -> None:
    text = "On Oct. 22, Putin spoke; two days after that, nothing. Last week was calm."
    for m in find_mentions(text, WED):
        assert text[m.start : m.end] == m.text
