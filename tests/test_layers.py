"""The project's imports form no cycle and point one way: index ← assistant ← evals ← benchmarks.

Imports are read statically with ``ast`` from every module of the four packages, so an import
inside a function or an ``if TYPE_CHECKING:`` block counts as much as one at the top of a file.
``from package import name`` depends on ``package.name`` when that is a module, else on
``package``; a submodule's implicit import of its parent package is not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("index", "assistant", "evals", "benchmarks")
"""The project's packages, lowest layer first: each may import only itself and those before it."""

ALLOWED_UPWARD = {("assistant.cli", "evals.cli"): "the `newsdesk` command mounts `newsdesk eval`"}
"""Imports of a higher layer that are accepted, (importer, imported) → why."""


@dataclass(frozen=True)
class Import:
    """One import of a project module by a project module, located in its file."""

    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line} imports {self.imported}"


def find_modules(root: Path = REPO) -> dict[str, Path]:
    """Every module of the project packages by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}

    def walk(folder: Path, name: str) -> None:
        for path in sorted(folder.iterdir()):
            if path.is_dir() and (path / "__init__.py").exists():
                walk(path, f"{name}.{path.name}")
            elif path.suffix == ".py":
                modules[name if path.stem == "__init__" else f"{name}.{path.stem}"] = path

    for package in PACKAGES:
        walk(root / package, package)
    return modules


def imports_of(
    source: str, module: str, is_package: bool, modules: set[str]
) -> Iterator[tuple[str, int]]:
    """The project modules that ``source`` (the text of ``module``) imports, with their lines."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            # each name is a submodule, or something the package (or module) defines
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        targets = dict.fromkeys(_known_prefix(name, modules) for name in names)
        for target in targets:
            if target is not None and target != module:
                yield target, node.lineno


def _known_prefix(name: str, modules: set[str]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def project_imports() -> list[Import]:
    """Every import of a project module by a project module."""
    modules = find_modules()
    found = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        for imported, line in imports_of(source, module, path.stem == "__init__", set(modules)):
            found.append(Import(module, imported, path, line))
    return found


def find_cycles(imports: list[Import]) -> list[list[Import]]:
    """One cycle of imports through each group of modules that import each other (Tarjan)."""
    graph: dict[str, dict[str, Import]] = {}
    for i in imports:
        graph.setdefault(i.importer, {}).setdefault(i.imported, i)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(sorted(group), graph) for group in groups]


def _cycle_in(group: list[str], graph: dict[str, dict[str, Import]]) -> list[Import]:
    """The shortest cycle through the group's first module, as the imports that make it."""
    start = group[0]
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    for node in queue:
        for nxt, how in sorted(graph.get(node, {}).items()):
            if nxt == start:
                return [*paths[node], how]
            if nxt in group and nxt not in paths:
                paths[nxt] = [*paths[node], how]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start} in {group}")  # a group always has one


def describe(cycle: list[Import]) -> str:
    """A cycle as 'a → b (a.py:3) → a (b.py:7)'."""
    steps = [cycle[0].importer]
    steps += [f"{i.imported} ({i.path.relative_to(REPO)}:{i.line})" for i in cycle]
    return " → ".join(steps)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return project_imports()


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("import index.store", "evals.cli", False, ["index.store"]),
        ("import index.store as s", "evals.cli", False, ["index.store"]),
        ("from index.store import Store", "evals.cli", False, ["index.store"]),
        ("from index import store, ingest", "evals.cli", False, ["index.store", "index"]),
        ("from . import store", "index.ingest", False, ["index.store"]),
        ("from .store import Store", "index", True, ["index.store"]),
        ("from .. import store", "index.sub.mod", False, ["index.store"]),
        ("def f():\n    from evals.cli import main", "index.store", False, ["evals.cli"]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from evals import cli",
            "index.store",
            False,
            ["evals.cli"],
        ),
        ("import json, typer\nfrom rich.console import Console", "evals.cli", False, []),
        ("from index.store import x", "index.store", False, []),  # itself
    ],
)
def test_imports_are_read_wherever_they_are(
    source: str, module: str, is_package: bool, expected: list[str]
) -> None:
    modules = {"index", "index.store", "index.sub", "index.sub.mod", "evals", "evals.cli"}
    found = [target for target, _ in imports_of(source, module, is_package, modules)]
    assert found == expected


def test_every_package_is_read(imports: list[Import]) -> None:
    importers = {i.importer.partition(".")[0] for i in imports}
    assert importers == set(PACKAGES)


def test_a_cycle_is_found_and_named() -> None:
    here = REPO / "evals" / "x.py"
    cycle = [Import("a", "b", here, 3), Import("b", "c", here, 5), Import("c", "a", here, 7)]
    found = find_cycles([*cycle, Import("c", "d", here, 9)])
    assert [describe(c) for c in found] == [
        "a → b (evals/x.py:3) → c (evals/x.py:5) → a (evals/x.py:7)"
    ]


def test_no_import_cycle(imports: list[Import]) -> None:
    cycles = [describe(c) for c in find_cycles(imports)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("layer", PACKAGES)
def test_imports_point_down(imports: list[Import], layer: str) -> None:
    above = set(PACKAGES[PACKAGES.index(layer) + 1 :])
    upward = [
        str(i)
        for i in imports
        if i.importer.partition(".")[0] == layer
        and i.imported.partition(".")[0] in above
        and (i.importer, i.imported) not in ALLOWED_UPWARD
    ]
    assert not upward, f"{layer}/ must not import {', '.join(sorted(above))}:\n" + "\n".join(upward)
