"""Ingestion into the real Chroma + BM25 index: idempotent, incremental, atomic, exact spans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.settings import Settings
from index import Article, ingest, ingest_articles, open_store
from index.embeddings import Embedder
from index.store import Store
from tests.conftest import REPO, SAMPLES, SEED_ARTICLE, write
from tests.test_dense_filters import check_dense_counts


def check_index_is_whole(store: Store) -> None:
    """Every catalog article has all its chunks in the catalog and its dense ones in Chroma,
    and the catalog's counts of vectors per outlet and per day are exact."""
    chunks = store.all_chunks()
    dense = store.catalog.dense_chunk_ids()
    vectors = set(store.collection.get(include=[])["ids"])
    assert vectors == dense, "Chroma holds exactly the catalog's dense chunks"
    by_article: dict[str, list[int]] = {}
    for c in chunks:
        by_article.setdefault(c.article_id, []).append(c.index)
    assert set(by_article) == {a.id for a in store.list_articles()}
    for indexes in by_article.values():
        assert sorted(indexes) == list(range(len(indexes)))
    check_dense_counts(store)


def check_keywords_match_a_rebuild(store: Store) -> None:
    """The keyword index kept up by writes holds what one built from scratch holds: the same
    live postings, document frequencies and totals."""
    from index.keyword_tables import rebuild
    from index.postings import decode

    db = store.catalog.db  # type: ignore[attr-defined]

    def dump() -> tuple[dict, dict, list]:
        keys = dict(db.execute("SELECT doc, key FROM kw_docs"))
        postings: dict = {}
        for level, term, block, n, docs, tfs in db.execute(
            "SELECT level, term, block, n, docs, tfs FROM kw_postings"
        ):
            for doc, tf in zip(*decode(block, n, docs, tfs), strict=True):
                if int(doc) in keys:  # removed documents wait for their block's sweep
                    postings.setdefault((level, term), {})[keys[int(doc)]] = int(tf)
        df = {(lv, t): n for lv, t, n in db.execute("SELECT level, term, df FROM kw_terms")}
        totals = sorted(db.execute("SELECT * FROM kw_totals WHERE docs > 0"))
        return postings, df, totals

    kept = dump()
    with store.catalog.snapshot():
        db.execute("BEGIN IMMEDIATE")
        rebuild(db)
        fresh = dump()
        db.execute("ROLLBACK")
    assert kept == fresh
    assert kept[1] == {term: len(docs) for term, docs in kept[0].items()}


def test_every_stored_sentence_span_slices_its_article(
    sample_index: Settings, embedder: Embedder, settings: Settings
) -> None:
    stores = [open_store(sample_index)]  # read only: other tests share this index
    if SEED_ARTICLE.exists():
        ingest([SEED_ARTICLE], config=settings, embedder=embedder)
        stores.append(open_store(settings))
    checked = 0
    for store in stores:
        for chunk in store.all_chunks():
            text = store.get_article(chunk.article_id).text
            previous_end = 0
            for start, end in chunk.sentences:
                sentence = text[start:end]
                assert sentence and sentence == sentence.strip()
                assert start >= previous_end, "sentences are ordered and do not overlap"
                assert sentence in chunk.embed_text
                previous_end = end
                checked += 1
    assert checked > 100


def test_chroma_holds_vectors_and_filter_fields_while_the_text_stays_in_the_catalog(
    sample_index: Settings,
) -> None:
    store = open_store(sample_index)
    held = store.collection.get(include=["documents", "metadatas"])
    assert held["ids"] and all(doc is None for doc in held["documents"])
    assert {"outlet", "published", "article_id"} <= set(held["metadatas"][0])
    chunk = store.catalog.chunks(held["ids"][:1])[held["ids"][0]]
    assert chunk.embed_text  # what a search finds is read from the catalog


