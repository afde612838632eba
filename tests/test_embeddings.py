"""The bundled embedding model: offline, deterministic, and cheap to share between configurations."""

from __future__ import annotations

import math

from index.embeddings import Embedder


def test_the_bundled_model_embeds_offline_into_unit_vectors(embedder: Embedder) -> None:
    [vector] = embedder.embed_documents(["Assad made a surprise visit to Moscow."])
    assert len(vector) == 384
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-3)


def test_related_sentences_score_closer_than_unrelated_ones(embedder: Embedder) -> None:
    query = embedder.embed_query("When did Assad visit Moscow?")
    near, far = embedder.embed_documents(
        ["Assad made a surprise visit to Moscow.", "The bakery sold out of croissants."]
    )

    def cosine(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(query, near) > cosine(query, far) + 0.2


def test_a_twin_with_its_own_cache_shares_the_model_but_not_the_remembered_vectors(
    embedder: Embedder,
) -> None:
    text = "A sentence that only this test embeds."
    embedder.embed_cached([text])
    twin = embedder.with_own_cache()

    assert twin.model is embedder.model
    assert text in embedder._cache and text not in twin._cache
    assert twin.embed_cached([text]) == embedder.embed_cached([text])
    assert text in twin._cache
