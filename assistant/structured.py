"""Structured answers: the model fills in JSON under a schema, and code writes the [n] markers.

Small models forget markers, invent numbers and answer what the sources do not say.  Asked for
JSON instead (``answer_schema(numbers)``), the model can only produce::

    {"answerable": true, "sentences": [{"text": "...", "sources": [1, 3]}, ...]}
    {"answerable": false, "sentences": []}

with every source number one that was offered: llama.cpp compiles the schema into a grammar
the sampler must follow, and OpenAI-compatible servers take it as ``response_format``.
``render_stream(pieces)`` turns the JSON, as it streams, into answer text: each sentence as it
completes, with its markers (``Assad visited Moscow on October 20 [1][3].``), or the
cannot-answer sentinel.  Citation enforcement then treats that text like any other answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from assistant.chat_model import ChatEvent, TextDelta
from assistant.citations import strip_markers
from assistant.errors import LLMError
from assistant.models import CANNOT_ANSWER
from index.chunking import sentence_spans

MAX_SENTENCES = 3
MAX_SENTENCE_CHARS = 300

_ANSWERABLE = re.compile(r'"answerable"\s*:\s*(true|false)')
_SENTENCES = re.compile(r'"sentences"\s*:\s*\[')
_QUOTE = re.compile(r'"quote"\s*:\s*(?=")')
_END = re.compile(r"[.!?…]+[\"'”’)]*$")
_DECODER = json.JSONDecoder()


def answer_schema(numbers: Sequence[int], *, quote: bool = False) -> dict[str, Any]:
    """The JSON schema of an answer citing only ``numbers`` (the sources offered).

    ``quote`` puts a ``"quote"`` first: the source sentence that answers, copied before the
    model decides whether it can answer (an evidence check that ``render_stream`` verifies).
    """
    first = {"quote": {"type": "string", "maxLength": MAX_SENTENCE_CHARS}} if quote else {}
    return {
        "type": "object",
        "properties": {
            **first,
            "answerable": {"type": "boolean"},
            "sentences": {
                "type": "array",
                "maxItems": MAX_SENTENCES,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "maxLength": MAX_SENTENCE_CHARS},
                        "sources": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 3,
                            "items": {"type": "integer", "enum": sorted(set(numbers))},
                        },
                    },
                    "required": ["text", "sources"],
                    "additionalProperties": False,
                },
            },
        },
        "required": [*first, "answerable", "sentences"],
        "additionalProperties": False,
    }


def render_sentence(text: str, numbers: Iterable[int]) -> str:
    """One answer item as text with markers: each of its sentences ends ``... [1][3].``.

    Markers the model wrote into the text itself are removed first: only ``sources`` cites.
    """
    markers = "".join(f"[{n}]" for n in dict.fromkeys(numbers))
    text = strip_markers(" ".join(text.split()))
    out = []
    for start, end in sentence_spans(text):
        part = text[start:end].strip()
        match = _END.search(part)
        body, end_mark = (part[: match.start()], match.group(0)) if match else (part, ".")
        out.append(f"{body.rstrip()} {markers}{end_mark}" if markers else part)
    return " ".join(out)


def render_stream(
    pieces: Iterable[ChatEvent], *, quoted: Callable[[str], bool] | None = None
) -> Iterator[ChatEvent]:
    """The answer text of a streamed JSON reply: each sentence as soon as its item is complete.

    With ``quoted``, a reply whose ``"quote"`` it rejects (not a sentence of the sources) is
    read as ``answerable: false``. ``Usage`` events pass through. Raises LLMError when the
    reply is not the schema's JSON (cut short by the token limit, or a server that ignored
    the schema).
    """
    buffer = ""
    position: int | None = None  # where the next unread item of "sentences" starts
    answerable: bool | None = None
    written = 0
    for event in pieces:
        if not isinstance(event, TextDelta):
            yield event
            continue
        buffer += event.text
        if answerable is None and (found := _ANSWERABLE.search(buffer)):
            answerable = found.group(1) == "true"
            if answerable and quoted is not None:
                answerable = quoted(_quote(buffer))
        if not answerable:
            continue
        if position is None and (opened := _SENTENCES.search(buffer)):
            position = opened.end()
        while position is not None:
            item, position = _next_item(buffer, position)
            if item is None:
                break
            text = _item_text(item)
            if text:
                yield TextDelta((" " if written else "") + text)
                written += 1
    try:
        reply = json.loads(buffer)
    except json.JSONDecodeError as exc:
        raise LLMError(
            f"the model's structured answer is not valid JSON ({exc.msg} at character {exc.pos})",
            hint="raise NEWSDESK_LLM_MAX_TOKENS if the answer was cut short",
        ) from None
    if not isinstance(reply, dict) or not isinstance(reply.get("answerable"), bool):
        raise LLMError("the model's structured answer does not follow the answer schema")
    if not written:
        yield TextDelta(CANNOT_ANSWER)


def _quote(buffer: str) -> str:
    """The ``"quote"`` value of a reply written so far ('' without one)."""
    found = _QUOTE.search(buffer)
    if not found:
        return ""
    try:
        value, _ = _DECODER.raw_decode(buffer, found.end())
    except json.JSONDecodeError:
        return ""
    return value if isinstance(value, str) else ""


def _next_item(buffer: str, position: int) -> tuple[dict[str, Any] | None, int | None]:
    """The complete item at ``position`` and where the one after it starts; (None, position)
    while it is still being written, (None, None) at the end of the array."""
    rest = buffer[position:]
    stripped = rest.lstrip().removeprefix(",").lstrip()
    if not stripped:
        return None, position
    if stripped[0] == "]":
        return None, None
    try:
        item, end = _DECODER.raw_decode(stripped)
    except json.JSONDecodeError:
        return None, position
    return (item if isinstance(item, dict) else {}), position + len(rest) - len(stripped) + end


def _item_text(item: dict[str, Any]) -> str:
    text, numbers = item.get("text"), item.get("sources")
    if not isinstance(text, str) or not isinstance(numbers, list):
        return ""
    return render_sentence(text, [n for n in numbers if isinstance(n, int)])
