"""The chat UI's HTML: pure functions from API objects (answers, sources, timelines, articles,
upload results) to markup, and the stylesheet that goes with it.

Every piece of article text, answer text, file name and message is escaped: an article's own
markup is never injected into the page, and a link is only ever http(s).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from assistant.errors import NewsdeskError
from assistant.library import FileResult
from assistant.models import Answer, Citation, ShortAnswer, Timeline
from assistant.retrieve import Filters
from index.models import Article

CSS = """
.nd-answer { line-height: 1.55; }
.nd-answer .nd-text { margin: 0; }
.nd-answer a.nd-cite { font-size: .8em; font-weight: 600; text-decoration: none;
  vertical-align: super; margin-left: 1px; color: var(--color-accent); }
.nd-answer a.nd-cite.nd-weak { color: #b45309; }
.nd-answer .nd-uncited, .nd-answer .nd-unsupported {
  text-decoration: underline wavy #d97706; text-decoration-thickness: 1.5px;
  text-underline-offset: 4px; cursor: help; }
.nd-answer .nd-refusal { margin: 0; font-style: italic; }
.nd-answer .nd-refusal::before { content: "Not answered · "; font-style: normal; font-weight: 600;
  color: #b45309; }
.nd-answer .nd-foot { margin-top: .5em; font-size: .82em; opacity: .85; }
.nd-answer .nd-foot p { margin: .15em 0 !important; }
.nd-answer .nd-foot .nd-dropped { color: #b45309; }
.nd-badge { display: inline-block; padding: 0 .5em; border-radius: 999px; font-size: .78em;
  font-weight: 600; border: 1px solid currentColor; margin-right: .4em; }
.nd-badge.nd-llm { color: #2563eb; }
.nd-badge.nd-extractive { color: #047857; }
.nd-badge.nd-fallback { color: #b45309; }
.nd-error { color: #b91c1c; }
.nd-pending { opacity: .7; font-style: italic; }
.nd-panel { font-size: .92em; }
.nd-panel .nd-empty { opacity: .7; font-style: italic; }
.nd-turn { margin-bottom: 1.2em; }
.nd-turn > h4 { margin: 0 0 .4em 0; font-size: .95em; opacity: .8; }
.nd-source { border: 1px solid var(--block-border-color); border-radius: 8px;
  padding: .6em .8em; margin-bottom: .6em; background: var(--background-fill-primary); }
.nd-source .nd-head { font-weight: 600; }
.nd-source .nd-meta { font-size: .85em; opacity: .75; margin-bottom: .3em; }
.nd-source .nd-para { margin: .3em 0; }
.nd-source .nd-gap { text-align: center; opacity: .5; margin: 0; }
mark.nd-quote { background: #fde68a; color: #1f2937; padding: 0 2px; border-radius: 3px;
  scroll-margin-top: 4em; }
mark.nd-quote.nd-weak { background: #fed7aa; }
mark.nd-quote:target, .nd-anchor:target + mark.nd-quote { outline: 2px solid #f59e0b;
  background: #fcd34d; }
.nd-results table, .nd-reader table { width: 100%; }
.nd-results td:nth-child(2) { white-space: nowrap; }
.nd-results .nd-added { color: #047857; font-weight: 600; }
.nd-results .nd-updated { color: #047857; }
.nd-results .nd-unchanged { opacity: .75; }
.nd-results .nd-partial { color: #b45309; font-weight: 600; }
.nd-results .nd-skipped { color: #b91c1c; font-weight: 600; }
.nd-reader .nd-meta { opacity: .75; margin-bottom: .5em; }
"""


def source_id(turn: int, number: int) -> str:
    """Element id of source ``number`` of answer ``turn`` in the sources panel."""
    return f"src-{turn}-{number}"


def render_answer(answer: Answer, *, turn: int, filters: str | None = None) -> str:
    """The answer as chat HTML: each sentence with its [n] links; unsupported ones underlined.

    The footer has a badge (LLM, extractive, or extractive because the LLM failed), the notice,
    what was searched when a follow-up was rewritten, ``filters`` (the active filters in
    words), the answer's warnings and the sentences the citation check removed, struck out
    with the reason.
    """
    if answer.refused:
        body = f'<p class="nd-refusal">{escape(answer.text)}</p>'
    else:
        parts = []
        for sentence in answer.sentences:
            cited = [answer.citations[i] for i in sentence.citations]
            markers = "".join(_marker(c, turn) for c in _first_per_number(cited))
            text = _with_short_answer(sentence.text, cited, answer.short_answer)
            if not cited:
                text = (f'<span class="nd-uncited" title="No source is cited for this sentence">'
                        f"{text}</span>")
            elif not sentence.supported:
                text = (f'<span class="nd-unsupported" title="The cited source does not clearly '
                        f'support this sentence">{text}</span>')
            parts.append(f"{text}{markers}")
        body = f'<p class="nd-text">{" ".join(parts) or escape(answer.text)}</p>'
    foot = [f"<p>{_badge(answer)}{escape(answer.notice or '')}</p>"]
    if answer.searched:
        foot.append(f"<p>Searched for: “{escape(answer.searched)}”</p>")
    if filters:
        foot.append(f"<p>Filters: {escape(filters)}</p>")
    foot += [f'<p class="nd-warning">⚠ {escape(w)}</p>' for w in answer.warnings]
    foot += [
        f'<p class="nd-dropped" title="{escape(d.reason)}">Removed, {escape(d.reason)}: '
        f"<s>{escape(d.text)}</s></p>"
        for d in answer.dropped
    ]
    classes = "nd-answer nd-refused" if answer.refused else "nd-answer"
    return f'<div class="{classes}">{body}<div class="nd-foot">{"".join(foot)}</div></div>'


def _with_short_answer(
    text: str, cited: Sequence[Citation], short: ShortAnswer | None
) -> str:
    """The sentence as HTML, the short answer in bold where the sentence quotes it."""
    for c in cited:
        if short is None or c.number != short.number or not c.start <= short.start < c.end:
            continue
        at = text.find(c.quote)
        if at < 0:
            continue
        start = at + short.start - c.start
        end = start + len(short.text)
        if text[start:end] == short.text:
            return (f"{escape(text[:start])}<b class=\"nd-short\">{escape(text[start:end])}</b>"
                    f"{escape(text[end:])}")
    return escape(text)


def _badge(answer: Answer) -> str:
    if answer.mode == "llm":
        kind, title, label = "llm", "Written by a language model", f"LLM · {answer.model}"
    elif answer.fallback:
        kind, title, label = "fallback", "The language model failed", "Extractive (LLM failed)"
    else:
        kind, title, label = "extractive", "Quoted from the sources, no model", "Extractive"
    return f'<span class="nd-badge nd-{kind}" title="{title}">{escape(label)}</span>'


def _first_per_number(citations: Sequence[Citation]) -> list[Citation]:
    seen: dict[int, Citation] = {}
    for c in citations:
        seen.setdefault(c.number, c)
    return list(seen.values())


def _marker(citation: Citation, turn: int) -> str:
    weak = "" if citation.supported else " nd-weak"
    title = escape(f"{citation.title} ({citation.outlet or 'unknown outlet'}"
                   f"{', ' + citation.published.isoformat() if citation.published else ''})"
                   + ("" if citation.supported else " · weak support"))
    return (f'<a class="nd-cite{weak}" href="#{source_id(turn, citation.number)}" '
            f'title="{title}">[{citation.number}]</a>')


def render_pending(text: str = "") -> str:
    """The assistant's bubble while the answer is being written."""
    if not text:
        return '<div class="nd-answer nd-pending">Searching the articles…</div>'
    return f'<div class="nd-answer nd-pending"><p class="nd-text">{escape(text)}</p></div>'


def render_error(message: str) -> str:
    """An error message as the assistant's bubble."""
    return f'<div class="nd-answer nd-error"><p class="nd-text">{escape(message)}</p></div>'


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def paragraph_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) of the paragraph (blank-line separated) holding ``text[start:end]``."""
    begin, finish = 0, len(text)
    for gap in _PARAGRAPH_BREAK.finditer(text):
        if gap.end() <= start:
            begin = gap.end()
        elif gap.start() >= end:
            finish = gap.start()
            break
    return begin, finish


def render_sources(
    answer: Answer,
    get_article: Callable[[str], Article],
    *,
    turn: int,
    question: str | None = None,
) -> str:
    """The cited articles of one answer, each cited sentence highlighted in its paragraph.

    One card per article (title, outlet, date, link); the mark of the first sentence cited as
    [n] carries the element id the answer's [n] links to.  ``question`` is the heading (the
    question as typed; default: as answered).
    """
    heading = f"<h4>Sources for “{escape(question or answer.question)}”</h4>"
    if answer.refused or not answer.citations:
        note = "No source supports an answer." if answer.refused else "No sources cited."
        cards = [f'<p class="nd-empty">{note}</p>']
    else:
        by_article: dict[str, list[Citation]] = {}
        for c in sorted(answer.citations, key=lambda c: c.number):
            by_article.setdefault(c.article_id, []).append(c)
        cards = [_source_card(cs, get_article, turn) for cs in by_article.values()]
    return f'<section class="nd-turn" id="turn-{turn}">{heading}{"".join(cards)}</section>'


def _source_card(
    citations: list[Citation], get_article: Callable[[str], Article], turn: int
) -> str:
    first = citations[0]
    numbers = "".join(f"[{n}]" for n in sorted({c.number for c in citations}))
    title = _link(first.url, escape(first.title))
    meta = " · ".join(
        [escape(first.outlet or "unknown outlet"),
         first.published.isoformat() if first.published else "date unknown"]
    )
    try:
        text = get_article(first.article_id).text
    except NewsdeskError:
        text = ""  # removed since it was cited: show the quotes alone
    spans: dict[tuple[int, int], list[Citation]] = {}
    for c in citations:
        if text[c.start : c.end] == c.quote:
            spans.setdefault((c.start, c.end), []).append(c)
    paragraphs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for start, end in sorted(spans):
        paragraphs.setdefault(paragraph_bounds(text, start, end), []).append((start, end))
    body: list[str] = []
    placed: set[int] = set()
    for n, ((p_start, p_end), marks) in enumerate(sorted(paragraphs.items())):
        if n:
            body.append('<p class="nd-gap">…</p>')
        html, cursor = [], p_start
        for start, end in marks:
            html.append(escape(text[cursor:start]))
            # Cited sentences never overlap; max() keeps a malformed span from repeating text.
            html.append(_mark(text[max(start, cursor):end], spans[(start, end)], placed, turn))
            cursor = max(end, cursor)
        html.append(escape(text[cursor:p_end]))
        body.append(f'<p class="nd-para">{"".join(html)}</p>')
    for c in citations:  # quotes whose offsets no longer match the stored article
        if (c.start, c.end) not in spans:
            body.append(f'<p class="nd-para">{_mark(c.quote, [c], placed, turn)}</p>')
    return (f'<article class="nd-source"><div class="nd-head">{numbers} {title}</div>'
            f'<div class="nd-meta">{meta}</div>{"".join(body)}</article>')


def _mark(quote: str, citations: list[Citation], placed: set[int], turn: int) -> str:
    """A highlighted quote; the first quote of each source number gets that number's id."""
    numbers = [c.number for c in citations if c.number not in placed]
    placed.update(numbers)
    weak = "" if any(c.supported for c in citations) else " nd-weak"
    title = escape(" · ".join(f"[{c.number}] support {c.support:.2f}" for c in citations))
    # One element id per source number: the mark takes the first, empty anchors the rest.
    anchors = "".join(f'<span class="nd-anchor" id="{source_id(turn, n)}"></span>'
                      for n in numbers[1:])
    mark_id = f' id="{source_id(turn, numbers[0])}"' if numbers else ""
    return f'{anchors}<mark class="nd-quote{weak}"{mark_id} title="{title}">{escape(quote)}</mark>'


def _link(url: str | None, html: str) -> str:
    """``html`` linked to ``url`` in a new tab; only http(s) URLs (never ``javascript:``)."""
    if not url or not url.lower().startswith(("http://", "https://")):
        return html
    return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{html}</a>'


def render_timeline(timeline: Timeline) -> str:
    """A timeline: one row per dated event, its sentence quoted, every reporting source listed."""
    if not timeline.events:
        return '<p class="nd-refusal">No dated events found for this query.</p>'
    rows = []
    for event in timeline.events:
        flag = ' <span title="derived from another dated event">(inferred)</span>' \
            if event.inferred else ""
        cites = "; ".join(
            _link(s.url, escape(s.outlet or "unknown outlet"))
            + f" {escape(s.published.isoformat() if s.published else 'undated')}: "
            + f"“{escape(s.expression)}”" + (f" — {escape(s.how)}" if s.how else "")
            for s in event.sources
        )
        rows.append(
            f'<li class="nd-event"><b>{escape(event.label)}</b>{flag} '
            f"<mark>{escape(event.text)}</mark><br><small>{cites}</small></li>"
        )
    return f'<ol class="nd-timeline">{"".join(rows)}</ol>'


def render_panel(turns: Sequence[dict[str, Any]]) -> str:
    """The sources panel: the sources of every answer so far, the newest first."""
    if not turns:
        return ('<div class="nd-panel"><p class="nd-empty">The sources of each answer appear '
                "here, the cited sentence highlighted. Click a [n] in an answer to jump to it."
                "</p></div>")
    return f'<div class="nd-panel">{"".join(t["sources"] for t in reversed(turns))}</div>'


def render_article(article: Article) -> str:
    """One article in full, for the library's reader."""
    title = _link(article.url, escape(article.title))
    meta = " · ".join(
        [escape(article.outlet or "unknown outlet"),
         article.published.isoformat() if article.published else "date unknown",
         *([escape(", ".join(article.authors))] if article.authors else []),
         f"id <code>{escape(article.id)}</code>"]
    )
    paragraphs = "".join(
        f"<p>{escape(p.strip())}</p>" for p in _PARAGRAPH_BREAK.split(article.text) if p.strip()
    )
    return (f'<div class="nd-reader"><h3>{title}</h3><div class="nd-meta">{meta}</div>'
            f"{paragraphs}</div>")




def render_upload_results(results: Sequence[FileResult]) -> str:
    """A table: file, result, details (each skip's reason)."""
    if not results:
        return ""
    rows = []
    for r in results:
        details = "<br>".join(escape(s) for s in r.skipped) or "&nbsp;"
        rows.append(f"<tr><td>{escape(r.name)}</td>"
                    f'<td class="nd-{r.status}">{escape(r.summary())}</td><td>{details}</td></tr>')
    return ('<div class="nd-results"><table><thead><tr><th>file</th><th>result</th>'
            f'<th>details</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def describe_filters(filters: Filters) -> str | None:
    """The active filters in words, for the answer's footer; None when there are none."""
    words = []
    if filters.outlets:
        words.append("outlets " + ", ".join(filters.outlets))
    for day, label in ((filters.since, "since"), (filters.until, "until"),
                       (filters.as_of, "as of")):
        if day:
            words.append(f"{label} {day.isoformat()}")
    return " · ".join(words) or None


def render_timing(answer: Answer) -> str:
    """How long each stage of an answer took, in one line."""
    t = answer.timings
    total = sum(t.get(k, 0.0) for k in ("retrieval", "generation", "citations"))
    return (f"Answered in {total:.1f} s (retrieval {t.get('retrieval', 0):.1f} s · writing "
            f"{t.get('generation', 0):.1f} s · citation checks {t.get('citations', 0):.1f} s)")


def md(text: str | None) -> str:
    """Text shown in a Markdown component: HTML escaped, Markdown's own markup defused."""
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", escape(text or "", quote=False))
