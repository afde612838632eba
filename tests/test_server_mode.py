"""Server mode: several newsdesk processes share one index held by a PostgreSQL server (catalog,
keyword search, writers' lock) and a Chroma server (vectors), both real and on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from filelock import Timeout
from typer.testing import CliRunner

from assistant.answer import Assistant
from assistant.cli import app
from assistant.errors import ConfigError
from assistant.retrieve import retrieve
from assistant.settings import Settings, get_settings
from index import ingest, open_store
from index.dates import day_number
from index.embeddings import Embedder
from index.errors import StoreError
from index.keywords import KeywordFilter
from index.pg_catalog import SCHEMA_VERSION, PgCatalog
from index.store import Store
from tests import servers
from tests.conftest import REPO, SAMPLES, write
from tests.test_dense_filters import check_dense_counts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    try:
        with servers.chroma(tmp_path_factory.mktemp("chroma-server")) as port:
            yield port
    except servers.Unavailable as exc:
        pytest.fail(str(exc))


def server_env(pg_url: str, chroma_port: int, collection: str, local: Path) -> dict[str, str]:
    """The environment of a server-mode process; ``local`` is a data folder that must stay empty."""
    return {
        "NEWSDESK_CATALOG_URL": pg_url,
        "NEWSDESK_CHROMA_HOST": "127.0.0.1",
        "NEWSDESK_CHROMA_PORT": str(chroma_port),
        "NEWSDESK_COLLECTION": collection,
        "NEWSDESK_DATA_DIR": str(local),
        "NEWSDESK_LLM": "extractive",
    }


def server_settings(pg_url: str, chroma_port: int, collection: str, local: Path) -> Settings:
    return get_settings(
        catalog_url=pg_url, chroma_host="127.0.0.1", chroma_port=chroma_port,
        collection=collection, data_dir=local, llm="extractive",
    )


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    return env | {"PYTHONPATH": str(REPO)} | extra


@pytest.fixture(scope="module")
def server_samples(
    pg_url: str, chroma_port: int, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Settings:
    """The sample articles ingested straight into server mode (collection `samples`)."""
    settings = server_settings(pg_url, chroma_port, "samples", tmp_path_factory.mktemp("nolocal"))
    report = ingest([SAMPLES], config=settings, embedder=embedder)
    assert len(report.added) == 16 and not report.errors
    return settings


def test_server_mode_needs_a_chroma_server_and_a_postgresql_url() -> None:
    with pytest.raises(ConfigError, match="NEWSDESK_CHROMA_HOST"):
        get_settings(catalog_url="postgresql://newsdesk@db.example/newsdesk")
    with pytest.raises(ConfigError, match="postgresql://"):
        get_settings(catalog_url="mysql://db.example/newsdesk", chroma_host="127.0.0.1")


def test_an_unreachable_catalog_is_a_store_error_saying_what_to_do(tmp_path: Path) -> None:
    url = f"postgresql://newsdesk@127.0.0.1:{servers.free_port()}/newsdesk"
    settings = server_settings(url, 8000, "unreachable", tmp_path)
    with pytest.raises(StoreError, match="cannot open the catalog at postgresql://newsdesk@127") as e:
        open_store(settings)
    assert e.value.hint and "NEWSDESK_CATALOG_URL" in e.value.hint
    assert not tmp_path.joinpath("catalog.sqlite3").exists()


def test_keyword_search_runs_in_postgresql_with_filters_before_the_cut(
    server_samples: Settings,
) -> None:
    store = open_store(server_samples)
    keywords = store.keyword_index()
    assert store.keyword_index() is keywords, "kept while the generation stands"
    best = keywords.articles.search("Assad visit Moscow Putin", 3)
    assert "sample-assad-moscow-visit" in dict(best)
    assert [s for _, s in best] == sorted((s for _, s in best), reverse=True)
    assert keywords.chunks.search("the of and", 5) == []  # stop words only: nothing to rank

    outlet = store.get_article("sample-assad-moscow-visit").outlet
    other = next(o for o in store.stats()["outlets"] if o != outlet)
    elsewhere = KeywordFilter(outlets=(other,))
    in_sql = keywords.chunks.search("Assad Moscow", 50, elsewhere)
    assert in_sql, "chunks of the other outlet match too"
    outlets = {c.article_id: store.get_article(c.article_id).outlet
               for c in store.catalog.chunks([c for c, _ in in_sql]).values()}
    assert set(outlets.values()) == {other}
    assert keywords.chunks.search("Assad Moscow", 3, elsewhere) == in_sql[:3], "filtered, then cut"
    since = day_number(store.get_article("sample-assad-moscow-visit").published) + 1
    later = keywords.articles.search("Assad Moscow", 50, KeywordFilter(first_day=since))
    assert later and "sample-assad-moscow-visit" not in dict(later)
    assert all(d >= since for d in store.catalog.published_days(dict(later)).values())


def test_keyword_scores_in_postgresql_equal_the_embedded_modes(
    server_samples: Settings, sample_index: Settings
) -> None:
    """Same tokens, same BM25: each level ranks the same documents with the same scores,
    filtered or not."""
    questions = [json.loads(line)["question"]
                 for line in (REPO / "evals" / "questions.jsonl").read_text().splitlines() if line]
    local = open_store(sample_index)
    embedded, server = local.keyword_index(), open_store(server_samples).keyword_index()
    days = sorted(local.catalog.published_days([a.id for a in local.list_articles()]).values())
    filters = [None, KeywordFilter(outlets=(local.list_articles()[0].outlet or "",)),
               KeywordFilter(first_day=days[len(days) // 2], last_day=days[-1])]
    compared = 0
    for question in questions:
        for level in ("chunks", "articles"):
            for where in filters:
                here = getattr(embedded, level).search(question, 10, where)
                assert_same_ranking(getattr(server, level).search(question, 10, where), here)
                compared += bool(here)
    assert compared > 3 * len(questions), "most questions find documents at every level"


def assert_same_ranking(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    """The same ids in the same order, with the same scores up to float rounding."""
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-9)


def test_vector_counts_in_postgresql_equal_the_embedded_modes(
    server_samples: Settings, sample_index: Settings
) -> None:
    """The counts a filtered dense search is routed by: kept by each write, the same numbers
    in both modes."""
    server, local = open_store(server_samples), open_store(sample_index)
    check_dense_counts(server)
    days = sorted(local.catalog.published_days([a.id for a in local.list_articles()]).values())
    filters = [KeywordFilter(outlets=(a.outlet or "",)) for a in local.list_articles()] + [
        KeywordFilter(first_day=days[3]), KeywordFilter(last_day=days[-3]),
        KeywordFilter(outlets=("Harbor Ledger", "Meridian Wire"), first_day=days[2],
                      last_day=days[-2]),
    ]
    for within in filters:
        assert server.catalog.dense_counts(within) == local.catalog.dense_counts(within)


def test_a_catalog_of_the_tsvector_layout_is_upgraded_with_its_keyword_index(
    server_samples: Settings,
) -> None:
    import psycopg

    url = server_samples.index.catalog_url
    assert url is not None
    with psycopg.connect(url.get_secret_value(), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS legacy CASCADE; CREATE SCHEMA legacy")
        for table in ("state", "articles", "chunks", "mentions", "pending_vectors"):
            conn.execute(f"CREATE TABLE legacy.{table} (LIKE samples.{table} INCLUDING ALL); "
                         f"INSERT INTO legacy.{table} SELECT * FROM samples.{table}")
        conn.execute("UPDATE legacy.state SET schema_version = '1'; "
                     "ALTER TABLE legacy.articles ADD COLUMN tsv tsvector")
    upgraded = PgCatalog(server_samples.index.model_copy(update={"collection": "legacy"}))
    try:
        assert upgraded._one("SELECT schema_version FROM state")[0] == SCHEMA_VERSION
        assert not upgraded._rows("SELECT 1 FROM information_schema.columns WHERE "
                                  "table_schema = 'legacy' AND column_name = 'tsv'")
        served = open_store(server_samples).catalog
        for within in (KeywordFilter(last_day=20151231), KeywordFilter(outlets=("Harbor Ledger",))):
            assert upgraded.dense_counts(within) == served.dense_counts(within), "counted on open"
        original = open_store(server_samples).keyword_index()
        for question in ("When did Assad visit Moscow?", "What did Lavrov say?"):
            assert_same_ranking(upgraded.keywords.chunks.search(question, 10),
                                original.chunks.search(question, 10))
            assert_same_ranking(upgraded.keywords.articles.search(question, 5),
                                original.articles.search(question, 5))
    finally:
        upgraded.close()


def test_writers_on_two_sessions_take_turns_and_a_killed_holder_lets_go(
    server_samples: Settings,
) -> None:
    first, second = PgCatalog(server_samples.index), PgCatalog(server_samples.index)
    try:
        with first.write_lock.acquire(timeout=5), pytest.raises(Timeout):
            second.write_lock.acquire(timeout=0.3)
        with second.write_lock.acquire(timeout=5):
            pass
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK_AND_WAIT],
            env=child_env(server_env_of(server_samples)), stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout and holder.stdout.readline().strip() == "locked"
        with pytest.raises(Timeout):
            second.write_lock.acquire(timeout=0.3)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with second.write_lock.acquire(timeout=10):
            assert second.write_lock.is_locked
    finally:
        first.close()
        second.close()


HOLD_LOCK_AND_WAIT = """
import time
from assistant.settings import get_settings
from index.pg_catalog import PgCatalog
catalog = PgCatalog(get_settings().index)
catalog.write_lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def server_env_of(settings: Settings) -> dict[str, str]:
    index = settings.index
    assert index.catalog_url is not None
    return server_env(index.catalog_url.get_secret_value(), index.chroma_port, index.collection,
                      index.data_dir)


