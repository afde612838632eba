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
from assistant.settings import Settings, get_settings
from index.config import IndexConfig


def test_environment_variables_override_defaults_and_arguments_override_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEWSDESK_TOP_K", "5")
    assert get_settings(data_dir=tmp_path).retrieval.top_k == 5
    assert get_settings(data_dir=tmp_path, top_k=3).retrieval.top_k == 3
    assert Settings().retrieval.top_k == 8  # the model itself never reads the environment


def test_settings_come_in_sections_and_the_index_section_is_the_index_config(
    tmp_path: Path,
) -> None:
    settings = get_settings(data_dir=tmp_path, chunk_tokens=120, llm="extractive", api_max_upload_mb=2)
    assert isinstance(settings.index, IndexConfig)
    assert (settings.index.data_dir, settings.index.chunk_tokens) == (tmp_path, 120)
    assert settings.writer.llm == "extractive" and settings.api.api_max_upload_mb == 2
    changed = settings.updated(top_k=3)
    assert changed.retrieval.top_k == 3 and changed.index.data_dir == tmp_path
    assert settings.retrieval.top_k == 8


def test_every_setting_is_described() -> None:
    from assistant.settings import SECTIONS

    for section in SECTIONS.values():
        for name, field in section.model_fields.items():
            assert field.description, f"{section.__name__}.{name} has no description"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("NEWSDESK_TOP_KK", "5", "NEWSDESK_TOP_KK"),
        ("NEWSDESK_TOP_K", "many", "NEWSDESK_TOP_K"),
        ("NEWSDESK_CHUNK_TOKENS", "9999", "NEWSDESK_CHUNK_TOKENS"),
        ("NEWSDESK_FUSION_WEIGHTS", "{dense: 1", "NEWSDESK_FUSION_WEIGHTS"),
        ("NEWSDESK_FUSION_WEIGHTS", '{"dense": 1}', "fusion_weights"),
    ],
)
def test_a_bad_setting_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        get_settings()


def test_the_openai_credentials_reach_the_writer_and_the_embedding_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    from assistant.llm import choose_llm

    settings = get_settings()
    assert choose_llm(settings).kind == "openai-compatible"
    assert settings.index.embedding_api_key is not None
    assert settings.index.embedding_api_key.get_secret_value() == "sk-test"
    assert settings.index.embedding_base_url == "http://127.0.0.1:9/v1"


def test_a_broken_prompt_template_fails_when_the_llm_writer_is_made_naming_the_file(
    tmp_path: Path,
) -> None:
    from assistant.llm import get_generator

    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for source in (Path(settings_module.REPO_ROOT) / "prompts").glob("*.txt"):
        (prompts / source.name).write_text(source.read_text())
    (prompts / "source.txt").write_text("[{number}] {title (unclosed\n")
    settings = get_settings(
        data_dir=tmp_path, prompts_dir=prompts, llm="openai-compatible:m",
        openai_base_url="http://127.0.0.1:9/v1",
    )
    with pytest.raises(ConfigError, match="source.txt"):
        get_generator(settings, None)  # type: ignore[arg-type]


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
