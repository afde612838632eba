"""The chat UI: a Gradio app where every answer sentence links to its highlighted source.

``create_app(settings) -> gr.Blocks`` builds the app without serving it (the HTTP service mounts
it with ``gradio.mount_gradio_app(app, blocks, path="/ui")``); ``launch(host, port, settings)``
serves it on loopback, share links off.

The app is thin over the Python API.  Every event calls a method of ``Desk``: plain Python that
tests drive without a browser.  The ``render_*`` functions turn API objects into HTML, and they
escape every piece of article text, answer text and error message: an article's own markup is
never injected into the page.  Library errors become readable messages (a warning toast and a
line in the page), never a stack trace.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.answer import Assistant
from assistant.errors import ConfigError, InputError, NewsdeskError, NothingIndexed
from assistant.followup import condense
from assistant.models import Answer, Citation, Timeline
from assistant.settings import Settings
from index.models import Article, IngestReport, Skip
from index.readers import SUPPORTED

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
LIBRARY_ROWS = 500  # the browse table shows this many articles; the search narrows them
LIBRARY_HEADERS = ["published", "outlet", "title", "id"]
Progress = Callable[..., Any]
"""``progress((done, total), desc=...)`` as ``gr.Progress`` takes it."""

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


# --- rendering ------------------------------------------------------------------------------


def source_id(turn: int, number: int) -> str:
    """Element id of source ``number`` of answer ``turn`` in the sources panel."""
    return f"src-{turn}-{number}"


def render_answer(
    answer: Answer,
    *,
    turn: int,
    searched: str | None = None,
    filters: str | None = None,
    fallback: bool = False,
) -> str:
    """The answer as chat HTML: each sentence with its [n] links; unsupported ones underlined.

    ``searched`` is the standalone question when condensing changed what was asked;
    ``filters`` describes active filters; ``fallback`` says the LLM failed and the answer is
    extractive instead.
    """
    if answer.refused:
        body = f'<p class="nd-refusal">{escape(answer.text)}</p>'
    else:
        parts = []
        for sentence in answer.sentences:
            cited = [answer.citations[i] for i in sentence.citations]
            markers = "".join(_marker(c, turn) for c in _first_per_number(cited))
            text = escape(sentence.text)
            if not cited:
                text = (f'<span class="nd-uncited" title="No source is cited for this sentence">'
                        f"{text}</span>")
            elif not sentence.supported:
                text = (f'<span class="nd-unsupported" title="The cited source does not clearly '
                        f'support this sentence">{text}</span>')
            parts.append(f"{text}{markers}")
        body = f'<p class="nd-text">{" ".join(parts) or escape(answer.text)}</p>'
    foot = [f"<p>{_badge(answer, fallback)}{escape(answer.notice or '')}</p>"]
    if searched:
        foot.append(f"<p>Searched for: “{escape(searched)}”</p>")
    if filters:
        foot.append(f"<p>Filters: {escape(filters)}</p>")
    foot += [f'<p class="nd-warning">⚠ {escape(w)}</p>' for w in answer.warnings]
    classes = "nd-answer nd-refused" if answer.refused else "nd-answer"
    return f'<div class="{classes}">{body}<div class="nd-foot">{"".join(foot)}</div></div>'


def _badge(answer: Answer, fallback: bool) -> str:
    if answer.mode == "llm":
        kind, title, label = "llm", "Written by a language model", f"LLM · {answer.model}"
    elif fallback:
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


def render_error(error: BaseException) -> str:
    """A library error as the assistant's bubble: what went wrong and how to fix it."""
    text = escape(error_message(error))
    return f'<div class="nd-answer nd-error"><p class="nd-text">{text}</p></div>'


def error_message(error: BaseException) -> str:
    """Plain words for an error; unexpected ones say where to look instead of a traceback."""
    if isinstance(error, NothingIndexed):
        return ("No articles are indexed yet. Add some in the Library tab, or run "
                "`newsdesk ingest PATH` (`newsdesk demo` indexes the sample articles).")
    if isinstance(error, NewsdeskError):
        return str(error)
    return (f"Something went wrong ({type(error).__name__}: {error}). The details are in the "
            "server log; please try again.")


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


# --- inputs ---------------------------------------------------------------------------------


