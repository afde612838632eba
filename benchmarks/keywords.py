"""What one write batch costs the index as the archive grows: the keyword index's share.

Times ``Store.write`` of 100 new articles, then ``Store.remove`` of them, each followed by a
keyword search (the first question after a commit: it reads what the commit changed), in an
empty folder and in a copy of a larger index (default: the realtimeqa/dev index that
``benchmarks/retrieval.py --set dev`` builds, 2,428 articles).  ``catalog_*_s`` is the catalog
transaction alone (articles, chunks and keyword index), ``*_query_ms`` the search after it, and
``keyword_mb`` the keyword tables' pages in the catalog file (SQLite's ``dbstat``).  The articles' vectors are random
unit vectors (labelled substitute: the model's time is the same at any archive size and is
measured in benchmarks/ingest.py); chunking, catalog, keyword index and Chroma are real.

With ``--write-path REV`` it times instead the keyword index's write path of git revision REV
(``index/keyword_tables.py`` as it was there) against this code's, on the same documents in the
same run: the first ``--articles`` articles of the archive's catalog (a copy), as ingest writes
them (batches of ``--batch`` articles, each chunk and each whole article a document), both into
empty keyword tables (what ingesting into a new folder costs) and appended to the archive's own
(its last block partly full).  Rounds alternate which path goes first; each figure is the CPU
time of ``add_documents`` alone, and the tables both paths leave are compared row for row.

With ``--search`` it runs instead every question against both levels of the archive's keyword
index (chunks k=200, articles k=100: what hybrid retrieval asks with the default 50
candidates), with no filter, the question's outlet and its as_of day, twice: bounded (MaxScore,
``index/maxscore.py``) and exhaustive (every posting added up), taking turns, warm; it prints
whether every result list is identical and each way's p50/p95.  Questions: those of
``benchmarks/scale_corpus.py`` for a synthetic archive (``.../aN-sS-gG``), else RealTime QA
dev's (``--questions-file``), each given an outlet of the index in turn.

Run from the repository root; PYTHONPATH decides which code is measured:

    python benchmarks/keywords.py --archive benchmarks/out/dev/newsdesk
    python benchmarks/keywords.py --archive benchmarks/out/dev/newsdesk --write-path 4ce0874
    python benchmarks/keywords.py --archive /tmp/newsdesk-scale/a100000-s7-g1/data --search
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def batch(n: int, seed: int = 7) -> list:
    """``n`` articles of about 600 words, prepared as ingest would, with random vectors."""
    from index.chunking import chunk_article
    from index.models import Article
    from index.store import PreparedArticle

    rng = random.Random(seed)
    words = [f"topic{k}" for k in range(3000)]  # a vocabulary, drawn Zipf-like below
    prepared = []
    for i in range(n):
        text = " ".join(
            " ".join(words[min(int(rng.paretovariate(1.1)), 2999)] for _ in range(14)).capitalize() + "."
            for _ in range(40)
        )
        article = Article(id=f"bench-{seed}-{i}", title=f"Bench {i}", text=text,
                          outlet="Bench Post", published="2021-05-01")
        chunks = chunk_article(article, max_tokens=200, count_tokens=lambda texts: [len(t.split()) for t in texts])
        vectors = []
        for _ in chunks[:4]:
            v = [rng.gauss(0, 1) for _ in range(384)]
            norm = sum(x * x for x in v) ** 0.5
            vectors.append([x / norm for x in v])
        prepared.append(PreparedArticle(article, f"h{seed}{i}", chunks, vectors))
    return prepared


QUESTION = "Which topic12 topic7 said the government will topic30?"


def keyword_mb(catalog: Path) -> float:
    """Megabytes of the catalog file's pages that hold keyword tables and their indexes."""
    import sqlite3

    db = sqlite3.connect(catalog)
    try:
        (size,) = db.execute(
            "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE instr(name, 'kw_') > 0"
        ).fetchone()
    finally:
        db.close()
    return round(size / 1e6, 1)


