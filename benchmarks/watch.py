"""Watch benchmark: keeping a 200-feed list current on one core.

A child process (pinned to the other core when there is one) serves ``--feeds`` RSS feeds of
``--items`` entries each over ``--hosts`` loopback addresses (127.0.0.1 ...), with ETag and
Last-Modified, ``--delay`` seconds of server time per request, a robots.txt per host, every tenth
feed carrying only summaries (their pages are fetched and read with trafilatura) and a few feeds
without validators (their unchanged bodies are recognised by hash).  The watcher runs in this
process with the default settings (8 requests in flight, 2 per host) and the real store, Chroma
and embedding model (loaded before the clock starts).  Its Python threads are pinned to core 0;
ONNX Runtime places its own threads, so embedding may touch the other core: "CPU s" counts every
thread of the process, wherever it ran, which is what the share of one core is computed from.

- round 0 fills the index (every entry is new);
- rounds 1..``--rounds`` each bring ``--new`` new entries on as many feeds and one edited entry:
  the rest of the feeds answer 304 (or an unchanged body);
- the peer, measured in the same run: one more such round after forgetting every feed's
  validators, so every feed is downloaded and parsed again (what polling without conditional
  GET costs; entries already seen are still not re-fetched or re-indexed).

For each round: wall time, CPU time of the watcher process (every thread), requests, KiB,
articles added and updated, and the share of one core the round would take if repeated every
``watch_interval`` (900 s by default).  Run from the repository root, under the heavy-job lock::

    flock /tmp/newsdesk-heavy.lock python benchmarks/watch.py
    flock /tmp/newsdesk-heavy.lock python benchmarks/watch.py --delay 0.05   # 50 ms servers
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.feed_server import FeedServer, page, rss

WORDS = ["harbour", "council", "ferry", "budget", "bridge", "strike", "election", "court",
         "river", "museum", "hospital", "railway", "school", "market", "festival", "airport"]


def _story(feed: int, n: int, version: int) -> tuple[str, list[str]]:
    a, b = WORDS[(feed + n) % len(WORDS)], WORDS[(feed * 3 + n) % len(WORDS)]
    return f"Feed {feed} story {n}: the {a} and the {b}", [
        f"Officials in district {feed} said on Monday that the {a} plan number {n} would go ahead.",
        (f"Version {version} of the report puts its cost at {feed * 7 + n} million, "
         f"while critics of the {b} say it will take {n % 9 + 2} years."),
        f"A vote on the {a} is expected next month, and the {b} board meets on Thursday.",
        f"Residents of district {feed} have until the end of the month to comment on plan {n}.",
    ]


class Publisher:
    """The feeds' contents, round by round: a window of the newest ``items`` entries per feed."""

    def __init__(self, servers: list[FeedServer], feeds: int, items: int, new: int) -> None:
        self.servers, self.feeds, self.items, self.new = servers, feeds, items, new
        self.latest = {f: items for f in range(feeds)}  # entries 1..latest, newest last
        self.version: dict[tuple[int, int], int] = {}
        for f in range(feeds):
            self.publish(f)

    def server(self, feed: int) -> FeedServer:
        return self.servers[feed % len(self.servers)]

    def publish(self, feed: int) -> None:
        srv, summaries = self.server(feed), feed % 10 == 0
        entries = []
        for n in range(self.latest[feed] - self.items + 1, self.latest[feed] + 1):
            version = self.version.get((feed, n), 1)
            title, paragraphs = _story(feed, n, version)
            link = srv.url(f"/story/{feed}/{n}.html")
            entry = {"title": title, "link": link, "pubDate": "Tue, 10 Jun 2025 04:00:00 GMT"}
            if summaries:
                srv.serve(f"/story/{feed}/{n}.html", page(title, paragraphs), "text/html")
                entry["description"] = f"{paragraphs[0]} (version {version})"
            else:
                entry["content"] = "".join(f"<p>{p}</p>" for p in paragraphs)
            entries.append(entry)
        srv.serve(f"/feed/{feed}.xml", rss(f"Feed {feed}", entries), validators=feed % 50 != 1)

    def next_round(self, number: int) -> None:
        changed = {(number * 37 + j * 53) % self.feeds for j in range(self.new)}
        for feed in changed:
            self.latest[feed] += 1
        edited = next(f % self.feeds for f in range(number * 11 + 5, number * 11 + 5 + self.feeds)
                      if f % self.feeds not in changed)
        self.version[(edited, self.latest[edited] - 1)] = 1 + number  # an older entry
        for feed in changed | {edited}:
            self.publish(feed)