def parse_day(value: str | None, label: str) -> date | None:
    """A YYYY-MM-DD date from a text box; blank is None. Raises InputError naming the box."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"“{value}” in {label} is not a date", hint="write it as YYYY-MM-DD, e.g. 2015-10-21"
        ) from None


def parse_filters(
    outlets: Sequence[str] | str | None, since: str | None, until: str | None, as_of: str | None
) -> dict[str, Any]:
    """The filter boxes as ``Assistant.ask`` keyword arguments. Raises InputError if invalid."""
    chosen = [outlets] if isinstance(outlets, str) else list(outlets or [])
    filters: dict[str, Any] = {
        "outlets": [o for o in chosen if o] or None,
        "since": parse_day(since, "Since"),
        "until": parse_day(until, "Until"),
        "as_of": parse_day(as_of, "As of"),
    }
    latest = min((d for d in (filters["until"], filters["as_of"]) if d), default=None)
    if filters["since"] and latest and filters["since"] > latest:
        bound = "Until" if latest == filters["until"] else "As of"
        raise InputError(
            f"Since ({filters['since']}) is after {bound} ({latest}), so no article can match",
            hint="swap the dates or clear one",
        )
    return filters


def describe_filters(filters: dict[str, Any]) -> str | None:
    """The active filters in words, for the answer's footer."""
    words = []
    if filters.get("outlets"):
        words.append("outlets " + ", ".join(filters["outlets"]))
    for key, label in (("since", "since"), ("until", "until"), ("as_of", "as of")):
        if filters.get(key):
            words.append(f"{label} {filters[key].isoformat()}")
    return " · ".join(words) or None


# --- the handlers ---------------------------------------------------------------------------


@dataclass
class FileResult:
    """What uploading one file did: articles added/updated/unchanged, and skips with reasons."""

    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """'skipped' (nothing indexed), 'partial' (some articles skipped), else the best outcome
        of 'added', 'updated', 'unchanged'."""
        indexed = [o for o in ("added", "updated", "unchanged") if self.outcomes[o]]
        if not indexed:
            return "skipped"
        return "partial" if self.skipped else indexed[0]

    def summary(self) -> str:
        """E.g. 'added 2 · unchanged 1 · skipped 1'."""
        counts = [f"{k} {self.outcomes[k]}" for k in ("added", "updated", "unchanged")
                  if self.outcomes[k]]
        if self.skipped:
            counts.append(f"skipped {len(self.skipped)}")
        return " · ".join(counts) or "skipped"


ChatUpdate = tuple[str, list[Any], str, str, list[dict[str, Any]]]
"""What ``Desk.ask`` yields: (question box, chat messages, sources panel, status line, turns)."""