def start_replica(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = servers.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--no-ui"],
        env=child_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_up(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"replica exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    pytest.fail(f"replica at {url} did not come up")


def cited(answer: dict) -> set[str]:
    return {c["article_id"] for c in answer["citations"]}


def test_two_replicas_and_an_ingesting_process_share_one_index(
    pg_url: str, chroma_port: int, tmp_path: Path
) -> None:
    local = tmp_path / "must-stay-empty"
    env = server_env(pg_url, chroma_port, "replicas", local)
    replicas = [start_replica(env) for _ in range(2)]
    try:
        for proc, url in replicas:
            wait_up(proc, url)
        (_, a), (_, b) = replicas
        ingesting = subprocess.run(
            [sys.executable, "-m", "assistant.cli", "ingest", str(SAMPLES)],
            env=child_env(env), capture_output=True, text=True, timeout=300, check=False,
        )
        assert ingesting.returncode == 0, ingesting.stderr[-2000:]
        assert "added 16" in ingesting.stdout
        for url in (a, b):
            assert httpx.get(f"{url}/v1/stats", timeout=30).json()["articles"] == 16

        bridge = {"id": "saltmarsh-bridge", "title": "Saltmarsh Bridge reopens", "outlet": "Test Wire",
                  "published": "2024-03-05", "text": "The Saltmarsh Bridge reopened to traffic on "
                  "Monday after eleven months of repairs. Engineers replaced the bridge's deck."}
        added = httpx.post(f"{a}/v1/articles", json=bridge, timeout=120)
        assert added.status_code == 200 and added.json()["added"] == ["saltmarsh-bridge"]

        asked = httpx.post(f"{b}/v1/ask", timeout=120,
                           json={"question": "When did the Saltmarsh Bridge reopen?"})
        assert asked.status_code == 200
        assert cited(asked.json()) == {"saltmarsh-bridge"}, asked.json()["text"]
        assert httpx.get(f"{b}/v1/articles/saltmarsh-bridge", timeout=30).json()["title"] == (
            "Saltmarsh Bridge reopens")
        sample = httpx.post(f"{a}/v1/ask", timeout=120,
                            json={"question": "When did Assad visit Moscow?"}).json()
        assert sample["short_answer"]["text"] == "October 20"  # the sample index is there too
        assert cited(sample) and cited(sample) <= {"sample-assad-moscow-visit",
                                                   "sample-lavrov-free-syrian-army"}

        assert httpx.delete(f"{b}/v1/articles/saltmarsh-bridge", timeout=60).status_code == 200
        assert httpx.get(f"{a}/v1/articles/saltmarsh-bridge", timeout=30).status_code == 404
        again = httpx.post(f"{a}/v1/ask", timeout=120,
                           json={"question": "When did the Saltmarsh Bridge reopen?"}).json()
        assert "saltmarsh-bridge" not in cited(again)
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(30)
    assert not local.exists(), "server mode wrote nothing to a local folder"


KILLING_INGEST = """
import os, signal, sys
from assistant.settings import get_settings
from index import ingest, open_store

point, corpus = sys.argv[1], sys.argv[2]
settings = get_settings()
store = open_store(settings)
calls = []

def kill_on_second(method):
    def call(*args, **kwargs):
        result = method(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # the first batch is whole; die inside the second
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call

if point == "after-vectors":
    store.vectors.add = kill_on_second(store.vectors.add)
else:
    store.catalog.replace = kill_on_second(store.catalog.replace)
ingest([corpus], config=settings, store=store)
"""


def corpus(folder: Path, version: int, n: int = 12) -> Path:
    """``n`` articles of several chunks each; every version words them differently."""
    lines = []
    for i in range(n):
        sentences = " ".join(
            f"Harbor district {i} reported zebracorn{version} count {j} in version {version}."
            for j in range(40))
        lines.append(json.dumps({"id": f"art-{i}", "title": f"Harbor report {i}",
                                 "outlet": "Kill Wire", "published": f"2024-01-{i + 1:02d}",
                                 "text": sentences}))
    return write(folder / f"v{version}.jsonl", "\n".join(lines) + "\n")


def assert_whole(store: Store, versions: dict[str, set[str]]) -> None:
    """Every article present once, as one whole version (all its chunks, every vector there)."""
    hashes = store.content_hashes(versions)
    assert set(hashes) == set(versions), "no article lost"
    chunks = store.all_chunks()
    dense = store.catalog.dense_chunk_ids()
    vectors = set(store.vectors.ids())
    for article_id, digest in hashes.items():
        assert digest in versions[article_id]
        mine = [c.id for c in chunks if c.article_id == article_id]
        assert mine == [f"{article_id}#{digest}#{i}" for i in range(len(mine))], "one whole version"
        assert {c for c in mine if c in dense} <= vectors, "every committed vector is there"
    assert_keywords_match(store)
    check_dense_counts(store)


def assert_keywords_match(store: Store) -> None:
    """The keyword index holds exactly the committed chunks and articles, and its totals."""
    rows = store.catalog._rows
    keys = {(level, key) for level, key in rows("SELECT level, key FROM kw_docs")}
    assert keys == {(0, c.id) for c in store.all_chunks()} | {
        (1, a.id) for a in store.list_articles(limit=None)}
    assert not rows("SELECT 1 FROM kw_postings p WHERE NOT EXISTS "
                    "(SELECT 1 FROM kw_docs d WHERE d.doc = p.doc)"), "no postings left behind"
    assert sorted(rows("SELECT level, docs, length FROM kw_totals WHERE docs > 0")) == sorted(
        rows("SELECT level, count(*), sum(length) FROM kw_docs GROUP BY level"))


@pytest.mark.parametrize("point", ["after-vectors", "after-commit"])
def test_a_kill_mid_write_leaves_both_servers_consistent(
    point: str, pg_url: str, chroma_port: int, tmp_path: Path, embedder: Embedder
) -> None:
    collection = f"kill-{point}"
    settings = server_settings(pg_url, chroma_port, collection, tmp_path / "local").updated(
        embed_batch_size=4, dense_chunks_per_article=0)
    first = ingest([corpus(tmp_path, 1)], config=settings, embedder=embedder)
    store = open_store(settings)
    v1 = store.content_hashes([f"art-{i}" for i in range(12)])
    child = subprocess.run(
        [sys.executable, "-c", KILLING_INGEST, point, str(corpus(tmp_path, 2))],
        env=child_env(server_env(pg_url, chroma_port, collection, tmp_path / "local")
                      | {"NEWSDESK_EMBED_BATCH_SIZE": "4",
                         "NEWSDESK_DENSE_CHUNKS_PER_ARTICLE": "0"}),
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert len(first.added) == 12

    v2 = {a: {v1[a], h} for a, h in _hashes_of(tmp_path / "v2.jsonl", settings).items()}
    assert_whole(store, v2)
    now = store.content_hashes(v2)
    updated = [a for a in now if now[a] != v1[a]]
    assert 0 < len(updated) < 12, "the kill came mid-ingest"
    orphans = set(store.vectors.ids()) - store.catalog.dense_chunk_ids()
    if point == "after-vectors":
        assert orphans, "the killed batch's vectors were written but never committed"
    assert orphans <= set(store.catalog.pending_vectors()), "the journal in PostgreSQL names them"
    stale = next(a for a in v2 if now[a] == v1[a])
    number = stale.split("-")[1]
    for mode in ("dense", "hybrid"):
        hits = retrieve(f"Harbor district {number} zebracorn2 count", mode=mode, k=20,
                        settings=settings, store=store).hits
        assert hits and all(h.chunk_id in store.chunks([h.chunk_id]) for h in hits)
        assert not {h.chunk_id for h in hits} & orphans, "uncommitted vectors are never answers"

    with store.writing(timeout=10):  # the killed writer's lock went with its session
        pass
    rest = ingest([tmp_path / "v2.jsonl"], config=settings, embedder=embedder)
    assert len(rest.updated) + len(rest.unchanged) == 12 and not rest.errors
    assert set(store.vectors.ids()) == store.catalog.dense_chunk_ids(), "orphans cleaned up"
    assert store.catalog.pending_vectors() == [], "and the journal settled"
    assert_whole(store, {a: {h} for a, h in _hashes_of(tmp_path / "v2.jsonl", settings).items()})


def _hashes_of(path: Path, settings: Settings) -> dict[str, str]:
    from index.pipeline import fingerprint
    from index.readers import read_paths

    salt = fingerprint(settings.index)
    return {a.id: a.content_hash(salt) for a in read_paths([path]) if not hasattr(a, "reason")}


def test_migrate_copies_an_embedded_index_and_answers_identically(
    sample_index: Settings, pg_url: str, chroma_port: int, tmp_path: Path
) -> None:
    args = ["migrate", "--to", pg_url, "--chroma-host", "127.0.0.1",
            "--chroma-port", str(chroma_port), "--data-dir", str(sample_index.index.data_dir)]
    env = {"NEWSDESK_LLM": "extractive"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "copied 16 articles" in result.output

    embedded = sample_index.updated(collection="newsdesk", llm="extractive")
    server = server_settings(pg_url, chroma_port, "newsdesk", tmp_path / "local")
    src, dst = open_store(embedded), open_store(server)
    location = {"data_dir", "catalog", "chroma", "scan_table"}  # where each part lives
    assert {k: v for k, v in dst.stats().items() if k not in location} == {
        k: v for k, v in src.stats().items() if k not in location}
    assert dst.list_articles() == src.list_articles()
    for article in src.list_articles():
        assert dst.get_article(article.id) == src.get_article(article.id)
        assert dst.mentions(article.id) == src.mentions(article.id)
    assert dst.all_chunks() == src.all_chunks()
    ids = [a.id for a in src.list_articles()]
    assert dst.catalog.published_days(ids) == src.catalog.published_days(ids)
    ids = sorted(src.catalog.dense_chunk_ids())
    assert sorted(dst.vectors.ids()) == ids
    copied = dst.collection.get(ids=ids, include=["embeddings"])
    original = src.collection.get(ids=ids, include=["embeddings"])
    by_id = dict(zip(original["ids"], original["embeddings"], strict=True))
    for chunk_id, vector in zip(copied["ids"], copied["embeddings"], strict=True):
        # the same float32 vector; Chroma's HTTP transport may round its last bit
        assert np.abs(np.asarray(vector) - np.asarray(by_id[chunk_id])).max() < 1e-6

    for question in ("When did Assad visit Moscow?", "What did Lavrov say?",
                     "When did the Ever Given run aground?"):
        here = Assistant(embedded.updated(retriever="dense"), store=src).ask(question)
        there = Assistant(server.updated(retriever="dense"), store=dst).ask(question)
        assert (there.text, there.citations) == (here.text, here.citations)

    again = CliRunner().invoke(app, args, env=env)
    assert again.exit_code == 0 and "copied 0 articles" in again.output
    assert "unchanged 16" in again.output
