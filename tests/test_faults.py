"""Fault injection at the process level: a second writer beside a running server, and SIGKILL
inside the write protocol of `newsdesk ingest` and `newsdesk remove`.

Every process here is real: `newsdesk serve` on 127.0.0.1, the `newsdesk` CLI, real Chroma and
the bundled model.  A kill lands on a boundary of the write protocol (before or after each
vector write, vector delete and catalog transaction), chosen by a seeded random draw, so a
failing case names its seed and step and replays exactly.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from assistant.retrieve import DenseRetriever, Filters, retrieve
from assistant.settings import Settings, get_settings
from index import Article, ingest_articles
from index.embeddings import Embedder
from index.store import Store
from tests.conftest import REPO
from tests.test_dense_filters import check_dense_counts

pytestmark = pytest.mark.slow

TOPICS = [
    ("Harbor Ledger", "2021-03-01", "Tide gates", "The city closed its tide gates before the storm surge."),
    ("Harbor Ledger", "2021-03-05", "Ferry strike", "Ferry crews walked out over night shift pay."),
    ("Northgate Post", "2021-03-09", "Orchard frost", "A late frost destroyed most of the apple blossom."),
    ("Northgate Post", "2021-03-12", "Library fire", "Fire crews saved the rare maps from the old library."),
    ("Valley Courier", "2021-03-15", "Rail tunnel", "Engineers broke through the last wall of the rail tunnel."),
    ("Valley Courier", "2021-03-18", "Bee census", "Volunteers counted wild bee nests along the river banks."),
    ("Harbor Ledger", "2021-03-21", "Lighthouse sale", "The old lighthouse was sold at auction to a museum."),
    ("Northgate Post", "2021-03-24", "Chess final", "A schoolgirl won the regional chess final in ten moves."),
    ("Valley Courier", "2021-03-27", "Dam repair", "Divers sealed a crack in the reservoir dam wall."),
    ("Harbor Ledger", "2021-03-30", "Whale rescue", "Rescuers freed a humpback whale caught in fishing nets."),
]


def corpus() -> list[Article]:
    """Ten short articles on distinct topics, each a few chunks long at 40 tokens a chunk."""
    articles = []
    for n, (outlet, day, title, lead) in enumerate(TOPICS):
        body = " ".join(
            f"{lead} Witness {k} described the {title.lower()} in detail on day {k}."
            for k in range(1, 6)
        )
        articles.append(
            Article(id=f"story-{n}", title=title, text=body, outlet=outlet, published=day)
        )
    return articles


def write_jsonl(path: Path, articles: list[Article]) -> Path:
    path.write_text(
        "".join(json.dumps(a.model_dump(mode="json", exclude={"source"})) + "\n" for a in articles)
    )
    return path


def newsdesk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(data_dir: Path) -> Iterator[httpx.Client]:
    """`newsdesk serve` on a free loopback port, extractive, until the block ends."""
    port = free_port()
    log = data_dir.parent / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port),
             "--data-dir", str(data_dir), "--llm", "extractive", "--no-ui"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, log.read_text(errors="replace")[-3000:]
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
            yield http
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


FILTERS = [
    {},
    {"as_of": "2021-04-10"},
    {"outlets": ["Valley Courier"]},
    {"since": "2021-04-01", "until": "2021-04-30"},
]


def test_a_running_server_sees_another_process_ingest_and_remove(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    ingest_articles(corpus()[:4], config=settings, embedder=embedder)
    data_dir = settings.index.data_dir
    fresh = Article(
        id="okapi-count", title="Okapi census", outlet="Valley Courier", published="2021-04-08",
        text="Rangers counted forty okapi in the Ituri rainforest. The okapi census took a month.",
    )
    question = {"question": "How many okapi did the rangers count in the Ituri rainforest?"}
    with serving(data_dir) as http:
        for filters in FILTERS:  # the server has opened its view of the index
            assert http.post("/v1/ask", json={**question, **filters}).status_code == 200

        done = newsdesk("ingest", str(write_jsonl(tmp_path / "new.jsonl", [fresh])),
                        "--data-dir", str(data_dir))
        assert done.returncode == 0, done.stderr

        for retriever in ("dense", "bm25", "hybrid"):
            for filters in FILTERS:
                response = http.post(
                    "/v1/ask", json={**question, **filters, "retriever": retriever}
                )
                assert response.status_code == 200, (retriever, filters, response.text[:300])
                sources = response.json()["sources"]
                assert sources and sources[0]["article_id"] == "okapi-count", (retriever, filters)

        gone = newsdesk("remove", "okapi-count", "--data-dir", str(data_dir))
        assert gone.returncode == 0, gone.stderr
        for retriever in ("dense", "bm25", "hybrid"):
            for filters in FILTERS:
                response = http.post(
                    "/v1/ask", json={**question, **filters, "retriever": retriever}
                )
                assert response.status_code == 200, (retriever, filters, response.text[:300])
                ids = {s["article_id"] for s in response.json()["sources"]}
                assert "okapi-count" not in ids, (retriever, filters)


# --- SIGKILL inside the write protocol -------------------------------------------------------

KILLER = """
import os, signal, sys