def test_seed_article_twice_is_added_then_unchanged(settings: Settings, embedder: Embedder) -> None:
    if not SEED_ARTICLE.exists():
        pytest.skip("../shared/data/seed-article.txt is absent")
    first = ingest([SEED_ARTICLE], config=settings, embedder=embedder)
    second = ingest([SEED_ARTICLE], config=settings, embedder=embedder)
    assert (len(first.added), len(first.unchanged)) == (1, 0)
    assert (len(second.added), len(second.unchanged), second.chunks_written) == (0, 1, 0)
    assert second.seconds < first.seconds / 5
    article = open_store(settings).get_article(first.added[0])
    assert article.title.startswith("Russia 'Ready To Support'")
    assert article.published is None


def test_a_changed_article_replaces_its_old_chunks(settings: Settings, embedder: Embedder) -> None:
    long_text = " ".join(f"Paragraph {i} says the talks went on late into the night." for i in range(60))
    v1 = Article(id="story", title="Talks", text=long_text, outlet="Harbor Ledger")
    ingest_articles([v1], config=settings, embedder=embedder)
    store = open_store(settings)
    before = {c.id for c in store.all_chunks()}
    v2 = v1.model_copy(update={"text": "The talks collapsed. Nobody signed anything."})
    report = ingest_articles([v2], config=settings, embedder=embedder)
    assert report.updated == ["story"]
    after = store.all_chunks()
    assert len(after) == 1 and not before & {c.id for c in after}
    check_keywords_match_a_rebuild(store)
    assert store.get_article("story").text == v2.text
    check_index_is_whole(store)
    hits = store.keyword_index().chunks.search("talks collapsed late night", 10)
    assert [h for h, _ in hits] == [after[0].id], "the keyword index follows the catalog"


