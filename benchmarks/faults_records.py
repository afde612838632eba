"""Bad-input fault run: how many hostile inputs end in a traceback, and how many good records go
with them.

The cases are those of ``tests/test_faults_records.py`` (one bad input of each kind inside a
good batch): the CLI batch (`newsdesk ingest` in a subprocess), each bad record posted between
two good ones to ``POST /v1/articles`` on the real app, a body that is one unreadable record,
and an article handed to ``index.ingest_articles`` that fails mid-pipeline.  Counted per code
version, in one run: this tree and a baseline commit (default: the one before the fix), so the
figures are compared against the code they replace.

* tracebacks: the CLI run crashed or hung, an HTTP 5xx or a response showing a traceback, an
  exception out of ``ingest_articles``;
* records lost: good records of a batch that did not end up indexed;
* unreported: bad inputs the report does not name with the expected reason.

Run from the repository root (about a minute per version)::

    python benchmarks/faults_records.py                  # this tree and ec49fab
    python benchmarks/faults_records.py --baseline HEAD~3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "test_faults_records.py"
KEY = "bench-key-0123456789abcdef"


def _cases() -> Any:
    """The test module (its case table and helpers), imported against the code under test."""
    spec = importlib.util.spec_from_file_location("faults_cases", CASES)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def worker(code_dir: Path) -> dict[str, int]:
    """Run every case against the code in ``code_dir`` (this process imports it)."""
    from fastapi.testclient import TestClient

    from assistant.answer import Assistant
    from assistant.api import create_app
    from assistant.settings import get_settings
    from index import Article, ingest_articles

    cases = _cases()
    counts = {"cases": 0, "tracebacks": 0, "records_lost": 0, "good_records": 0, "unreported": 0}
    with tempfile.TemporaryDirectory(prefix="newsdesk-faults-") as tmp:
        root = Path(tmp)
        # 1. The CLI batch.
        paths, good = cases.build_batch(root / "cli")
        run = cases.run_cli_ingest(root / "cli", paths, code_dir=code_dir)
        counts["cases"] += len(cases.BAD)
        counts["good_records"] += len(good)
        counts["tracebacks"] += int(run.code is None or "Traceback" in run.output)
        counts["records_lost"] += len(good - {a.title for a in run.articles})
        skipped = [ln.strip() for ln in run.output.splitlines() if ln.strip().startswith("skipped")]
        for bad in cases.BAD:
            named = [ln for ln in skipped if ln.split(": ", 1)[0].endswith(bad.where)]
            counts["unreported"] += int(not any(bad.reason in ln for ln in named))

        # 2. POST /v1/articles: each bad record between two good ones, then the hostile ones.
        settings = get_settings(data_dir=root / "api", api_key=KEY)
        app = create_app(assistant=Assistant(settings))
        client = TestClient(app, headers={"Authorization": f"Bearer {KEY}"},
                            raise_server_exceptions=False)
        goods = [json.dumps(cases.GOOD_BEFORE), json.dumps(cases.GOOD_AFTER)]
        posts = [([goods[0], element, goods[1]], reason) for _, element, reason in cases.API_CASES]
        quarry = cases.good_record("Old quarry", "It closed 99999999 days ago.")
        posts.append(([goods[0], json.dumps(quarry)], None))
        for elements, reason in posts:
            response = cases.post_records(client, *elements)
            counts["cases"] += 1
            n_good = len(elements) - (reason is not None)
            counts["good_records"] += n_good
            if response.status_code >= 500 or "Traceback" in response.text:
                counts["tracebacks"] += 1
                counts["records_lost"] += n_good
                counts["unreported"] += int(reason is not None)
                continue
            report = response.json()
            counts["records_lost"] += n_good - len(report["added"] + report["unchanged"])
            if reason is not None:
                counts["unreported"] += int(not any(reason in s["reason"] for s in report["skipped"]))
        response = client.post("/v1/articles", content=cases.DEEP_JSON.encode(),
                               headers={"Content-Type": "application/json"})
        counts["cases"] += 1
        counts["tracebacks"] += int(response.status_code >= 500)
        counts["unreported"] += int(response.status_code != 422)

        # 3. The Python API: an article that fails on its way to the index.
        good_ones = [Article(id="a", title="Harbor", text="The bridge reopened on Monday."),
                     Article(id="b", title="Tram", text="The tram now runs to the airport.")]
        bad_one = Article(id="bad", title="Bad \ud800", text="Fine text.")
        counts["cases"] += 1
        counts["good_records"] += 2
        try:
            report = ingest_articles([good_ones[0], bad_one, good_ones[1]], config=settings)
            counts["records_lost"] += 2 - len(report.added)
            counts["unreported"] += int(not report.skipped)
        except Exception:  # noqa: BLE001 - what is being counted
            counts["tracebacks"] += 1
            counts["records_lost"] += 2
            counts["unreported"] += 1
    return counts


def baseline_tree(revision: str, into: Path) -> Path:
    """The repository at ``revision``, extracted (no work tree is touched)."""
    blob = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(blob.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(code_dir: Path) -> dict[str, int]:
    """The worker's counts for the code in ``code_dir``, run in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env["PYTHONPATH"] = str(code_dir)
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(code_dir)],
        capture_output=True, text=True, env=env, cwd=code_dir, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="ec49fab", help="git revision to compare with")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    with tempfile.TemporaryDirectory(prefix="newsdesk-baseline-") as tmp:
        rows = {f"baseline {args.baseline}": measure(baseline_tree(args.baseline, Path(tmp))),
                "this tree": measure(REPO)}
    keys = ["cases", "tracebacks", "records_lost", "good_records", "unreported"]
    print("| code | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, counts in rows.items():
        print(f"| {name} | " + " | ".join(str(counts[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