step, args = int(sys.argv[1]), sys.argv[2:]
count = 0

def boundary():
    global count
    count += 1
    if count == step:
        os.kill(os.getpid(), signal.SIGKILL)

def wrap(cls, name):
    inner = getattr(cls, name, None)
    if inner is None:
        return
    def wrapped(*a, **k):
        boundary()
        result = inner(*a, **k)
        boundary()
        return result
    setattr(cls, name, wrapped)

from index.sqlite_catalog import SqliteCatalog
from index.vectors import ChromaVectors

for name in ("add", "delete"):  # the write protocol's steps, the same in every version
    wrap(ChromaVectors, name)
for name in ("replace", "delete"):
    wrap(SqliteCatalog, name)

from assistant.cli import main
sys.argv = ["newsdesk", *args]
main()
"""


SMALL_STEPS = {"NEWSDESK_EMBED_BATCH_SIZE": "1", "NEWSDESK_CHUNK_TOKENS": "40",
               "NEWSDESK_DENSE_CHUNKS_PER_ARTICLE": "4"}
"""Many small protocol steps to kill between (the seeds' steps were chosen with these)."""


def killed_at(step: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with these arguments, SIGKILLed at the ``step``-th protocol boundary."""
    return subprocess.run(
        [sys.executable, "-c", KILLER, str(step), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **SMALL_STEPS},
    )


def check_whole_or_absent(store: Store, expected: dict[str, Article]) -> None:
    """Each catalog article is one of ``expected`` as given, with all its chunks in order and
    a vector for each dense chunk."""
    vectors = set(store.collection.get(include=[])["ids"])
    by_article: dict[str, list[int]] = {}
    for chunk in store.all_chunks():
        by_article.setdefault(chunk.article_id, []).append(chunk.index)
    listed = {a.id for a in store.list_articles()}
    assert set(by_article) == listed <= set(expected)
    for article_id, indexes in by_article.items():
        assert sorted(indexes) == list(range(len(indexes))), article_id
        assert store.get_article(article_id).text == expected[article_id].text
    missing = store.catalog.dense_chunk_ids() - vectors
    assert not missing, f"dense chunks without a vector: {sorted(missing)[:3]}"
    strays = vectors - store.catalog.dense_chunk_ids()
    assert strays <= set(store.catalog.pending_vectors()), "a stray vector is not journaled"
    check_dense_counts(store)


def check_no_orphan_reaches_an_answer(store: Store, settings: Settings, embedder: Embedder) -> None:
    """Dense search fills its candidates with committed chunks only, filtered or not, and
    the fused hits are committed chunks."""
    dense = DenseRetriever.from_settings(settings, store=store, embedder=embedder)
    known = {c.id for c in store.all_chunks()}
    committed = len(store.catalog.dense_chunk_ids())
    for title in [t for _, _, t, _ in TOPICS]:
        for filters in (Filters(), Filters(as_of="2021-04-01")):
            (signal_,) = dense.search(f"What happened with the {title.lower()}?", filters)
            ids = [c for c, _ in signal_.scored]
            assert set(ids) <= known, "a vector the catalog does not list reached the ranking"
            if not filters.active:
                assert len(ids) == min(dense.candidates, committed), "strays took top-k places"
        if committed:
            hits = retrieve(title, settings=settings, store=store, embedder=embedder).hits
            assert {h.chunk_id for h in hits} <= known


def check_exactly_indexed(store: Store, expected: set[str]) -> None:
    """After a resumed run: these articles, once each, and Chroma holds exactly their vectors."""
    assert {a.id for a in store.list_articles()} == expected
    assert store.count_articles() == len(expected)
    chunks = store.all_chunks()
    assert len({(c.article_id, c.index) for c in chunks}) == len(chunks)
    assert set(store.collection.get(include=[])["ids"]) == store.catalog.dense_chunk_ids()


INGEST_SEEDS = [11, 37, 41]  # steps 15, 22, 13
REMOVE_SEEDS = [5, 1, 9]  # steps 3, 2, 4


@pytest.mark.parametrize("seed", INGEST_SEEDS)
def test_sigkill_during_ingest_leaves_whole_articles_and_resumes(
    seed: int, embedder: Embedder, tmp_path: Path
) -> None:
    articles = corpus()
    source = write_jsonl(tmp_path / "corpus.jsonl", articles)
    data_dir = tmp_path / "data"
    step = random.Random(seed).randint(1, 30)
    run = killed_at(step, "ingest", str(source), "--data-dir", str(data_dir))
    assert run.returncode == -signal.SIGKILL, f"seed {seed} step {step}: {run.stderr[-500:]}"

    settings = get_settings(data_dir=data_dir, embed_batch_size=1, chunk_tokens=40,
                            dense_chunks_per_article=4)
    store = Store(settings)
    check_whole_or_absent(store, {a.id: a for a in articles})
    check_no_orphan_reaches_an_answer(store, settings, embedder)

    resumed = ingest_articles(articles, config=settings, store=store, embedder=embedder)
    assert not resumed.errors and len(resumed.added) + len(resumed.unchanged) == len(articles)
    check_exactly_indexed(store, {a.id for a in articles})
    check_no_orphan_reaches_an_answer(store, settings, embedder)


@pytest.fixture(scope="module")
def full_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ten articles indexed once, by a process that has ended (so its folder can be
    copied whole); each removal case works on a copy."""
    folder = tmp_path_factory.mktemp("faults")
    source = write_jsonl(folder / "corpus.jsonl", corpus())
    done = newsdesk("ingest", str(source), "--data-dir", str(folder / "data"),
                    env=SMALL_STEPS)
    assert done.returncode == 0, done.stderr
    return folder / "data"


@pytest.mark.parametrize("seed", REMOVE_SEEDS)
def test_sigkill_during_remove_leaves_no_orphan_in_answers(
    seed: int, full_index: Path, embedder: Embedder, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(full_index, data_dir)
    articles = {a.id: a for a in corpus()}
    victims = sorted(random.Random(seed).sample(sorted(articles), 6))
    step = random.Random(seed).randint(1, 4)  # before/after the catalog commit, the deletes
    run = killed_at(step, "remove", *victims, "--data-dir", str(data_dir))
    assert run.returncode == -signal.SIGKILL, f"seed {seed} step {step}: {run.stderr[-500:]}"

    settings = get_settings(data_dir=data_dir, embed_batch_size=1, chunk_tokens=40,
                            dense_chunks_per_article=4)
    store = Store(settings)
    check_whole_or_absent(store, articles)
    check_no_orphan_reaches_an_answer(store, settings, embedder)

    store.remove(victims)
    check_exactly_indexed(store, set(articles) - set(victims))
    check_no_orphan_reaches_an_answer(store, settings, embedder)
