"""The chat UI: a Gradio app where every answer sentence links to its highlighted source.

``create_app(settings) -> gr.Blocks`` builds the app without serving it (the HTTP service mounts
it with ``gradio.mount_gradio_app(app, blocks, path="/ui")``); ``launch(host, port, settings)``
serves it on loopback, share links off.

The app translates the Python API to Gradio and holds no logic of its own: the conversation is
``Assistant.chat_stream`` (which condenses a follow-up and reports what it searched and why the
LLM was not used), filters are ``make_filters``, the Library tab is ``Library``.  Every event
calls a method of ``Desk``, plain Python that tests drive without a browser; the HTML comes
from ``assistant.ui_render``.  Errors become messages in one place, ``error_message``: a
warning toast and a line in the page, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.answer import Assistant
from assistant.errors import ConfigError, InputError, NewsdeskError, NothingIndexed
from assistant.filters import make_filters
from assistant.library import FileResult, Library
from assistant.models import Answer
from assistant.retrieve import Filters, retrieve
from assistant.settings import Settings
from assistant.ui_render import (
    CSS,
    describe_filters,
    md,
    render_answer,
    render_article,
    render_error,
    render_panel,
    render_pending,
    render_sources,
    render_timeline,
    render_timing,
    render_upload_results,
)
from index.models import IngestReport
from index.readers import SUPPORTED

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
LIBRARY_ROWS = 500  # the browse table shows this many articles; the search narrows them
LIBRARY_HEADERS = ["published", "outlet", "title", "id"]
FILTER_LABELS = {"outlets": "Outlets", "since": "Since", "until": "Until", "as_of": "As of"}
"""What the filter boxes are called on the page, so a message names the box to fix."""

Progress = Callable[..., Any]
"""``progress((done, total), desc=...)`` as ``gr.Progress`` takes it."""
ChatUpdate = tuple[str, list[Any], str, str, list[dict[str, Any]]]
"""What ``Desk.ask`` yields: (question box, chat messages, sources panel, status line, turns)."""


def error_message(error: BaseException) -> str:
    """The one translation of errors into the page's words; unexpected errors are logged and
    say where to look instead of showing a traceback."""
    if isinstance(error, NothingIndexed):
        return ("No articles are indexed yet. Add some in the Library tab, or run "
                "`newsdesk ingest PATH` (`newsdesk demo` indexes the sample articles).")
    if isinstance(error, NewsdeskError):
        return str(error)
    log.error("unexpected error in the chat UI", exc_info=error)
    return (f"Something went wrong ({type(error).__name__}: {error}). The details are in the "
            "server log; please try again.")


def _warn(message: str) -> None:
    """A warning toast; gr.Warning renders HTML, so the message is escaped first."""
    gr.Warning(escape(message))


def filters_from_boxes(
    outlets: Sequence[str] | str | None, since: str | None, until: str | None, as_of: str | None
) -> Filters:
    """The filter boxes as ``Filters``. Raises InputError naming the box when one is invalid."""
    return make_filters(outlets=outlets, since=since, until=until, as_of=as_of,
                        labels=FILTER_LABELS)


class Desk:
    """The app's behaviour as plain Python over one ``Assistant``; the Blocks only wire it up."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.library = Library(assistant.settings, store=assistant.store,
                               embedder=assistant.embedder)

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

        ``turns`` (one dict per answered question: question, answer text, sources HTML) is the
        conversation so far: the history a follow-up is understood with, and the sources panel.
        A failed question is not added to it.
        """
        chat, turns = list(chat or []), list(turns or [])
        question = " ".join((message or "").split())
        panel = render_panel(turns)
        if not question:
            yield message, chat, panel, "Type a question first.", turns
            return
        try:
            filters = filters_from_boxes(outlets, since, until, as_of)
        except InputError as exc:
            _warn(error := error_message(exc))
            yield message, chat, panel, f"⚠ {md(error)}", turns
            return
        turn = len(turns) + 1
        chat += [{"role": "user", "content": escape(question)},
                 {"role": "assistant", "content": render_pending()}]
        yield "", list(chat), panel, "Searching…", turns
        messages = [m for t in turns for m in ({"role": "user", "content": t["question"]},
                                               {"role": "assistant", "content": t["answer"]})]
        messages.append({"role": "user", "content": question})
        answer: Answer | None = None
        try:
            text = ""
            for event in self.assistant.chat_stream(messages, filters):
                if event.type == "delta":
                    text += event.text or ""
                    chat[-1] = {"role": "assistant", "content": render_pending(text)}
                    yield "", list(chat), panel, "Writing the answer…", turns
                elif event.type == "reset":
                    text = ""
                    chat[-1] = {"role": "assistant", "content": render_pending()}
                    note = "The language model failed; answering extractively…"
                    yield "", list(chat), panel, note, turns
                else:
                    answer = event.answer
            assert answer is not None
            sources = render_sources(answer, self.library.get_article, turn=turn,
                                     question=question)
        except Exception as exc:  # noqa: BLE001 - logged by error_message
            _warn(error := error_message(exc))
            chat[-1] = {"role": "assistant", "content": render_error(error)}
            yield "", list(chat), panel, f"⚠ {md(error)}", turns
            return
        if answer.fallback:
            _warn(answer.notice or answer.fallback)
        chat[-1] = {"role": "assistant", "content": render_answer(
            answer, turn=turn, filters=describe_filters(filters))}
        turns.append({"question": question, "answer": answer.text, "sources": sources})
        yield "", list(chat), render_panel(turns), render_timing(answer), turns

    def warm_up(self) -> None:
        """Load the embedding model and open the indexes now, so the first question is quick."""
        try:
            retrieve("warm up", Filters(), settings=self.assistant.settings,
                     store=self.assistant.store, embedder=self.assistant.embedder)
        except NothingIndexed:
            self.assistant.embedder.embed_cached(["warm up"])

    def clear(self) -> ChatUpdate:
        """A fresh conversation."""
        return "", [], render_panel([]), "", []

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
            filters = filters_from_boxes(outlets, since, until, as_of)
            return render_timeline(self.assistant.timeline(query.strip(), filters))
        except NewsdeskError as exc:
            return f'<p class="nd-error">{escape(error_message(exc))}</p>'

    # library

    def summary(self) -> str:
        """One line on what is indexed and what writes the answers (Markdown)."""
        try:
            stats = self.library.stats()
        except NewsdeskError as exc:
            return f"⚠ {md(error_message(exc))}"
        llm = self.assistant.llm
        writer = ("extractive answers (no language model configured)"
                  if llm.mode == "extractive" else f"answers written by {md(llm.name)}")
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
            return [o for o in self.library.stats()["outlets"] if o != "(unknown)"]
        except NewsdeskError:
            return []

    def browse(self, search: str | None = None) -> tuple[list[list[str]], str]:
        """Rows (published, outlet, title, id) of articles whose title contains ``search``."""
        search = (search or "").strip() or None
        try:
            page = self.library.list_articles(search=search, limit=LIBRARY_ROWS)
        except NewsdeskError as exc:
            return [], f"⚠ {md(error_message(exc))}"
        table = [[a.published.isoformat() if a.published else "", a.outlet or "", a.title, a.id]
                 for a in page.articles]
        if not page.total:
            return table, "No articles indexed yet: upload some above."
        shown = f"{len(table)} matching “{md(search)}”" if search else f"{len(table)}"
        return table, f"{shown} of {page.total} articles · select a row to read it"

    def read(self, article_id: str | None) -> str:
        """The article in full, or a message saying why it cannot be shown."""
        if not article_id:
            return ""
        try:
            return render_article(self.library.get_article(article_id))
        except NewsdeskError as exc:
            return f'<p class="nd-error">{escape(error_message(exc))}</p>'

    def upload(
        self, paths: Sequence[str | Path] | None, progress: Progress | None = None
    ) -> list[FileResult]:
        """Index uploaded files; one result per file (articles added, unchanged, skipped + why).

        Raises InputError (before indexing anything) when a file is over the upload limit.
        """
        files = [Path(p) for p in paths or []]
        if not files:
            return []

        def on_progress(report: IngestReport, total: int) -> None:
            done = len(report.added) + len(report.updated) + len(report.unchanged)
            if progress:
                progress((done, total), desc=f"indexed {done} of {total} articles")

        if progress:
            progress((0, len(files)), desc="reading files")
        uploads = [(f.name, f.read_bytes()) for f in files]
        return self.library.ingest_files(uploads, progress=on_progress).files


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

        conversation = [question, chat, sources, status, turns]
        question.submit(desk.ask, inputs=[question, chat, turns, outlets, since, until, as_of],
                        outputs=conversation)
        timeline_query.submit(
            desk.timeline, inputs=[timeline_query, outlets, since, until, as_of],
            outputs=[timeline_view],
        )
        clear.click(desk.clear, outputs=conversation)
        chat.clear(desk.clear, outputs=conversation)

        def on_upload(
            paths: list[str] | None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio shows a progress bar
        ) -> tuple[Any, ...]:
            try:
                done = render_upload_results(desk.upload(paths, progress=progress))
            except Exception as exc:  # noqa: BLE001 - logged by error_message
                _warn(error := error_message(exc))
                done = f'<p class="nd-error">{escape(error)}</p>'
            rows, count = desk.browse(None)
            outlet_choices = gr.Dropdown(choices=desk.outlets())
            return None, done, rows, count, outlet_choices, desk.summary(), ""

        files.upload(on_upload, inputs=[files],
                     outputs=[files, results, table, listed, outlets, summary, search])
        search.change(desk.browse, inputs=[search], outputs=[table, listed])

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
    """Serve the app on ``host:port`` (share links off). ``block=False`` returns once it is up.

    Raises ConfigError when the port is in use or the address is not available.
    """
    desk = Desk(assistant or Assistant(settings))
    desk.warm_up()
    blocks = create_app(assistant=desk.assistant)
    blocks.queue(default_concurrency_limit=4)
    try:
        blocks.launch(
            server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
            show_error=False, quiet=not block, ssr_mode=False, run_history=False,
            max_file_size=int(desk.library.max_upload_bytes),  # NEWSDESK_API_MAX_UPLOAD_MB
            footer_links=["gradio", "settings"],
        )
    except OSError:
        raise ConfigError(
            f"cannot serve the chat UI on {host}:{port}: the port is in use or the address is "
            "not available on this machine",
            hint="pick another with --port (or --host)",
        ) from None
    return blocks