class Desk:
    """The app's behaviour as plain Python over one ``Assistant``; the Blocks only wire it up."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.settings: Settings = assistant.settings
        self.store = assistant.store

    # chat

    def ask(
        self,
        message: str,
        chat: list[Any] | None,
        turns: list[dict[str, Any]] | None,
        outlets: Sequence[str] | str | None = None,
        since: str | None = None,
        until: str | None = None,
        as_of: str | None = None,
    ) -> Iterator[ChatUpdate]:
        """Answer ``message`` in the chat, streaming; the last update carries the final answer.

        ``turns`` (one dict per answered question: question, answer, sources HTML) is the
        conversation as the follow-up condensing and the sources panel need it.
        """
        chat, turns = list(chat or []), list(turns or [])
        question = " ".join((message or "").split())
        panel = render_panel(turns)
        if not question:
            yield message, chat, panel, "Type a question first.", turns
            return
        try:
            filters = parse_filters(outlets, since, until, as_of)
        except InputError as exc:
            _warn(str(exc))
            yield message, chat, panel, f"⚠ {_md(str(exc))}", turns
            return
        turn = len(turns) + 1
        chat += [{"role": "user", "content": escape(question)},
                 {"role": "assistant", "content": render_pending()}]
        yield "", list(chat), panel, "Searching…", turns
        try:
            history = [m for t in turns for m in (
                {"role": "user", "content": t["question"]},
                {"role": "assistant", "content": t["answer"]},
            )]
            standalone = condense(history, question, settings=self.settings, llm=self.assistant.llm)
            answer, text = None, ""
            for event in self.assistant.stream(standalone, **filters):
                if event.type == "delta":
                    text += event.text or ""
                    chat[-1] = {"role": "assistant", "content": render_pending(text)}
                    yield "", list(chat), panel, "Writing the answer…", turns
                elif event.type == "reset":
                    text = ""
                    chat[-1] = {"role": "assistant", "content": render_pending()}
                    note = "The language model failed; answering extractively…"
                    yield "", list(chat), panel, note, turns
                elif event.type == "answer":
                    answer = event.answer
            assert answer is not None
            sources = render_sources(answer, self.store.get_article, turn=turn, question=question)
        except Exception as exc:  # the page shows a message, never a traceback
            if not isinstance(exc, NewsdeskError):
                log.exception("answering %r failed", question)
            chat[-1] = {"role": "assistant", "content": render_error(exc)}
            _warn(error_message(exc))
            yield "", list(chat), panel, f"⚠ {_md(error_message(exc))}", turns
            return
        fallback = answer.mode == "extractive" and self.assistant.llm.mode == "llm"
        if fallback:
            _warn(answer.notice or "The language model failed; the answer is extractive.")
        chat[-1] = {"role": "assistant", "content": render_answer(
            answer, turn=turn, searched=standalone if standalone != question else None,
            filters=describe_filters(filters), fallback=fallback,
        )}
        turns.append({"question": question, "standalone": standalone, "answer": answer.text,
                      "sources": sources})
        yield "", list(chat), render_panel(turns), _timing(answer), turns

    def warm_up(self) -> None:
        """Load the embedding model and open the indexes now, so the first question is quick."""
        from assistant.retrieve import Filters, retrieve

        try:
            nothing = Filters(outlets=None, since=None, until=None, as_of=None)
            retrieve("warm up", nothing, settings=self.settings, store=self.store,
                     embedder=self.assistant.embedder)
        except NothingIndexed:
            self.assistant.embedder.embed_cached(["warm up"])

    def clear(self) -> tuple[str, list[Any], str, str, list[dict[str, Any]]]:
        """A fresh conversation."""
        return "", [], render_panel([]), "", []

    # library

    def summary(self) -> str:
        """One line on what is indexed and what writes the answers (Markdown)."""
        try:
            stats = self.store.stats()
        except NewsdeskError as exc:
            return f"⚠ {_md(str(exc))}"
        llm = self.assistant.llm
        writer = ("extractive answers (no language model configured)"
                  if llm.mode == "extractive" else f"answers written by {_md(llm.name)}")
        if not stats["articles"]:
            return f"**No articles indexed yet**: add some in the Library tab. · {writer}"
        span = ""
        if stats["first_published"]:
            span = f" · {stats['first_published']} to {stats['last_published']}"
        return (f"**{stats['articles']} articles** from {len(stats['outlets'])} outlets{span} "
                f"· {writer}")

    def outlets(self) -> list[str]:
        """Outlet names for the filter, most articles first."""
        try:
            return [o for o in self.store.stats()["outlets"] if o != "(unknown)"]
        except NewsdeskError:
            return []

    def browse(self, search: str | None = None) -> tuple[list[list[str]], str]:
        """Rows (published, outlet, title, id) of articles whose title contains ``search``."""
        search = (search or "").strip() or None
        try:
            rows = self.store.list_articles(search=search, limit=LIBRARY_ROWS)
            total = self.store.count_articles()
        except NewsdeskError as exc:
            return [], f"⚠ {_md(str(exc))}"
        table = [[a.published.isoformat() if a.published else "", a.outlet or "", a.title, a.id]
                 for a in rows]
        if not total:
            return table, "No articles indexed yet: upload some above."
        shown = f"{len(table)} matching “{_md(search)}”" if search else f"{len(table)}"
        return table, f"{shown} of {total} articles · select a row to read it"

    def timeline(
        self,
        query: str,
        outlets: Sequence[str] | str | None = None,
        since: str | None = None,
        until: str | None = None,
        as_of: str | None = None,
    ) -> str:
        """The timeline for a query under the Ask tab's filters, as HTML (errors as messages)."""
        if not (query or "").strip():
            return '<p class="nd-error">Type what the timeline is about.</p>'
        try:
            filters = parse_filters(outlets, since, until, as_of)
            return render_timeline(self.assistant.timeline(query.strip(), **filters))
        except NewsdeskError as exc:
            return f'<p class="nd-error">{escape(error_message(exc))}</p>'

    def read(self, article_id: str | None) -> str:
        """The article in full, or a message saying why it cannot be shown."""
        if not article_id:
            return ""
        try:
            return render_article(self.store.get_article(article_id))
        except NewsdeskError as exc:
            return f'<p class="nd-error">{escape(str(exc))}</p>'

    def upload(
        self, paths: Sequence[str | Path] | None, progress: Progress | None = None
    ) -> list[FileResult]:
        """Index uploaded files; one result per file (articles added, unchanged, skipped + why)."""
        from index.ingest import ingest_items
        from index.readers import read_paths

        files = [Path(p).resolve() for p in paths or []]
        if not files:
            return []
        if progress:
            progress((0, len(files)), desc="reading files")
        items: dict[Path, list[Article | Skip]] = {f: list(read_paths([f])) for f in files}

        def on_progress(report: IngestReport, total: int) -> None:
            done = len(report.added) + len(report.updated) + len(report.unchanged)
            if progress:
                progress((done, total), desc=f"indexed {done} of {total} articles")

        report = ingest_items(
            [item for found in items.values() for item in found],
            config=self.settings, store=self.store, embedder=self.assistant.embedder,
            progress=on_progress,
        )
        outcome = {i: "added" for i in report.added}
        outcome |= {i: "updated" for i in report.updated}
        outcome |= {i: "unchanged" for i in report.unchanged}
        results, kept = [], set()
        for path, found in items.items():
            result = FileResult(_display_name(path))
            for item in found:
                if isinstance(item, Article) and item.id not in kept and item.id in outcome:
                    kept.add(item.id)  # a later duplicate of this id was skipped, not indexed
                    result.outcomes[outcome[item.id]] += 1
            for skip in report.skipped:
                if skip.source == str(path) or skip.source.startswith(f"{path}:"):
                    where = skip.source[len(str(path)):].lstrip(":")
                    result.skipped.append(f"{'line ' + where + ': ' if where else ''}{skip.reason}")
            results.append(result)
        if report.interrupted:
            results.append(FileResult("(interrupted)", skipped=["interrupted; upload again"]))
        return results