def serve(conn: Connection, feeds: int, items: int, new: int, hosts: int, delay: float) -> None:
    """The child: serve the feeds; on ("round", n) publish round n; on None stop."""
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})
    servers = [FeedServer(host=f"127.0.0.{h + 1}", delay=delay) for h in range(hosts)]
    for srv in servers:
        srv.serve("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
    publisher = Publisher(servers, feeds, items, new)
    conn.send([publisher.server(f).url(f"/feed/{f}.xml") for f in range(feeds)])
    while (message := conn.recv()) is not None:
        publisher.next_round(message[1])
        conn.send("ok")
    for srv in servers:
        srv.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=5, help="entries per feed")
    parser.add_argument("--new", type=int, default=5, help="feeds with a new entry per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=10, help="loopback addresses serving them")
    parser.add_argument("--delay", type=float, default=0.0, help="server seconds per request")
    args = parser.parse_args()

    ours, theirs = mp.Pipe()
    child = mp.get_context("fork").Process(
        target=serve, args=(theirs, args.feeds, args.items, args.new, args.hosts, args.delay),
        daemon=True,
    )
    child.start()
    urls = ours.recv()
    os.sched_setaffinity(0, {0})  # the watcher's threads (ONNX Runtime pins its own)

    from assistant.settings import get_settings
    from index.embeddings import get_embedder
    from index.fetch import Fetcher
    from index.watch import run_round

    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "feeds.txt"
        listing.write_text("\n".join(urls) + "\n")
        settings = get_settings(data_dir=Path(tmp) / "data")
        embedder = get_embedder(settings)
        embedder.encoder  # noqa: B018 - load the model before the clock starts
        clock = [time.time()]
        rows = []
        with Fetcher(settings.watch) as fetcher:

            def one_round(label: str) -> None:
                wall, cpu = time.perf_counter(), time.process_time()
                report = run_round(listing, config=settings, embedder=embedder,
                                   fetcher=fetcher, clock=lambda: clock[0])
                rows.append(_row(label, report, time.perf_counter() - wall,
                                 time.process_time() - cpu, settings.watch.watch_interval))
                clock[0] += settings.watch.watch_interval

            one_round("0 (fill)")
            for number in range(1, args.rounds + 1):
                ours.send(("round", number))
                ours.recv()
                one_round(str(number))
            ours.send(("round", args.rounds + 1))
            ours.recv()
            db = sqlite3.connect(settings.index.catalog_path)
            db.execute("UPDATE feeds SET etag=NULL, last_modified=NULL, body_hash=NULL")
            db.commit()
            db.close()
            one_round("peer: no validators")
        ours.send(None)
        child.join(10)
    print(f"{args.feeds} feeds x {args.items} entries on {args.hosts} loopback hosts, server "
          f"delay {args.delay * 1000:.0f} ms, {args.new} new + 1 edited entry per round")
    print("| round | wall s | CPU s | requests | KiB | 304 or same | added | updated | "
          "CPU share of one core at a 15 min interval |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _row(label: str, report: Any, wall: float, cpu: float, interval: float) -> list[str]:
    return [
        label, f"{wall:.2f}", f"{cpu:.2f}", str(report.requests), f"{report.bytes / 1024:.0f}",
        str(report.count("not modified")), str(len(report.added)), str(len(report.updated)),
        f"{100 * cpu / interval:.2f}%",
    ]


if __name__ == "__main__":
    main()
