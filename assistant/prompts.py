"""Prompt templates live as files in ``prompts/``; this module loads them and checks their variables.

Templates use ``str.format`` fields.  A template missing a required field, or naming one the code
does not supply, is a configuration error found when settings load, not mid-answer.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

from assistant.errors import ConfigError

REQUIRED: dict[str, set[str]] = {
    "answer_system": {"as_of", "cannot_answer"},
    "answer_json": {"as_of"},
    "answer_quote": {"as_of"},
    "answer_user": {"sources", "question"},
    "source": {"number", "title", "outlet", "published", "text", "dates"},
    "condense": {"history", "question"},
}


@lru_cache(maxsize=8)
def load_prompts(folder: Path) -> dict[str, str]:
    """Every template in ``folder``, checked. Raises ConfigError naming the file at fault."""
    prompts: dict[str, str] = {}
    for name, needed in REQUIRED.items():
        path = folder / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"prompt file {path} cannot be read: {exc.strerror or exc}",
                hint="restore it from the repository or point NEWSDESK_PROMPTS_DIR elsewhere",
            ) from None
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            raise ConfigError(
                f"prompt file {path} is not a valid template: {exc}",
                hint="write literal braces as {{ and }}",
            ) from None
        if fields != needed:
            missing, unknown = needed - fields, fields - needed
            raise ConfigError(
                f"prompt file {path} has the wrong variables"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(unknown)}" if unknown else ""),
                hint=f"it must use exactly {sorted(needed)} (literal braces as {{{{ and }}}})",
            )
        prompts[name] = text
    return prompts
