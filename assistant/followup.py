"""Turn a follow-up question into a standalone one before retrieval.

``condense(history, question, settings=..., chat_model=...) -> str`` is the entry point, and
``split_conversation(messages)`` cuts a chat into the turns so far and its last user question
(``Assistant.chat`` calls both).  Retrieval only sees the question, so "And what did Lavrov say?" after "When did Assad visit Moscow?" must carry the topic
along.  Given a chat model (``Assistant.chat_model``: the one that writes the answers, when one is
configured), the model rewrites the question (``prompts/condense.txt``, variables ``{history}``
and ``{question}``).  Without one, or when the model fails, a rule does it:

1. With no earlier question, the question is used as typed.
2. A question is a *follow-up* when it opens with a connective ("and", "but", "also", "so",
   "then", "what about", "how about"), refers back with a pronoun ("he", "she", "it", "they",
   "him", "her", "them", "his", "its", "their", "there", "this", "these", "those"), or has at most
   three words ("Why?", "Who else?").  Any other question starts a new topic and is used as typed.
3. A follow-up keeps its own words (minus the opening connective) and gets the *key terms* of the
   previous standalone question appended in brackets:
   "And what did Lavrov say?" → "What did Lavrov say? (Assad, Moscow)".  Key terms are the names
   in that question (capitalised words and runs such as "Free Syrian Army", years, quoted
   phrases); a question without names contributes its content words instead.  Terms the
   follow-up already names are not repeated, and at most six are kept.
4. "What about X?" (or "And X?" with no question word) asks the previous question again about X:
   "What about Putin?" → "When did Assad visit Moscow? (Putin)".

The rule folds over the conversation, so a chain of follow-ups keeps the topic of the question
that opened it.  Only the user's turns matter to the rule; the LLM also sees the answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.chat_model import ChatModel
from assistant.errors import InputError, LLMError
from assistant.prompts import load_prompts

if TYPE_CHECKING:
    from assistant.settings import Settings

log = logging.getLogger(__name__)

Message = Mapping[str, Any]
"""A chat message as OpenAI and Gradio write it: ``{"role": "user", "content": "..."}``."""

MAX_TERMS = 6
HISTORY_MESSAGES = 6  # the LLM sees the last three exchanges: enough to resolve "he" or "that"
ANSWER_CHARS = 400  # answers are cut short in the prompt; the topic is in their first sentences

_CONNECTIVE = re.compile(r"^(?:and|but|also|so|then|ok(?:ay)?|well)\b[\s,]*", re.IGNORECASE)
_WHAT_ABOUT = re.compile(r"^(?:what|how)\s+about\s+(?P<topic>.+)$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*")
_NAME_WORD = r"(?:[A-Z]|(?:al|el|ad|bin|ibn|de|d)[-’'][A-Z])[\w’'-]*"
_NAME = re.compile(
    rf"{_NAME_WORD}(?:\s+(?:(?:of|the|de|la|von|van|bin|al)\s+)*{_NAME_WORD})*"
    r"|\b(?:1[5-9]|20)\d\d\b"
)
_QUOTED = re.compile(r"[\"“]([^\"”]{2,60})[\"”]")
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_MARKER = re.compile(r"\s*\[\d+(?:[,;–-]\s*\d+)*\]")

REFERENCES = frozenset({
    "he", "she", "it", "they", "him", "her", "them", "his", "hers", "its", "their", "theirs",
    "there", "this", "these", "those",
})
QUESTION_WORDS = frozenset({
    "what", "who", "whom", "whose", "when", "where", "why", "how", "which", "did", "does", "do",
    "is", "are", "was", "were", "can", "could", "will", "would", "should", "has", "have", "had",
})
STOPWORDS = QUESTION_WORDS | REFERENCES | frozenset({
    "a", "an", "the", "and", "or", "but", "so", "also", "then", "of", "in", "on", "at", "to",
    "for", "from", "by", "with", "about", "into", "over", "after", "before", "during", "as",
    "than", "that", "i", "me", "my", "we", "our", "you", "your", "be", "been", "being", "not",
    "no", "yes", "any", "some", "all", "more", "most", "other", "such", "only", "own", "same",
    "very", "just", "ok", "okay", "well", "tell", "give", "show", "list", "please", "say", "said",
    "says", "get", "got", "go", "went", "make", "made", "happen", "happened", "here",
})


def condense(
    history: Sequence[Message],
    question: str,
    *,
    settings: Settings,
    chat_model: ChatModel | None = None,
) -> str:
    """The question rewritten to stand on its own, given the chat so far.

    ``chat_model`` (``Assistant.chat_model``) rewrites it when given, with the condense prompt
    from the settings' prompts folder; without one, or when the model fails or its reply is not
    a question, the rule in the module docstring does (a failure is logged: the answer itself
    will report an unreachable model to the user). With no earlier user question the question
    is returned as typed, without asking the model.
    """
    question = " ".join(question.split())
    if not _user_questions(history):
        return question
    if chat_model is not None:
        try:
            return _condense_with_model(chat_model, history, question, settings)
        except (LLMError, _Unusable) as exc:
            log.warning("condensing with %s failed (%s); using the rule instead",
                        chat_model.name, exc)
    return condense_by_rule(history, question)


def split_conversation(messages: Sequence[Message]) -> tuple[list[Message], str]:
    """The turns before the last user message, and that message's text (the question).

    Raises InputError when no user message has text.
    """
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user" and text_of(messages[index]).strip():
            return list(messages[:index]), " ".join(text_of(messages[index]).split())
    raise InputError(
        "messages: no user message with text (the last one is the question)",
        hint='end the conversation with {"role": "user", "content": "QUESTION"}',
    )


def text_of(message: Message) -> str:
    """A message's text: its string content, or its parts of type 'text' joined by newlines."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def condense_by_rule(history: Sequence[Message], question: str) -> str:
    """The rule-based standalone question (see the module docstring); needs no model."""
    previous: _Standalone | None = None
    for earlier in _user_questions(history):
        previous = _standalone(earlier, previous)
    return str(_standalone(" ".join(question.split()), previous))


