"""Sentence-aligned chunking: exact offsets, the model's token limit, and headers for retrieval."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from index.chunking import chunk_article, sentence_spans
from index.embeddings import Embedder
from index.models import Article
from tests.conftest import SEED_ARTICLE, SHARED_DATA


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("One. Two.", ["One.", "Two."]),
        ("The U.S. envoy met Dr. Smith. Then he left.", ["The U.S. envoy met Dr. Smith.", "Then he left."]),
        ('"We are ready," Lavrov said. He added more.', ['"We are ready," Lavrov said.', "He added more."]),
        ("Headline without stop\nBody sentence.", ["Headline without stop", "Body sentence."]),
        ("  Leading spaces.   Trailing spaces.  ", ["Leading spaces.", "Trailing spaces."]),
        ("Para one.\n\n\nPara two.", ["Para one.", "Para two."]),
        ("It rose 2.5 per cent on Oct. 22. Markets cheered.", ["It rose 2.5 per cent on Oct. 22.", "Markets cheered."]),
        ("", []),
        ("   \n\n  ", []),
    ],
)
def test_sentence_spans_slice_the_text_exactly(text: str, sentences: list[str]) -> None:
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == sentences


def article(text: str, **extra: object) -> Article:
    return Article(id="a", title="Title words", text=text, outlet="Harbor Ledger",
                   published=date(2015, 10, 21), **extra)  # type: ignore[arg-type]


def test_chunks_fit_the_token_budget_and_carry_a_header(embedder: Embedder) -> None:
    text = " ".join(f"Sentence number {i} talks about the summit in Moscow." for i in range(80))
    chunks = chunk_article(article(text), max_tokens=120, count_tokens=embedder.count_tokens)
    assert len(chunks) > 3
    assert all(n <= 120 for n in embedder.count_tokens([c.embed_text for c in chunks]))
    assert all(c.embed_text.startswith("Title words | Harbor Ledger | 2015-10-21\n") for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    spans = [s for c in chunks for s in c.sentences]
    assert spans == sentence_spans(text), "every sentence lands in exactly one chunk, in order"


def test_a_sentence_longer_than_the_budget_is_cut_at_words(embedder: Embedder) -> None:
    text = "Short one. " + " ".join(["boilerplate"] * 400) + " end. Final sentence."
    chunks = chunk_article(article(text), max_tokens=64, count_tokens=embedder.count_tokens)
    assert all(n <= 64 for n in embedder.count_tokens([c.embed_text for c in chunks]))
    for c in chunks:
        for s, e in c.sentences:
            piece = text[s:e]
            assert piece == piece.strip() and piece
    covered = "".join(text[s:e] for c in chunks for s, e in c.sentences)
    assert re.sub(r"\s+", "", covered) == re.sub(r"\s+", "", text), "no text is lost"


def test_chunk_text_is_the_article_span(embedder: Embedder) -> None:
    text = SEED_ARTICLE.read_text() if SEED_ARTICLE.exists() else "A first one. A second one.\n\nA third."
    a = article(text)
    for c in chunk_article(a, max_tokens=100, count_tokens=embedder.count_tokens):
        assert c.text == a.text[c.start : c.end]


@pytest.mark.skipif(not (SHARED_DATA / "realtimeqa").exists(), reason="../shared/data is absent")
def test_spans_are_exact_on_real_scraped_articles(embedder: Embedder) -> None:
    corpus = SHARED_DATA / "realtimeqa" / "dev-small" / "corpus.jsonl"
    for line in corpus.read_text().splitlines()[:150]:
        record = json.loads(line)
        a = Article(id=record["id"], title=record["title"], text=record["text"])
        chunks = chunk_article(a, max_tokens=200, count_tokens=embedder.count_tokens)
        assert all(n <= 200 for n in embedder.count_tokens([c.embed_text for c in chunks]))
        for c in chunks:
            for s, e in c.sentences:
                assert 0 <= s < e <= len(a.text)
                assert a.text[s:e] == a.text[s:e].strip()
