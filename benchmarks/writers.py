"""The writing half of ``benchmarks/load.py --writers``: a second process and HTTP clients that
add and remove articles in a served folder while questions are asked, then the check that
nothing was lost.

``Writers(url, key, data_dir, scratch).start(seconds)`` runs two threads until ``finish()``:

- "cli": `newsdesk ingest FILE` of a new article, then every second round `newsdesk remove` of
  one it added earlier, each a fresh process (the second writer beside the server);
- "http": ``POST /v1/articles`` of a new article, then every second round ``DELETE`` of one it
  posted earlier, through the server.

``check_written(data_dir, writers)`` then counts the articles written and not removed that are
missing or not whole (``records_lost``) and the removed ones still present.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent

FILTERS: list[dict[str, object]] = [
    {},
    {"as_of": "2015-10-31"},
    {"outlets": ["Harbor Ledger", "Northgate Post"]},
    {"since": "2015-01-01", "until": "2030-12-31"},
]
"""Filters the askers cycle through (the sample articles' outlets and days)."""


def article(n: int, via: str) -> dict[str, str]:
    """A new article, distinct per (n, via), dated inside the filters' windows."""
    return {
        "id": f"load-{via}-{n}",
        "title": f"Council vote {via} {n}",
        "outlet": "Harbor Ledger",
        "published": "2015-10-20",
        "text": f"The harbour council voted on motion {n} brought by the {via} desk. "
        f"Members debated motion {n} for an hour before the vote on Tuesday.",
    }


class Writers:
    """Two writer threads: CLI processes and HTTP calls, adding and removing articles."""

    def __init__(self, url: str, key: str, data_dir: Path, scratch: Path) -> None:
        self.url, self.key, self.data_dir, self.scratch = url, key, data_dir, scratch
        self.kept: set[str] = set()
        self.removed: set[str] = set()
        self.counts = {"cli_ingests": 0, "cli_removes": 0, "http_posts": 0, "http_deletes": 0}
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._stop_at = 0.0
        self._threads: list[threading.Thread] = []

    def start(self, seconds: float) -> None:
        """Write for ``seconds`` from now, in the background."""
        self._stop_at = time.monotonic() + seconds
        self._threads = [threading.Thread(target=self._cli), threading.Thread(target=self._http)]
        for thread in self._threads:
            thread.start()

    def finish(self) -> dict[str, object]:
        """Wait for the writers; their counts and failures."""
        for thread in self._threads:
            thread.join()
        return {**self.counts, "write_errors": len(self.problems),
                "first_write_errors": self.problems[:5]}

    def _done(self, kind: str, added: str | None = None, removed: str | None = None) -> None:
        with self._lock:
            self.counts[kind] += 1
            if added:
                self.kept.add(added)
            if removed:
                self.kept.discard(removed)
                self.removed.add(removed)

    def _cli(self) -> None:
        import json

        n = 0
        while time.monotonic() < self._stop_at:
            record = article(n, "cli")
            path = self.scratch / f"cli-{n}.jsonl"
            path.write_text(json.dumps(record) + "\n")
            if self._run("ingest", str(path)):
                self._done("cli_ingests", added=record["id"])
            if n % 2 == 1 and self._run("remove", f"load-cli-{n - 1}"):
                self._done("cli_removes", removed=f"load-cli-{n - 1}")
            n += 1

    def _run(self, *args: str) -> bool:
        done = subprocess.run(
            [sys.executable, "-m", "assistant.cli", *args, "--data-dir", str(self.data_dir)],
            cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        )
        if done.returncode:
            with self._lock:
                self.problems.append(f"newsdesk {args[0]}: exit {done.returncode}: "
                                     f"{done.stderr[-300:]}")
        return done.returncode == 0

    def _http(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        n = 0
        with httpx.Client(base_url=self.url, headers=headers, timeout=300) as http:
            while time.monotonic() < self._stop_at:
                record = article(n, "http")
                if self._ok(http.post("/v1/articles", json=record)):
                    self._done("http_posts", added=record["id"])
                if n % 2 == 1 and self._ok(http.delete(f"/v1/articles/load-http-{n - 1}")):
                    self._done("http_deletes", removed=f"load-http-{n - 1}")
                n += 1
                time.sleep(2)

    def _ok(self, response: httpx.Response) -> bool:
        if response.status_code != 200:
            with self._lock:
                self.problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
        return response.status_code == 200


def check_written(data_dir: Path, writers: Writers) -> dict[str, object]:
    """Articles written and not removed that are missing or not whole; removed ones present."""
    from assistant.settings import get_settings
    from index.store import Store

    store = Store(get_settings(data_dir=data_dir))
    present = set(store.content_hashes(writers.kept | writers.removed))
    dense = store.catalog.dense_chunk_ids()
    vectors = set(store.collection.get(include=[])["ids"])
    whole = {c.article_id for c in store.all_chunks() if c.id not in dense or c.id in vectors}
    lost = [i for i in writers.kept if i not in present or i not in whole]
    return {
        "records_written": len(writers.kept) + len(writers.removed),
        "records_lost": len(lost),
        "removed_but_present": len(writers.removed & present),
        "vectors_without_catalog_row": len(vectors - dense),
    }
