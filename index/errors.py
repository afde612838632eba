"""Every error the index means a user to see, each saying how to fix the problem.

``NewsdeskError`` is the base of all of newsdesk's user-facing errors; it lives here, in the lowest
layer, so the query side (``assistant.errors``) can extend it without ``index`` importing upward.
The library raises these; only the faces (CLI, HTTP, UI) turn them into messages.
"""

from __future__ import annotations


def unexpected(exc: BaseException, where: str) -> str:
    """A skip's reason for a failure nobody foresaw: the failure named, in one printable line.

    Ingest turns every per-record failure into a skip of that record, so one strange input never
    costs the rest of the batch; this is the reason it shows when no better one is known.
    """
    detail = " ".join(str(exc).split())
    detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(detail) > 200:
        detail = detail[:200] + "..."
    name = type(exc).__name__
    return (
        f"unexpected {name} {where}" + (f": {detail}" if detail else "")
        + "; the rest of the batch was not affected (please report this input)"
    )


class NewsdeskError(Exception):
    """Base of all user-facing errors: a message plus a hint on what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(NewsdeskError):
    """A setting is missing, unknown or invalid."""


class InputError(NewsdeskError):
    """An input file, record or field cannot be used."""


class NothingIndexed(NewsdeskError):
    """A query was made before any article was ingested."""

    def __init__(self, data_dir: object) -> None:
        super().__init__(
            f"no articles indexed yet in {data_dir}",
            hint="run `newsdesk ingest PATH` first (or `newsdesk demo` for the sample articles)",
        )


class ArticleNotFound(NewsdeskError):
    """An article id that is not in the index."""

    def __init__(self, article_id: str) -> None:
        super().__init__(
            f"no article with id {article_id!r}",
            hint="`newsdesk list` shows the ids that are indexed",
        )


class StoreError(NewsdeskError):
    """The index (catalog, Chroma or BM25) cannot be opened or written."""


class EmbeddingError(NewsdeskError):
    """The embedding model cannot be loaded or called."""