def measure(data_dir: Path, n: int) -> dict:
    from assistant.settings import get_settings
    from index.store import Store

    store = Store(get_settings(data_dir=data_dir))
    before = store.count_articles()
    catalog_s = {"replace": 0.0, "delete": 0.0}
    for name in catalog_s:  # time the catalog's transaction inside Store.write/remove
        inner = getattr(store.catalog, name)

        def timed(*args: object, _inner=inner, _name=name) -> object:
            started = time.perf_counter()
            try:
                return _inner(*args)
            finally:
                catalog_s[_name] += time.perf_counter() - started

        setattr(store.catalog, name, timed)

    def query() -> float:
        started = time.perf_counter()
        store.keyword_index().chunks.search(QUESTION, 120)
        store.keyword_index().articles.search(QUESTION, 60)
        return round(1000 * (time.perf_counter() - started), 1)

    query()
    prepared = batch(n)
    started = time.perf_counter()
    store.write(prepared)
    wrote = time.perf_counter() - started
    write_query = query()
    started = time.perf_counter()
    store.remove([p.article.id for p in prepared])
    removed = time.perf_counter() - started
    return {"archive_articles": before, "write_s": round(wrote, 2),
            "catalog_write_s": round(catalog_s["replace"], 2), "write_query_ms": write_query,
            "remove_s": round(removed, 2), "catalog_remove_s": round(catalog_s["delete"], 2),
            "remove_query_ms": query(), "keyword_mb": keyword_mb(data_dir / "catalog.sqlite3")}


