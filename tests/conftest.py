"""Shared fixtures: an isolated environment, real settings in a tmp dir, the real embedding model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.settings import Settings, get_settings
from index.config import IndexConfig
from index.embeddings import Embedder, get_embedder

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "index" / "samples"
SHARED_DATA = REPO.parent / "shared" / "data"
SEED_ARTICLE = SHARED_DATA / "seed-article.txt"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's NEWSDESK_* or OpenAI settings."""
    for key in list(os.environ):
        if key.startswith("NEWSDESK_") or key in {"OPENAI_API_KEY", "OPENAI_BASE_URL"}:
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real bundled all-MiniLM-L6-v2, loaded once per test session."""
    model = get_embedder(IndexConfig(data_dir=Path("/nonexistent")))
    model.encoder  # noqa: B018 - load now so per-test timings stay honest
    return model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with the index in a fresh temporary folder."""
    return get_settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Settings]:
    """The shipped sample articles, indexed once for every test that only reads."""
    from index import ingest

    settings = get_settings(data_dir=tmp_path_factory.mktemp("samples") / "data")
    report = ingest([SAMPLES], config=settings, embedder=embedder)
    assert not report.errors and report.added
    yield settings


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on loopback (Debian's package), shared by the session."""
    from tests import servers

    try:
        with servers.postgres() as url:
            yield url
    except servers.Unavailable as exc:
        pytest.skip(str(exc))


def write(path: Path, content: str | bytes) -> Path:
    """Create a file (and its folders) with this content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


LIVE_ENV = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEWSDESK_LLM_MODEL")}
"""The developer's real LLM settings, captured before isolation, for tests marked `live`."""


@pytest.fixture
def fake_llm() -> Iterator[object]:
    """An OpenAI-protocol server on loopback, scripted by the test."""
    from tests import fake_openai

    fake, stop = fake_openai.start()
    yield fake
    stop()
