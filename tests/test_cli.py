"""The `newsdesk` command as a user meets it: clean messages and honest exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app, main
from tests.conftest import SEED_ARTICLE, write

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_ingest_twice_reports_added_then_unchanged(tmp_path: Path, embedder: object) -> None:
    if not SEED_ARTICLE.exists():
        pytest.skip("../shared/data/seed-article.txt is absent")
    data = str(tmp_path / "d")
    code, output = run("ingest", str(SEED_ARTICLE), "--data-dir", data)
    assert code == 0 and "added 1," in output and "unchanged 0" in output
    code, output = run("ingest", str(SEED_ARTICLE), "--data-dir", data)
    assert code == 0 and "added 0," in output and "unchanged 1" in output


def test_bad_input_exits_non_zero_naming_file_and_line(tmp_path: Path, embedder: object) -> None:
    write(tmp_path / "ok.txt", "Fine headline\nA fine body.")
    write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": \n')
    code, output = run("ingest", str(tmp_path / "ok.txt"), str(tmp_path / "bad.jsonl"),
                       str(tmp_path / "nope.md"), "--data-dir", str(tmp_path / "d"))
    assert code == 1
    assert "added 2," in output
    assert "bad.jsonl:2: malformed JSON" in output
    assert "nope.md: no such file or folder" in output
    assert "Traceback" not in output


def test_list_stats_remove(tmp_path: Path, embedder: object) -> None:
    data = str(tmp_path / "d")
    write(tmp_path / "a.md", "---\nid: first\noutlet: Harbor Ledger\npublished: 2015-10-21\n---\nOne\nBody one.")
    write(tmp_path / "b.md", "---\nid: second\n---\nTwo\nBody two.")
    assert run("ingest", str(tmp_path), "--data-dir", data)[0] == 0
    code, output = run("list", "--data-dir", data, "--json")
    assert code == 0 and [line.count('"id"') for line in output.splitlines()] == [1, 1]
    code, output = run("stats", "--data-dir", data)
    assert "articles: 2" in output and "Harbor Ledger (1)" in output
    code, output = run("remove", "first", "ghost", "--data-dir", data)
    assert code == 1 and "removed first" in output and "not indexed: ghost" in output
    code, output = run("stats", "--data-dir", data, "--json")
    assert '"articles": 1' in output


def test_library_errors_become_a_message_and_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSDESK_CHUNK_TOKEN", "100")
    monkeypatch.setattr("sys.argv", ["newsdesk", "stats"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert "unknown setting NEWSDESK_CHUNK_TOKEN" in message and "NEWSDESK_CHUNK_TOKENS" in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("options", "says", "hint"),
    [
        (["--since", "2021-01-02", "--until", "2021-01-01"],
         "error: --since (2021-01-02) is after --until (2021-01-01), so no article can match",
         "swap the dates"),
        (["--as-of", "next week"], "error: --as-of: 'next week' is not a date",
         "YYYY-MM-DD"),
    ],
)
def test_impossible_filters_are_one_line_and_a_hint(
    options: list[str], says: str, hint: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["newsdesk", "ask", "Who won?", *options, "--data-dir", str(tmp_path / "d")]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    error, hint_line = capsys.readouterr().err.strip().splitlines()
    assert error == says and hint_line.startswith("hint: ") and hint in hint_line


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\u202e\x9b6n\x08"
"""An OSC retitle, BEL, clear-screen, red, a right-to-left override, a C1 CSI and a backspace."""


def test_terminal_escapes_in_articles_never_reach_the_terminal(
    tmp_path: Path, embedder: object
) -> None:
    data = str(tmp_path / "d")
    record = {"id": "evil\x1b[2J", "title": f"Harbor{ESCAPES} bridge reopens",
              "outlet": f"Evil{ESCAPES} Wire", "published": "2024-03-04",
              "text": f"The Harbor Bridge{ESCAPES} reopened on Monday after repairs."}
    write(tmp_path / "evil.jsonl", json.dumps(record) + "\n")
    assert run("ingest", str(tmp_path / "evil.jsonl"), "--data-dir", data)[0] == 0
    for args in (["list"], ["stats"], ["list", "--json"], ["stats", "--json"],
                 ["ask", "When did the Harbor Bridge reopen?", "--llm", "extractive"],
                 ["ask", "When did the Harbor Bridge reopen?", "--json"]):
        code, output = run(*args, "--data-dir", data)
        assert code == 0, output
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", output), (args, output)
        assert "Harbor" in output or "Evil" in output
    listed = run("list", "--json", "--data-dir", data)[1]
    assert json.loads(listed)["title"] == record["title"]  # the JSON still says exactly what is stored


def test_a_short_api_key_only_matters_to_serve_and_is_said_in_words(
    tmp_path: Path, embedder: object, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NEWSDESK_API_KEY", "short")
    write(tmp_path / "a.md", "One\nBody one.")
    code, output = run("ingest", str(tmp_path / "a.md"), "--data-dir", str(tmp_path / "d"))
    assert code == 0 and "added 1," in output
    monkeypatch.setattr("sys.argv", ["newsdesk", "serve", "--data-dir", str(tmp_path / "d")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    error, hint = capsys.readouterr().err.strip().splitlines()[-2:]
    assert error == "error: NEWSDESK_API_KEY is 5 characters long; it needs at least 16"
    assert "openssl rand -hex 32" in hint
