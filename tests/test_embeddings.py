"""The bundled embedding model: offline, torch-free at run time, equal to the upstream model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from index.bundled_model import PINNED, bundled_model, package_dir, sha256
from index.embeddings import Embedder
from index.errors import EmbeddingError
from tests.conftest import SAMPLES


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


def test_onnx_vectors_equal_the_sentence_transformers_model_on_every_sample_chunk(
    embedder: Embedder,
) -> None:
    np = pytest.importorskip("numpy")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from index.chunking import chunk_article
    from index.readers import read_paths

    texts = [
        chunk.embed_text
        for article in read_paths([SAMPLES])
        if not hasattr(article, "reason")
        for chunk in chunk_article(article, max_tokens=200, count_tokens=embedder.count_tokens)
    ]
    texts += ["x", "When did Assad visit Moscow?", "word " * 400]  # tiny, a question, truncated
    ours = np.array(embedder.embed_documents(texts))
    model = sentence_transformers.SentenceTransformer(str(package_dir()), device="cpu")
    theirs = model.encode(texts, batch_size=16, normalize_embeddings=True)
    cosines = (ours * theirs).sum(axis=1)
    assert len(texts) > 30
    assert cosines.min() >= 0.999, f"least cosine {cosines.min()}"


def test_the_export_is_made_once_and_reused_and_a_damaged_one_is_made_again(
    tmp_path: Path,
) -> None:
    first = bundled_model(tmp_path)
    manifest = json.loads((first.onnx_path.parent / "manifest.json").read_text())
    assert manifest["source_sha256"] == PINNED
    assert manifest["sha256"]["model.onnx"] == sha256(first.onnx_path)
    stamp = first.onnx_path.stat().st_mtime_ns

    assert bundled_model(tmp_path).onnx_path.stat().st_mtime_ns == stamp  # reused, not exported

    data = bytearray(first.onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.onnx_path.write_bytes(bytes(data))
    again = bundled_model(tmp_path)
    assert sha256(again.onnx_path) == manifest["sha256"]["model.onnx"]


def test_weights_that_differ_from_the_pinned_upstream_release_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "model"
    shutil.copytree(package_dir(), source)
    config = json.loads((source / "config.json").read_text())
    config["hidden_act"] = "relu"
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(EmbeddingError, match="does not match the sha256"):
        bundled_model(tmp_path / "cache", source=source)
    assert not list((tmp_path / "cache").rglob("model.onnx"))


def test_the_embedder_is_also_a_llama_index_embedding_model(embedder: Embedder) -> None:
    from llama_index.core.base.embeddings.base import BaseEmbedding

    model = embedder.model
    assert isinstance(model, BaseEmbedding)
    text = "The canal reopened after six days."
    assert model.get_text_embedding(text) == embedder.embed_documents([text])[0]
    assert model.get_query_embedding(text) == embedder.embed_query(text)


def test_a_twin_with_its_own_cache_shares_the_model_but_not_the_remembered_vectors(
    embedder: Embedder,
) -> None:
    text = "A sentence that only this test embeds."
    embedder.embed_cached([text])
    twin = embedder.with_own_cache()

    assert twin.encoder is embedder.encoder
    assert text in embedder._cache and text not in twin._cache
    assert twin.embed_cached([text]) == embedder.embed_cached([text])
    assert text in twin._cache
