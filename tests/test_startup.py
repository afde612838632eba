"""Start-up: the command line loads only what a command needs, and never torch at run time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.settings import Settings
from index.bundled_model import BundledModel, bundled_model, sha256
from index.embeddings import Embedder, OnnxEncoder

PROBE = """
import json, runpy, sys
sys.argv = ["newsdesk", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("assistant.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

HEAVY = ("torch", "transformers", "sentence_transformers", "llama_index", "chromadb",
         "onnxruntime", "gradio", "nltk", "bm25s", "scipy", "sklearn", "pandas")


def run_newsdesk(args: list[str], data_dir: object = None) -> tuple[int, set[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    if data_dir is not None:
        env["NEWSDESK_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        check=False, env=env, capture_output=True, text=True, timeout=300,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    tops = {name.split(".")[0] for name in report["modules"]}
    return report["code"], tops, done.stdout


def test_help_loads_no_model_index_or_ui_library() -> None:
    code, modules, _ = run_newsdesk(["--help"])
    assert code == 0
    assert not modules & set(HEAVY), f"--help imported {sorted(modules & set(HEAVY))}"


@pytest.mark.slow
def test_ask_answers_without_ever_importing_torch(sample_index: Settings) -> None:
    code, modules, out = run_newsdesk(
        ["ask", "When did Assad visit Moscow?"], sample_index.index.data_dir
    )
    assert code == 0, out
    assert "Moscow" in out
    assert not modules & {"torch", "transformers", "sentence_transformers"}, sorted(modules)
    assert "onnxruntime" in modules  # the embedding model did run


@pytest.mark.slow
def test_an_extractive_ask_loads_no_sentence_splitter_sparse_matrices_or_grpc(
    sample_index: Settings,
) -> None:
    """Its answer quotes whole sentences, so nothing re-splits it; keyword search uses bm25s's
    tokenizer only, so SciPy stays out; its one dense search is scored from the scan table, so
    Chroma is not even imported (``index.dense``; when it is, it comes without gRPC,
    jsonschema or PyYAML: below)."""
    code, modules, out = run_newsdesk(
        ["ask", "When did Assad visit Moscow?"], sample_index.index.data_dir
    )
    assert code == 0, out
    unwanted = {"nltk", "scipy", "tqdm", "grpc", "pygments", "jsonschema", "yaml", "chromadb"}
    assert not modules & unwanted, sorted(modules & unwanted)
    assert {"bm25s", "onnxruntime"} <= modules  # the keyword and the dense side did run


LEAN_CHROMADB = """
import inspect, sys
from pydantic_settings import BaseSettings
build = BaseSettings.__init__
from index.lean_import import import_chromadb
chromadb = import_chromadb()
assert "grpc" not in sys.modules
assert "jsonschema" not in sys.modules and "yaml" not in sys.modules
assert BaseSettings.__init__ is build
from chromadb.api.client import Client
from chromadb.config import Settings
fresh = Settings()
default = inspect.signature(Client.__init__).parameters["settings"].default
for made in (chromadb.get_settings(), default):  # built while chromadb loaded: as fresh ones
    assert made == fresh and made.model_fields_set == fresh.model_fields_set, made
print(default.chroma_server_host, default is not chromadb.get_settings())
from overrides import override
class Base:
    def size(self, unit: str) -> int:
        return 0
try:
    class Wrong(Base):
        @override
        def size(self, unit: int, extra: str) -> int:
            return 1
except TypeError:
    print("overrides checks again")
import httpx._main
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
print(OTLPSpanExporter.__module__)
from chromadb.utils.embedding_functions.schemas import validate_config_schema
validate_config_schema({"preferred_providers": ["CPUExecutionProvider"]}, "onnx_mini_lm_l6_v2")
try:
    validate_config_schema({"preferred_providers": 3}, "onnx_mini_lm_l6_v2")
except ValueError as exc:
    print(str(exc).replace(" ", "_"))
import jsonschema
print(jsonschema.ValidationError.__module__)
from chromadb.auth import token_authn
print(token_authn.yaml.safe_load("users: [reader]"), sys.modules["yaml"].__name__)
"""


def test_chromadb_loads_lean_and_leaves_overrides_httpx_opentelemetry_and_settings_usable(
) -> None:
    """What is skipped or stood in for while chromadb loads is back afterwards, the settings it
    built meanwhile equal fresh ones (the environment included), and jsonschema loads when
    chromadb first validates a configuration."""
    env = os.environ | {"CHROMA_SERVER_HOST": "chroma.example"}  # read by every Settings()
    done = subprocess.run([sys.executable, "-c", LEAN_CHROMADB], check=False, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "chroma.example", "True",
        "overrides", "checks", "again", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        ("Config_validation_failed_for_schema_'onnx_mini_lm_l6_v2':_3_is_not_of_type_'array',"
         "_'null'_at_path_'preferred_providers'"),
        "jsonschema.exceptions",
        "{'users':", "['reader']}", "yaml",
    ]



TOKENIZE_AT_ONCE = """
import threading
from index.keyword_tables import tokenize
start, failed = threading.Barrier(8), []
def tokenize_when_all_are_ready():
    start.wait()
    try:
        tokenize(["When did Assad visit Moscow?"], return_ids=False)
    except Exception as exc:
        failed.append(repr(exc))
threads = [threading.Thread(target=tokenize_when_all_are_ready) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(failed)
"""


def test_threads_that_first_tokenize_at_once_each_get_the_whole_tokenizer() -> None:
    """bm25s is imported lean (``import_without``) by the first thread that asks: the others
    wait for it, rather than take the module half-initialized (the two keyword levels are
    searched at once)."""
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", TOKENIZE_AT_ONCE], check=True,
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.strip() == "[]"

@pytest.mark.slow
def test_the_first_command_on_a_new_machine_says_it_prepares_the_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("NEWSDESK_MODEL_CACHE_DIR", str(tmp_path / "models"))
    article = tmp_path / "note.txt"
    article.write_text("Bridge reopens\n\nThe bridge reopened on Monday after repairs.\n")
    runner = CliRunner()
    args = ["ingest", str(article), "--data-dir", str(tmp_path / "data")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "preparing the bundled embedding model" in first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "preparing" not in again.output


@pytest.fixture
def export(tmp_path: Path, embedder: Embedder) -> BundledModel:
    """A copy of the verified export in a model cache of its own (times kept: still trusted)."""
    source = embedder.bundled.onnx_path.parent
    folder = tmp_path / "models" / source.name
    folder.mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json", "manifest.json"):
        shutil.copy2(source / name, folder / name)
    model = bundled_model(tmp_path / "models")
    assert model.onnx_path == folder / "model.onnx"  # reused, not exported again
    return model


TEXTS = ["When did Assad visit Moscow?", "x",
         "Syrian President Bashar al-Assad met Vladimir Putin during a surprise visit to Moscow."]


def export_vectors(model: BundledModel) -> list[list[float]]:
    """The vectors of ``TEXTS`` from the export loaded as is, with no kept graph."""
    import onnxruntime

    plain = OnnxEncoder(model)  # its tokenizer and batching, with a session of the export
    plain.session = onnxruntime.InferenceSession(str(model.onnx_path),
                                                 providers=["CPUExecutionProvider"])
    return plain.embed(TEXTS)


def optimized_folder(model: BundledModel) -> Path:
    import onnxruntime

    return model.onnx_path.parent / f"optimized-ort{onnxruntime.__version__}"


@pytest.mark.slow
def test_the_optimised_graph_is_kept_beside_the_export_reused_and_gives_its_vectors(
    export: BundledModel,
) -> None:
    first = OnnxEncoder(export)
    folder = optimized_folder(export)
    assert first.graph_path == folder / "model.onnx"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["export_sha256"] == export.onnx_sha256 == sha256(export.onnx_path)
    assert set(manifest["sha256"]) == {"model.onnx", "model.onnx.data"}
    assert first.embed(TEXTS) == export_vectors(export)  # bit for bit
    stamp = (folder / "model.onnx.data").stat().st_mtime_ns

    again = OnnxEncoder(export)
    assert again.graph_path == first.graph_path
    assert (folder / "model.onnx.data").stat().st_mtime_ns == stamp  # reused, not built again


def _damage_weights(folder: Path) -> None:
    with (folder / "model.onnx.data").open("r+b") as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))


def _another_runtime(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"onnxruntime": "1.0.0"}))


def _another_export(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"export_sha256": "0" * 64}))


