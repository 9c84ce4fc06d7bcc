"""The layers, read from the source's AST: what each folder may import, and one name for the manifest's file.

- runtime/ and edgecls/serve/ run on the torch-free base install: neither imports the trainer, the exporter nor
  torch when a module loads (a function may import torch where an engine needs it: ExecuTorch's links it).
- trainer/ imports neither the exporter nor the runtime, anywhere.
- The ground floor (edgecls/*.py) imports none of the floors above it when a module loads.
- The manifest's file name is written once, in the bundle module (``edgecls.bundle.MANIFEST``).
- No import cycle, not even through an import inside a function (a package's ``__init__`` aside).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

# pyproject.toml's package-dir, folder → import name
PACKAGES = {"edgecls": "edgecls", "trainer": "edgecls.trainer", "export": "edgecls.export",
            "runtime": "edgecls.runtime"}
TORCH = ("torch", "torchvision", "timm")  # timm: the train extra's mobile networks (issue 35), torch underneath
TRAINER, EXPORT, RUNTIME, SERVE, CLI = ("edgecls.trainer", "edgecls.export", "edgecls.runtime", "edgecls.serve",
                                        "edgecls.cli")
BUNDLE_MODULE = REPO / "edgecls" / "bundle.py"
MANIFEST_NAME = "manifest.json"


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    parts = [PACKAGES[rel.parts[0]].removeprefix("edgecls").lstrip("."), *rel.parts[1:-1]]
    stem = [] if rel.stem == "__init__" else [rel.stem]
    return ".".join(["edgecls", *(p for p in parts if p), *stem])


def imports(source: str, module: str, is_package: bool = False, module_level: bool = True) -> list[str]:
    """Absolute names ``source`` imports: at module level only (outside functions and ``if TYPE_CHECKING``),
    or everywhere."""
    tree = ast.parse(source)
    skipped = set()
    for node in ast.walk(tree):
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skipped |= {id(n) for n in ast.walk(node)}
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            absolute = ".".join([*base, node.module] if node.module else base)
            found += [absolute] + [f"{absolute}.{a.name}" for a in node.names] if node.level else [absolute]
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def offenders(paths: list[Path], forbidden: tuple[str, ...], module_level: bool = True) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        names = imports(path.read_text(), module_name(path), path.name == "__init__.py", module_level)
        bad = sorted({n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)})
        if bad:
            found[str(path.relative_to(REPO))] = bad
    return found


def test_runtime_and_serve_import_neither_trainer_export_nor_torch_at_module_level():
    paths = sources("runtime", "edgecls/serve")
    assert len(paths) > 20  # the scan reads the folders it names
    assert offenders(paths, (TRAINER, EXPORT, *TORCH)) == {}


def test_torch_in_the_runtime_only_where_the_executorch_engine_needs_it():
    assert offenders(sources("runtime", "edgecls/serve"), TORCH, module_level=False) == {
        "runtime/engines.py": ["torch"]}


def test_trainer_imports_neither_export_nor_runtime():
    assert offenders(sources("trainer"), (EXPORT, RUNTIME), module_level=False) == {}


def test_ground_floor_imports_no_floor_above_it_at_module_level():
    paths = [p for p in (REPO / "edgecls").glob("*.py") if p.name != "__main__.py"]  # `python -m edgecls`: the CLI
    assert offenders(paths, (TRAINER, EXPORT, RUNTIME, SERVE, CLI, *TORCH)) == {}


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("import torch", "edgecls.runtime.x", ["torch"]),
    ("from ..trainer.models import build", "edgecls.serve.app", ["edgecls.trainer.models",
                                                                 "edgecls.trainer.models.build"]),
    ("from edgecls.export import formats", "edgecls.runtime.x", ["edgecls.export"]),
    ("def f():\n    import torch", "edgecls.runtime.x", []),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch", "edgecls.runtime.x", ["typing"]),
])
def test_the_import_scan_sees_each_kind_of_import(source, module, expected):
    assert imports(source, module) == expected


def manifest_literals(source: str) -> list[int]:
    """Lines of string constants (f-string parts included) naming the manifest file, docstrings aside."""
    tree = ast.parse(source)
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and MANIFEST_NAME in node.value and id(node) not in docstrings]


def test_the_manifest_file_name_is_written_in_the_bundle_module_alone():
    from edgecls.bundle import MANIFEST

    assert MANIFEST == MANIFEST_NAME and manifest_literals(BUNDLE_MODULE.read_text())
    found = {str(p.relative_to(REPO)): lines for p in sources("edgecls", "runtime", "export", "trainer", "benchmarks")
             if p != BUNDLE_MODULE and (lines := manifest_literals(p.read_text()))}
    assert found == {}
    assert manifest_literals(f'x = f"{{folder}}/{MANIFEST_NAME}"\n"""{MANIFEST_NAME}"""') == [1]


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports anywhere, edges to its own parent packages aside."""
    modules = {module_name(p): p for p in sources("edgecls", "runtime", "export", "trainer")}
    graph = {}
    for name, path in modules.items():
        found = imports(path.read_text(), name, path.name == "__init__.py", module_level=False)
        graph[name] = {n for n in found if n in modules and n != name and not name.startswith(n + ".")}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (its modules in order, the first repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return []

    return next((c for node in sorted(graph) if node not in state and (c := visit(node, [node]))), [])


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 100 and cycle(graph) == []
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