def module_at(revision: str, folder: Path) -> Any:
    """``index/keyword_tables.py`` as it was at a git revision, imported under another name."""
    source = subprocess.run(["git", "show", f"{revision}:index/keyword_tables.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    path = folder / "keyword_tables_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("keyword_tables_then", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # dataclasses look it up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def tables_digest(db: Any) -> str:
    """A digest of every keyword table's rows, in key order."""
    digest = hashlib.sha256()
    for sql in ("SELECT * FROM kw_postings ORDER BY level, term, block",
                "SELECT * FROM kw_terms ORDER BY level, term", "SELECT * FROM kw_docs ORDER BY doc",
                "SELECT * FROM kw_facets ORDER BY block", "SELECT * FROM kw_totals ORDER BY level"):
        for row in db.execute(sql):
            digest.update(repr(row).encode())
    return digest.hexdigest()


def write_paths(
    catalog: Path, revision: str, n: int, per_batch: int, rounds: int, into: str = "both"
) -> list[dict]:
    """CPU seconds of ``add_documents`` at ``revision`` and in this code, alternating, over the
    first ``n`` articles of a copy of ``catalog``: into empty tables and appended to its own."""
    import sqlite3

    from index import keyword_tables

    with tempfile.TemporaryDirectory(prefix="newsdesk-kw-write-") as folder:
        then = module_at(revision, Path(folder))
        copy = Path(folder) / "catalog.sqlite3"
        shutil.copy(catalog, copy)
        db = sqlite3.connect(copy, isolation_level=None)
        ids = [r[0] for r in db.execute("SELECT id FROM articles ORDER BY rowid LIMIT ?", (n,))]
        batches = [keyword_tables._documents_of(db, ids[i : i + per_batch])
                   for i in range(0, len(ids), per_batch)]
        again = [[keyword_tables.KeywordDoc(d.level, d.key + "+again", d.article_id, d.outlet,
                                            d.day, d.text) for d in docs] for docs in batches]
        keyword_tables.tokenize(["warm the stemmer up"])
        paths = {revision: then, "this code": keyword_tables}
        seconds: dict[tuple[str, str], list[float]] = {}
        digests: dict[tuple[str, str], str] = {}
        for turn in range(rounds):
            order = list(paths) if turn % 2 == 0 else list(paths)[::-1]
            for where, docs in (("empty tables", batches), ("appended to the archive", again)):
                if into != "both" and not where.startswith(into):
                    continue
                for name in order:
                    module = paths[name]
                    db.execute("BEGIN")
                    if where == "empty tables":
                        module.create(db)
                    started = time.process_time()
                    for part in docs:
                        module.add_documents(db, [module.KeywordDoc(*vars(d).values())
                                                  for d in part])
                    seconds.setdefault((where, name), []).append(time.process_time() - started)
                    if turn == 0:
                        digests[(where, name)] = tables_digest(db)
                    db.execute("ROLLBACK")
        db.close()
    rows = []
    for (where, name), values in seconds.items():
        same = digests[(where, name)] == digests[(where, revision)]
        rows.append({"tables": where, "code": name, "documents": sum(map(len, batches)),
                     "cpu_s_median": round(statistics.median(values), 3),
                     "cpu_s_each": [round(v, 3) for v in values],
                     "tables_equal_to_" + revision: same})
    return rows


def questions_for(archive: Path, n: int, questions_file: Path, db: Any) -> list[tuple]:
    """(text, outlet, as_of) of ``n`` questions for this archive."""
    from datetime import date

    name = archive.parent.name if archive.name == "data" else archive.name
    if name.startswith("a") and "-s" in name:  # a synthetic archive of benchmarks/scale.py
        import scale_corpus

        size, seed = int(name[1:].split("-")[0]), int(name.split("-s")[1].split("-")[0])
        return [(q.text, q.outlet, q.as_of) for q in scale_corpus.questions(seed, n, size)]
    outlets = [o for (o,) in db.execute("SELECT name FROM kw_outlets ORDER BY id")]
    rows = [json.loads(line) for line in questions_file.read_text().splitlines()[:n]]
    return [(r["question"], outlets[i % len(outlets)], date.fromisoformat(r["as_of"] or "2100-01-01"))
            for i, r in enumerate(rows)]


def bounded_against_exhaustive(archive: Path, n: int, questions_file: Path) -> dict:
    """Identical results and p50/p95 ms of the bounded and the exhaustive keyword search."""
    import sqlite3
    import threading

    from index import maxscore
    from index.keywords import KeywordCache, KeywordFilter, KeywordIndex

    sys.path.insert(0, str(REPO / "benchmarks"))
    db = sqlite3.connect(archive / "catalog.sqlite3", isolation_level=None,
                         check_same_thread=False)
    asked = questions_for(archive, n, questions_file, db)
    index = KeywordIndex(db, threading.RLock(), KeywordCache())
    ways = {"bounded": maxscore.EXHAUSTIVE_BELOW, "exhaustive": 1 << 62}
    seconds: dict[str, dict[str, list[float]]] = {way: {} for way in ways}
    differing, searches = 0, 0
    for level, k in (("chunks", 200), ("articles", 100)):
        search = getattr(index, level).search
        for text, _, _ in asked:  # postings read once, outside the timings
            search(text, k)
        for kind in ("none", "outlet", "as_of"):
            for turn, (text, outlet, as_of) in enumerate(asked):
                where = {"none": None, "outlet": KeywordFilter(outlets=(outlet,)),
                         "as_of": KeywordFilter(last_day=int(as_of.strftime("%Y%m%d")))}[kind]
                got = {}
                for way in list(ways)[:: 1 if turn % 2 else -1]:
                    maxscore.EXHAUSTIVE_BELOW = ways[way]
                    started = time.perf_counter()
                    got[way] = search(text, k, where)
                    seconds[way].setdefault(f"{level}/{kind}", []).append(
                        time.perf_counter() - started)
                maxscore.EXHAUSTIVE_BELOW = ways["bounded"]
                searches += 1
                differing += got["bounded"] != got["exhaustive"]
    db.close()

    def ms(values: list[float], q: float) -> float:
        values = sorted(values)
        return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 2)

    return {"archive": str(archive), "questions": len(asked), "searches": searches,
            "differing_result_lists": differing,
            **{f"{cell} {way} p50/p95 ms": [ms(v, 0.5), ms(v, 0.95)]
               for way in ways for cell, v in seconds[way].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=REPO / "benchmarks/out/dev/newsdesk")
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--write-path", metavar="REV",
                        help="time the keyword write path of this git revision against this code's")
    parser.add_argument("--batch", type=int, default=128, help="articles per write (--write-path)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (--write-path)")
    parser.add_argument("--into", choices=("both", "empty", "appended"), default="both",
                        help="which tables the documents go into (--write-path)")
    parser.add_argument("--search", action="store_true",
                        help="bounded keyword search against the exhaustive one, on --archive")
    parser.add_argument("--questions", type=int, default=30, help="questions (--search)")
    parser.add_argument("--questions-file", type=Path,
                        default=REPO.parent / "shared/data/realtimeqa/dev/questions.jsonl")
    args = parser.parse_args()
    if args.search:
        print(json.dumps(bounded_against_exhaustive(args.archive, args.questions,
                                                    args.questions_file), indent=1))
        return
    if args.write_path:
        for row in write_paths(args.archive / "catalog.sqlite3", args.write_path, args.articles,
                               args.batch, args.rounds, args.into):
            print(json.dumps(row))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="newsdesk-kw-") as folder:
        rows.append(measure(Path(folder) / "empty", args.articles))
        if (args.archive / "catalog.sqlite3").exists():
            copy = Path(folder) / "archive"
            shutil.copytree(args.archive, copy)
            started = time.perf_counter()
            measure(copy, 1)  # a catalog that predates the keyword tables builds them once
            print(json.dumps({"first_open_and_one_article_s": round(time.perf_counter() - started, 1)}))
            rows.append(measure(copy, args.articles))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
