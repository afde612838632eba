"""Settings: one typed object, read from keyword arguments, then NEWSDESK_* variables, then defaults."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from assistant import settings as settings_module
from assistant.errors import ConfigError
from assistant.settings import Settings


def test_environment_variables_override_defaults_and_arguments_override_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEWSDESK_TOP_K", "5")
    assert Settings(data_dir=tmp_path).top_k == 5
    assert Settings(data_dir=tmp_path, top_k=3).top_k == 3


def test_a_broken_prompt_template_fails_at_start_up_naming_the_file(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for source in (Path(settings_module.REPO_ROOT) / "prompts").glob("*.txt"):
        (prompts / source.name).write_text(source.read_text())
    (prompts / "source.txt").write_text("[{number}] {title (unclosed\n")
    with pytest.raises(ConfigError, match="source.txt"):
        Settings(data_dir=tmp_path, prompts_dir=prompts)


def test_prompts_come_from_the_repo_and_from_the_install_prefix_without_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert settings_module.default_prompts_dir() == settings_module.REPO_ROOT / "prompts"
    monkeypatch.setattr(settings_module, "REPO_ROOT", tmp_path)  # as in a wheel: no repo
    assert settings_module.default_prompts_dir() == (
        Path(sys.prefix) / "share" / "newsdesk" / "prompts"
    )


def test_the_wheel_carries_the_prompts_for_the_install_prefix(tmp_path: Path) -> None:
    repo = settings_module.REPO_ROOT
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(repo / name, source / name)
    for folder in ("assistant", "index", "evals", "prompts"):
        shutil.copytree(repo / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(source), "-w", str(tmp_path / "dist")],
        check=True, capture_output=True,
    )
    [wheel] = (tmp_path / "dist").glob("newsdesk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if "/data/share/newsdesk/prompts/" in n}
    assert shipped == {p.name for p in (repo / "prompts").glob("*.txt")}