# --- the rule -------------------------------------------------------------------------------


@dataclass
class _Standalone:
    """A question as it will be searched: its own words plus terms carried over from before."""

    core: str
    terms: list[str] = field(default_factory=list)

    def key_terms(self) -> list[str]:
        """Names in the core (else its content words), then the terms it carried."""
        found = [_POSSESSIVE.sub("", q) for q in _QUOTED.findall(self.core)]
        for match in _NAME.finditer(self.core):
            words = match.group().split()
            # A capitalised question or function word opening the sentence is not a name.
            while words and words[0].lower() in STOPWORDS and not words[0].isupper():
                words.pop(0)
            if words:
                found.append(_POSSESSIVE.sub("", " ".join(words)))
        if not found:
            found = [w for w in _words(self.core) if w.lower() not in STOPWORDS and len(w) > 2]
        return _unique(found + self.terms)

    def __str__(self) -> str:
        return f"{self.core} ({', '.join(self.terms)})" if self.terms else self.core


def _standalone(question: str, previous: _Standalone | None) -> _Standalone:
    if previous is None or not question:
        return _Standalone(question)
    rest = _CONNECTIVE.sub("", question).strip()
    opened_with_connective = rest != question
    about = _WHAT_ABOUT.match(rest)
    words = [w.lower() for w in _words(rest)]
    if about or (opened_with_connective and words and len(words) <= 4
                 and not QUESTION_WORDS & set(words)):
        topic = (about.group("topic") if about else rest).rstrip(" ?.!")
        asked = previous.core.lower()
        carried = [t for t in _unique([topic, *previous.terms]) if t.lower() not in asked]
        return _Standalone(previous.core, carried[:MAX_TERMS])
    follow_up = opened_with_connective or bool(REFERENCES & set(words)) or len(words) <= 3
    if not follow_up or not rest:
        return _Standalone(question)
    core = rest[0].upper() + rest[1:]
    own = core.lower()
    carried = [t for t in previous.key_terms() if t.lower() not in own]
    return _Standalone(core, carried[:MAX_TERMS])


def _words(text: str) -> list[str]:
    return [w.rstrip(".") for w in _WORD.findall(text)]


def _unique(terms: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for term in terms:
        if term and term.lower() not in seen:
            seen.add(term.lower())
            out.append(term)
    return out


def _user_questions(history: Sequence[Message]) -> list[str]:
    return [
        text_of(m).strip() for m in history if m.get("role") == "user" and text_of(m).strip()
    ]


# --- the LLM ------------------------------------------------------------------------------


class _Unusable(Exception):
    """The model could not be asked, or its reply is not a question."""


def _condense_with_model(
    model: ChatModel, history: Sequence[Message], question: str, settings: Settings
) -> str:
    template = load_prompts(settings.writer.prompts_dir)["condense"]
    prompt = template.format(history=_transcript(history), question=question)
    reply = model.complete([{"role": "user", "content": prompt}], max_tokens=120, temperature=0)
    return _clean_reply(reply.text)


def _clean_reply(content: str) -> str:
    """The first line of the reply without a label or quotes; a question of sensible length."""
    lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = re.sub(r"^(?:standalone question|question)\s*:\s*", "", text, flags=re.IGNORECASE)
    text = text.strip().strip("\"'“”").strip()
    if not text or len(text) > 400:
        raise _Unusable(f"unusable reply {content[:80]!r}")
    return text


def _transcript(history: Sequence[Message]) -> str:
    lines = []
    for message in list(history)[-HISTORY_MESSAGES:]:
        content = text_of(message)
        if not content.strip():
            continue
        if message.get("role") == "user":
            lines.append(f"User: {' '.join(content.split())}")
        elif message.get("role") == "assistant":
            text = " ".join(_MARKER.sub("", content).split())
            if len(text) > ANSWER_CHARS:
                text = text[:ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
            lines.append(f"Assistant: {text}")
    return "\n".join(lines)