def _display_name(path: Path) -> str:
    return path.name


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


def _timing(answer: Answer) -> str:
    t = answer.timings
    total = sum(t.get(k, 0.0) for k in ("retrieval", "generation", "citations"))
    return (f"Answered in {total:.1f} s (retrieval {t.get('retrieval', 0):.1f} s · writing "
            f"{t.get('generation', 0):.1f} s · citation checks {t.get('citations', 0):.1f} s)")


def _md(text: str | None) -> str:
    """Text shown in a Markdown component: HTML escaped, Markdown's own markup defused."""
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", escape(text or "", quote=False))


def _warn(message: str) -> None:
    """A warning toast; gr.Warning renders HTML, so the message is escaped first."""
    gr.Warning(escape(message))


# --- the app --------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None, *, assistant: Assistant | None = None
) -> gr.Blocks:
    """Build the Gradio app over one Assistant (built from ``settings`` unless given)."""
    desk = Desk(assistant or Assistant(settings))
    with gr.Blocks(title="newsdesk", analytics_enabled=False) as blocks:
        # The stylesheet travels inside the Blocks: a mounted app looks like a launched one.
        gr.HTML(f"<style>{CSS}</style>", elem_id="nd-style", padding=False)
        gr.Markdown("## newsdesk — answers that cite their sources")
        summary = gr.Markdown(desk.summary(), elem_id="nd-summary")
        with gr.Tab("Ask", id="ask"):
            with gr.Accordion("Filters", open=False), gr.Row():
                outlets = gr.Dropdown(
                    choices=desk.outlets(), multiselect=True, label="Outlets",
                    info="Only these outlets (none: all)", elem_id="nd-outlets",
                )
                since = gr.Textbox(label="Since", placeholder="YYYY-MM-DD", elem_id="nd-since",
                                   info="Published on or after")
                until = gr.Textbox(label="Until", placeholder="YYYY-MM-DD", elem_id="nd-until",
                                   info="Published on or before")
                as_of = gr.Textbox(label="As of", placeholder="YYYY-MM-DD", elem_id="nd-as-of",
                                   info="Answer as if on this day")
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chat = gr.Chatbot(
                        label="Answers", elem_id="nd-chat", height=540, latex_delimiters=[],
                        feedback_options=None, buttons=["copy", "copy_all"],
                        placeholder="Ask about the indexed articles: every sentence of the answer "
                        "cites its source.",
                    )
                    question = gr.Textbox(
                        show_label=False, elem_id="nd-question", autofocus=True, submit_btn="Ask",
                        placeholder="Ask a question, e.g. When did Assad visit Moscow? "
                        "Follow-ups work too.",
                    )
                    with gr.Row():
                        status = gr.Markdown(elem_id="nd-status")
                        clear = gr.Button("New conversation", size="sm", scale=0, min_width=160,
                                          elem_id="nd-clear")
                with gr.Column(scale=2):
                    sources = gr.HTML(render_panel([]), label="Sources", elem_id="nd-sources",
                                      max_height=640, padding=True)
            turns = gr.State([])
        with gr.Tab("Timeline", id="timeline"):
            timeline_query = gr.Textbox(
                label="Timeline of", elem_id="nd-timeline-query", submit_btn="Show",
                placeholder="e.g. Ever Given Suez Canal (uses the Ask tab's filters)",
            )
            timeline_view = gr.HTML(elem_id="nd-timeline", padding=True)
        with gr.Tab("Library", id="library"), gr.Row(equal_height=False):
            with gr.Column(scale=2):
                # No file_types: Gradio would reject a whole batch for one odd file, while
                # ingestion reports each file it cannot read, with the reason.
                files = gr.File(file_count="multiple", elem_id="nd-upload",
                                label=f"Upload articles: {', '.join(sorted(SUPPORTED))}")
                results = gr.HTML(elem_id="nd-upload-results")
            with gr.Column(scale=3):
                search = gr.Textbox(label="Search titles", elem_id="nd-search")
                rows, count = desk.browse()
                table = gr.Dataframe(
                    value=rows, headers=LIBRARY_HEADERS, interactive=False, wrap=True,
                    max_height=360, elem_id="nd-library",
                    column_widths=["14%", "18%", "44%", "24%"],
                )
                listed = gr.Markdown(count, elem_id="nd-listed")
                reader = gr.HTML(elem_id="nd-reader", padding=True)

        chat_io: dict[str, Any] = {
            "inputs": [question, chat, turns, outlets, since, until, as_of],
            "outputs": [question, chat, sources, status, turns],
        }
        question.submit(desk.ask, **chat_io)
        timeline_query.submit(
            desk.timeline, inputs=[timeline_query, outlets, since, until, as_of],
            outputs=[timeline_view],
        )
        clear.click(desk.clear, outputs=[question, chat, sources, status, turns])
        chat.clear(desk.clear, outputs=[question, chat, sources, status, turns])

        def on_upload(
            paths: list[str] | None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio shows a progress bar
        ) -> tuple[Any, ...]:
            try:
                done = render_upload_results(desk.upload(paths, progress=progress))
            except Exception as exc:  # shown in the page, never as a traceback
                if not isinstance(exc, NewsdeskError):
                    log.exception("upload failed")
                _warn(error_message(exc))
                done = f'<p class="nd-error">{escape(error_message(exc))}</p>'
            rows, count = desk.browse(None)
            outlet_choices = gr.Dropdown(choices=desk.outlets())
            return None, done, rows, count, outlet_choices, desk.summary(), ""

        files.upload(on_upload, inputs=[files],
                     outputs=[files, results, table, listed, outlets, summary, search])

        def on_search(text: str) -> tuple[Any, str]:
            return desk.browse(text)

        search.change(on_search, inputs=[search], outputs=[table, listed])

        def on_select(evt: gr.SelectData) -> str:
            row = evt.row_value or []
            return desk.read(str(row[3]) if len(row) > 3 else None)

        table.select(on_select, outputs=[reader])

        def on_load() -> tuple[Any, ...]:
            rows, count = desk.browse(None)
            return desk.summary(), gr.Dropdown(choices=desk.outlets()), rows, count

        blocks.load(on_load, outputs=[summary, outlets, table, listed])
    return blocks


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    settings: Settings | None = None,
    *,
    assistant: Assistant | None = None,
    block: bool = True,
) -> gr.Blocks:
    """Serve the app on ``host:port`` (share links off). ``block=False`` returns once it is up."""
    desk = Desk(assistant or Assistant(settings))
    desk.warm_up()
    blocks = create_app(assistant=desk.assistant)
    blocks.queue(default_concurrency_limit=4)
    try:
        blocks.launch(
            server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
            show_error=False, quiet=not block, ssr_mode=False, run_history=False,
            footer_links=["gradio", "settings"],
        )
    except OSError:
        raise ConfigError(
            f"cannot serve the chat UI on {host}:{port}: the port is in use or the address is "
            "not available on this machine",
            hint="pick another with --port (or --host)",
        ) from None
    return blocks
