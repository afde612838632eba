"""Ingesting into a Chroma server (`chroma run`) instead of embedded Chroma."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.settings import get_settings
from index import ingest, open_store
from index.embeddings import Embedder
from tests.conftest import SAMPLES

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    chroma = shutil.which("chroma")
    if chroma is None:
        pytest.fail("the `chroma` command (from the chromadb package) is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("chroma run did not start within 60 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_ingest_into_a_chroma_server(chroma_server: int, tmp_path: Path, embedder: Embedder) -> None:
    settings = get_settings(data_dir=tmp_path / "d", chroma_host="127.0.0.1", chroma_port=chroma_server)
    report = ingest([SAMPLES], config=settings, embedder=embedder)
    assert len(report.added) == 16 and not report.errors
    store = open_store(settings)
    assert store.collection.count() == store.stats()["dense_chunks"] > 16
    assert not (tmp_path / "d" / "chroma").exists(), "nothing went to embedded Chroma"
    again = ingest([SAMPLES], config=settings, embedder=embedder)
    assert len(again.unchanged) == 16
