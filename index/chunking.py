"""Split an article into sentence-aligned chunks that know each sentence's character span.

Sentences come from NLTK's Punkt model (the copy llama-index ships, so nothing is downloaded),
run paragraph by paragraph, a giant paragraph window by window; ``article.text[start:end]`` is
exactly each sentence.  Consecutive
sentences are packed into chunks that fit the embedding model's input, counted in its own tokens,
with a short title/outlet/date header so retrieval sees that context too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from index.lean_import import import_without
from index.models import Article, Chunk

TokenCounter = Callable[[Sequence[str]], list[int]]
CHUNKER_VERSION = "1"

_PARAGRAPH = re.compile(r"[^\n]+")
_SPACE = re.compile(r"\s")

WINDOW = 2_000
"""Most characters handed to Punkt at once.  NLTK runs each of its regular-expression scans
under a wall-clock guard (``nltk.redos``, 5 s), which a multi-megabyte paragraph exceeds on a
busy machine; scans of a bounded window take milliseconds, so how an article splits never
depends on the machine's load."""


# NLTK's package import pulls in scikit-learn, SciPy and pandas for features newsdesk never uses
# (classifiers, collocation statistics): seconds of start-up for a sentence splitter.
_NLTK_OPTIONAL = ("sklearn", "scipy.stats", "pandas")


@lru_cache(maxsize=1)
def _punkt():  # type: ignore[no-untyped-def]
    """NLTK's Punkt English model, from the copy llama-index ships (no download)."""
    import importlib.util

    punkt = import_without("nltk.tokenize.punkt", _NLTK_OPTIONAL)
    import nltk.data

    spec = importlib.util.find_spec("llama_index.core")  # located, not imported: it is slow
    assert spec is not None and spec.submodule_search_locations
    cache = Path(next(iter(spec.submodule_search_locations))) / "_static" / "nltk_cache"
    if str(cache) not in nltk.data.path:
        nltk.data.path.insert(0, str(cache))
    return punkt.PunktTokenizer("english")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) offsets of every sentence in ``text``, whitespace trimmed, in order.

    Line breaks always end a sentence (headlines, captions and list items carry no full stop).
    """
    spans: list[tuple[int, int]] = []
    for para in _PARAGRAPH.finditer(text):
        base, body = para.start(), para.group()
        for start, end in _paragraph_spans(body):
            piece = body[start:end]
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece) - len(piece.rstrip())
            if end - start - lead - trail > 0:
                spans.append((base + start + lead, base + end - trail))
    return spans


def _paragraph_spans(para: str) -> Iterator[tuple[int, int]]:
    """Punkt's sentence spans of one paragraph, read WINDOW characters at a time.

    Of each window only the sentences followed by two more are kept: a boundary is decided by
    the token after it, so every kept boundary saw its whole context, and the reading resumes at
    the first sentence not kept.  A sentence longer than the window is cut at a space.
    """
    punkt = _punkt()
    pos = 0
    while len(para) - pos > WINDOW:
        window = para[pos : pos + WINDOW]
        found = list(punkt.span_tokenize(window))
        if len(found) >= 2:
            kept = found[:-2] if len(found) > 2 else found[:1]
            resume = found[len(kept)][0]
        else:
            spaces = [m.start() for m in _SPACE.finditer(window, WINDOW // 2)]
            resume = spaces[-1] + 1 if spaces else WINDOW
            kept = [(0, resume)]
        for start, end in kept:
            yield pos + start, pos + end
        pos += resume
    for start, end in punkt.span_tokenize(para[pos:]):
        yield pos + start, pos + end


def header(article: Article) -> str:
    """The context line prepended to every chunk's embedded text."""
    bits = [article.title]
    if article.outlet:
        bits.append(article.outlet)
    if article.published:
        bits.append(article.published.isoformat())
    return " | ".join(bits)


def chunk_article(
    article: Article,
    *,
    max_tokens: int,
    count_tokens: TokenCounter,
    spans: list[tuple[int, int]] | None = None,
) -> list[Chunk]:
    """Pack the article's sentences into chunks of at most ``max_tokens`` (header included).

    ``spans`` are the article's ``sentence_spans`` when the caller has them already.  A sentence
    longer than the budget on its own (scraped boilerplate, tables) is cut at word boundaries
    into pieces that fit, so no chunk is silently truncated by the embedding model.
    """
    head = header(article)
    spans = sentence_spans(article.text) if spans is None else spans
    if not spans:
        return []
    budget = max(16, max_tokens - count_tokens([head])[0] - 2)
    sizes = count_tokens([article.text[s:e] for s, e in spans])
    pieces: list[tuple[int, int, int]] = []
    for (start, end), size in zip(spans, sizes, strict=True):
        if size <= budget:
            pieces.append((start, end, size))
        else:
            pieces.extend(_cut_long(article.text, start, end, budget, count_tokens))

    groups: list[list[tuple[int, int, int]]] = [[]]
    used = 0
    for piece in pieces:
        if groups[-1] and used + piece[2] > budget:
            groups.append([])
            used = 0
        groups[-1].append(piece)
        used += piece[2]

    chunks = []
    for i, group in enumerate(groups):
        sentences = [(s, e) for s, e, _ in group]
        body = article.text[sentences[0][0] : sentences[-1][1]]
        chunks.append(
            Chunk(
                id=f"{article.id}#{i}",
                article_id=article.id,
                index=i,
                sentences=sentences,
                text=body,
                embed_text=f"{head}\n{body}",
            )
        )
    return chunks


def _cut_long(
    text: str, start: int, end: int, budget: int, count_tokens: TokenCounter
) -> list[tuple[int, int, int]]:
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    counts = count_tokens([text[s:e] for s, e in words])
    out: list[tuple[int, int, int]] = []
    first, used = 0, 0
    for i, n in enumerate(counts):
        if i > first and used + n > budget:
            out.append((words[first][0], words[i - 1][1], used))
            first, used = i, 0
        used += n
    out.append((words[first][0], words[-1][1], used))
    return out
