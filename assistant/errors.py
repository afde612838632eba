"""Every error newsdesk means a user to see, each saying how to fix the problem.

The index's errors (``index.errors``) are re-exported here, so a face catches everything from one
module; the query side adds its own.  The library raises these; only the faces (CLI, HTTP, UI)
turn them into messages.
"""

from __future__ import annotations

from index.errors import (
    ArticleNotFound,
    ConfigError,
    EmbeddingError,
    InputError,
    NewsdeskError,
    NothingIndexed,
    StoreError,
)

__all__ = [
    "ArticleNotFound",
    "ConfigError",
    "EmbeddingError",
    "InputError",
    "LLMError",
    "NewsdeskError",
    "NothingIndexed",
    "StoreError",
]


class LLMError(NewsdeskError):
    """The language model could not be reached or gave an unusable reply."""
