"""newsdesk's retrieval inside a llama-index query engine: nodes keep their exact sentences.

The index, Chroma and the embedding model are real; the LLM is llama-index's ``MockLLM``, which
answers with the prompt it was given.
"""

from __future__ import annotations

from datetime import date

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle, TextNode

from assistant.errors import ConfigError
from assistant.llama import NewsdeskRetriever
from assistant.retrieve import Filters, retrieve
from assistant.settings import Settings
from index import open_store
from index.embeddings import Embedder

ASSAD_Q = "When did Assad visit Moscow?"


def test_a_query_engine_answers_from_nodes_that_carry_their_sentences(
    sample_index: Settings, embedder: Embedder
) -> None:
    store = open_store(sample_index)
    retriever = NewsdeskRetriever(settings=sample_index, store=store, embedder=embedder)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())

    response = engine.query(ASSAD_Q)

    sources = response.source_nodes
    assert sources and "assad" in sources[0].node.metadata["article_id"]
    scores = [s.get_score() for s in sources]
    assert scores == sorted(scores, reverse=True)
    for source in sources:
        node, meta = source.node, source.node.metadata
        assert isinstance(node, TextNode) and node.start_char_idx is not None
        article = store.get_article(meta["article_id"])
        assert (meta["title"], meta["outlet"], meta["url"]) == (
            article.title, article.outlet, article.url
        )
        assert meta["published"] == (article.published.isoformat() if article.published else None)
        assert node.node_id.startswith(article.id + "#")
        assert node.source_node and node.source_node.node_id == article.id
        assert node.text == article.text[node.start_char_idx : node.end_char_idx]
        assert meta["sentences"]
        for start, end in meta["sentences"]:
            sentence = article.text[start:end]
            assert sentence.strip() == sentence and sentence
            offset = start - node.start_char_idx
            assert node.text[offset : offset + len(sentence)] == sentence
    prompt = str(response)  # MockLLM echoes the prompt: sources shown with title, not offsets
    assert sources[0].node.metadata["title"] in prompt
    assert "sentences:" not in prompt and "article_id:" not in prompt


def test_nodes_follow_retrieve_with_its_filters_and_k(
    sample_index: Settings, embedder: Embedder
) -> None:
    store = open_store(sample_index)
    filters = Filters(as_of=date(2021, 3, 27))
    question = "What happened to the container ship in the Suez Canal?"
    retriever = NewsdeskRetriever(
        settings=sample_index, store=store, embedder=embedder, filters=filters, mode="bm25", k=5
    )

    nodes = retriever.retrieve(QueryBundle(question))

    hits = retrieve(question, filters, mode="bm25", k=5, settings=sample_index, store=store,
                    embedder=embedder).hits
    assert [n.node.node_id for n in nodes] == [h.chunk_id for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits]
    assert all(n.node.metadata["published"] <= "2021-03-27" for n in nodes)


def test_an_unknown_retriever_name_says_which_exist(
    sample_index: Settings, embedder: Embedder
) -> None:
    retriever = NewsdeskRetriever(settings=sample_index, embedder=embedder, mode="psychic")
    with pytest.raises(ConfigError, match="unknown retriever 'psychic'") as info:
        retriever.retrieve(ASSAD_Q)
    assert "dense, bm25, hybrid" in (info.value.hint or "")