def test_an_edited_text_file_replaces_its_previous_version(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    path = write(tmp_path / "story.txt", "Headline\nThe first version of the story.")
    first = ingest([path], config=settings, embedder=embedder)
    write(path, "Headline\nThe corrected version of the story.")
    second = ingest([path], config=settings, embedder=embedder)
    assert second.removed == first.added and len(second.added) == 1
    store = open_store(settings)
    assert [a.id for a in store.list_articles()] == second.added


def test_remove_list_and_stats(sample_index: Settings, embedder: Embedder, tmp_path: Path) -> None:
    from assistant.settings import get_settings

    settings = get_settings(data_dir=tmp_path / "d")
    ingest([SAMPLES], config=settings, embedder=embedder)
    store = open_store(settings)
    total = store.count_articles()
    victim = store.list_articles(limit=1)[0].id
    victim_title = store.get_article(victim).title
    assert store.remove([victim, "not-there"]) == [victim]
    assert store.count_articles() == total - 1
    assert victim not in {a for a, _ in store.keyword_index().articles.search(victim_title, 50)}
    check_keywords_match_a_rebuild(store)
    assert victim not in {a.id for a in store.list_articles()}
    check_index_is_whole(store)
    stats = store.stats()
    assert stats["articles"] == total - 1 and stats["chunks"] > stats["articles"] - 1
    assert sum(stats["outlets"].values()) == total - 1


def test_vectors_per_article_bounds_what_chroma_holds_and_the_memory_stats_estimate(
    embedder: Embedder, tmp_path: Path
) -> None:
    from assistant.settings import get_settings
    from index.store import VECTOR_BYTES

    stats = {}
    for per_article in (1, 2):
        settings = get_settings(data_dir=tmp_path / f"d{per_article}",
                                dense_chunks_per_article=per_article)
        ingest([SAMPLES], config=settings, embedder=embedder)
        store = open_store(settings)
        stats[per_article] = store.stats()
        assert store.collection.count() == stats[per_article]["dense_chunks"]
        check_index_is_whole(store)
    one, two = stats[1], stats[2]
    assert one["chunks"] == two["chunks"], "every chunk is keyword-indexed either way"
    assert one["dense_chunks"] == one["articles"], "one vector per article"
    assert one["dense_chunks"] < two["dense_chunks"] <= 2 * two["articles"]
    for counts in (one, two):
        assert counts["vector_memory_mib"] == pytest.approx(
            counts["dense_chunks"] * VECTOR_BYTES / 2**20, abs=0.05
        )


def test_ctrl_c_leaves_whole_articles_and_the_next_run_finishes(
    settings: Settings, embedder: Embedder
) -> None:
    articles = [
        Article(id=f"a{i}", title=f"Story {i}", text=f"Sentence {i}. Another line {i}.")
        for i in range(12)
    ]
    small = settings.updated(embed_batch_size=1)  # a write every 2 chunks

    def interrupt_after_a_few(report, total):  # type: ignore[no-untyped-def]
        if len(report.added) >= 3:
            raise KeyboardInterrupt

    from index.pipeline import ingest_items

    first = ingest_items(articles, config=small, embedder=embedder, progress=interrupt_after_a_few)
    assert first.interrupted and 3 <= len(first.added) < 12
    store = open_store(small)
    check_index_is_whole(store)
    second = ingest_articles(articles, config=small, embedder=embedder)
    assert sorted(second.unchanged) == sorted(first.added)
    assert len(second.added) == 12 - len(first.added)
    check_index_is_whole(store)


def test_the_model_starts_on_the_first_articles_and_writes_keep_their_order(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from index import pipeline

    events: list[tuple[str, object]] = []
    split, embed, write_ = pipeline._prepare, embedder.embed_documents, Store.write

    def splitting(article, *args):  # type: ignore[no-untyped-def]
        events.append(("split", article.id))
        return split(article, *args)

    def embedding(texts):  # type: ignore[no-untyped-def]
        events.append(("embed", len(texts)))
        return embed(texts)

    def writing(self, prepared):  # type: ignore[no-untyped-def]
        events.append(("write", [p.article.id for p in prepared]))
        return write_(self, prepared)

    monkeypatch.setattr(pipeline, "_prepare", splitting)
    monkeypatch.setattr(embedder, "embed_documents", embedding)
    monkeypatch.setattr(Store, "write", writing)
    articles = [
        Article(id=f"a{i:02d}", title=f"Story {i}", text=f"Sentence {i} is here. It ends {i}.")
        for i in range(12)
    ]
    report = ingest_articles(articles, config=settings.updated(embed_batch_size=8),
                             embedder=embedder)

    assert sorted(report.added) == [a.id for a in articles]
    kinds = [kind for kind, _ in events]
    first_embed, last_split = kinds.index("embed"), len(kinds) - 1 - kinds[::-1].index("split")
    assert first_embed < last_split, "the model waited for every article to be split"
    runs = [n for kind, n in events if kind == "embed"]
    assert runs[0] == 2 and all(isinstance(n, int) and n <= 8 for n in runs)
    assert sum(runs) == 12  # one vector per one-chunk article, each embedded once
    written = [i for kind, ids in events if kind == "write" for i in ids]  # type: ignore[union-attr]
    assert written == [a.id for a in articles]
    assert all(len(ids) <= 16 for kind, ids in events if kind == "write")  # type: ignore[arg-type]


KILL_SCRIPT = """
import os, signal, sys
from assistant.settings import get_settings
from index import ingest
settings = get_settings(data_dir=sys.argv[1], embed_batch_size=1)
def die(report, total):
    if len(report.added) >= 5:
        os.kill(os.getpid(), signal.SIGKILL)
ingest([sys.argv[2]], config=settings, progress=die)
"""


@pytest.mark.slow
def test_a_killed_run_leaves_no_half_article(settings: Settings, embedder: Embedder) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(settings.index.data_dir), str(SAMPLES)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = open_store(settings)
    done = store.count_articles()
    assert 5 <= done < 16
    report = ingest([SAMPLES], config=settings, embedder=embedder)
    assert len(report.unchanged) == done and len(report.added) == 16 - done
    check_index_is_whole(store)


def test_bad_files_are_skipped_and_the_rest_ingested(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    write(tmp_path / "in" / "good.txt", "Good story\nIt is fine.")
    write(tmp_path / "in" / "empty.txt", "")
    write(tmp_path / "in" / "bad.jsonl", '{"text": "ok line."}\n{broken\n')
    report = ingest([tmp_path / "in", tmp_path / "missing.txt"], config=settings, embedder=embedder)
    assert len(report.added) == 2
    reasons = sorted((Path(s.source.split(":")[0]).name, s.reason) for s in report.errors)
    assert [name for name, _ in reasons] == ["bad.jsonl", "empty.txt", "missing.txt"]


def test_the_index_refuses_a_different_embedding_model(settings: Settings, embedder: Embedder) -> None:
    from assistant.errors import StoreError
    from index.store import Store

    ingest_articles([Article(id="x", title="t", text="Some text.")], config=settings, embedder=embedder)
    other = settings.updated(embedding="openai:text-embedding-3-small")
    with pytest.raises(StoreError, match="was built with embedding 'local:all-MiniLM-L6-v2'") as err:
        Store(other)
    assert "NEWSDESK_EMBEDDING=local:all-MiniLM-L6-v2" in (err.value.hint or "")
    assert "newsdesk ingest --data-dir NEW_FOLDER" in (err.value.hint or "")


def test_catalog_survives_reopening(settings: Settings, embedder: Embedder) -> None:
    ingest_articles([Article(id="x", title="t", text="Some text. More text.")], config=settings,
                    embedder=embedder)
    fresh = Store(settings)
    assert fresh.get_article("x").text == "Some text. More text."
    assert [h for h, _ in fresh.keyword_index().articles.search("some text", 5)] == ["x"]
    assert os.path.exists(settings.index.chroma_path)


MID_WRITE_SCRIPT = """
import sys
from assistant.settings import get_settings
from index import open_store

store = open_store(get_settings(data_dir=sys.argv[1]))
with store.writing():
    store.catalog.intend(["other-process#0#0"])  # what a writer journals before its vectors
    store.collection.upsert(ids=["other-process#0#0"], embeddings=[[0.1] * 384],
                            metadatas=[{"published": 0}], documents=["not committed yet"])
    print("written", flush=True)
    sys.stdin.read()  # hold the lock, uncommitted, until the test closes stdin
"""


def test_reconcile_spares_vectors_another_process_is_still_writing(
    settings: Settings, embedder: Embedder
) -> None:
    ingest([SEED_ARTICLE], config=settings, embedder=embedder)
    store = open_store(settings)
    writer = subprocess.Popen(
        [sys.executable, "-c", MID_WRITE_SCRIPT, str(settings.index.data_dir)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "written"
        assert store.reconcile(timeout=0.5) == 0  # the other writer has not committed yet
        assert store.collection.get(ids=["other-process#0#0"])["ids"]
    finally:
        writer.communicate("", timeout=60)  # it ends without committing, like a crash
    assert store.reconcile() == 1
    assert not store.collection.get(ids=["other-process#0#0"])["ids"]
    assert store.catalog.pending_vectors() == []
    check_index_is_whole(store)


def test_a_full_reconcile_finds_strays_the_journal_does_not_list(
    settings: Settings, embedder: Embedder
) -> None:
    ingest([SEED_ARTICLE], config=settings, embedder=embedder)
    store = open_store(settings)
    store.collection.upsert(ids=["unjournaled#0#0"], embeddings=[[0.1] * 384],
                            metadatas=[{"published": 0}], documents=["left by an old version"])
    assert store.reconcile() == 0  # the journal is empty: nothing to look at
    assert store.reconcile(full=True) == 1
    check_index_is_whole(store)