@pytest.mark.slow
@pytest.mark.parametrize("staleness", [_damage_weights, _another_runtime, _another_export],
                         ids=["damaged weights", "another onnxruntime", "another export"])
def test_a_stale_or_damaged_optimised_graph_is_noticed_and_built_again(
    export: BundledModel, staleness: Callable[[Path], None]
) -> None:
    OnnxEncoder(export)
    folder = optimized_folder(export)
    before = json.loads((folder / "manifest.json").read_text())
    staleness(folder)

    rebuilt = OnnxEncoder(export)
    assert rebuilt.graph_path == folder / "model.onnx"
    after = json.loads((folder / "manifest.json").read_text())
    assert after["onnxruntime"] == before["onnxruntime"]
    assert after["export_sha256"] == export.onnx_sha256
    assert sha256(folder / "model.onnx.data") == after["sha256"]["model.onnx.data"]
    assert after["stat"] != before["stat"]  # written again
    assert rebuilt.embed(TEXTS) == export_vectors(export)


@pytest.mark.slow
def test_with_nowhere_to_keep_the_optimised_graph_the_export_is_loaded_as_is(
    export: BundledModel,
) -> None:
    optimized_folder(export).write_text("not a folder")  # as a cache that cannot be written
    encoder = OnnxEncoder(export)
    assert encoder.graph_path == export.onnx_path
    assert encoder.embed(TEXTS) == export_vectors(export)


RUN_COMMAND = """
import gc, json, sys
import typer
from assistant.cli_runner import run

app = typer.Typer()
seen = {}

@app.command()
def look() -> None:
    seen["collecting"] = gc.isenabled()

@app.command()
def write() -> None:
    seen["collecting"] = gc.isenabled()

sys.argv = ["newsdesk", sys.argv[1]]
try:
    run(app, read_only={"look"})
except SystemExit:
    pass
print(json.dumps({**seen, "frozen": gc.get_freeze_count() > 0}))
"""


@pytest.mark.parametrize(("command", "quick"), [("look", True), ("write", False)])
def test_a_read_only_command_runs_without_the_cycle_collector_and_leaves_nothing_to_collect(
    command: str, quick: bool
) -> None:
    done = subprocess.run([sys.executable, "-c", RUN_COMMAND, command], check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"collecting": not quick, "frozen": quick}


def test_the_commands_run_quickly_are_those_that_only_read() -> None:
    from assistant.cli import READ_ONLY, app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert READ_ONLY - {"--help"} <= names
    assert not READ_ONLY & {"ingest", "remove", "serve", "chat", "watch", "demo", "migrate",
                            "eval"}
