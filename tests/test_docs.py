"""The documentation cannot rot: the site builds strictly, the README's quick start runs as written and
prints what it shows, and every number in the README's results table is in a committed results file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results"
QUICK_START = "## Quick start"
RESULTS_TABLE = "## Results"
PROMPT = "$ "
ELLIPSIS = "…"  # in shown output: whatever this machine prints there (a path, a version, a CPU)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")
# The images the quick start's outputs were recorded with (the README says which).
PHOTO = ("dog", "0048.jpg")  # its top 3 are far apart for both models, so INT8 kernels cannot reorder them
PHOTOS = (("dog", "0001.jpg"), ("dog", "0003.jpg"), ("ship", "0004.jpg"))


def readme_section(heading: str) -> str:
    text = README.read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = text.find("\n## ", start)
    return text[start:end if end >= 0 else None]


def console_blocks(section: str) -> list[tuple[str, list[str]]]:
    """(command, shown output lines) for each ```console block: one `$ ` line, then what it prints."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        lines = body.rstrip("\n").split("\n")
        assert lines[0].startswith(PROMPT) and not any(line.startswith(PROMPT) for line in lines[1:]), body
        blocks.append((lines[0][len(PROMPT):], lines[1:]))
    return blocks


def line_pattern(shown: str) -> re.Pattern:
    """A shown line as a pattern: numbers stand for any number, `…` for anything, spaces for any spacing."""
    out, pos = [], 0
    for match in re.finditer(rf"{NUMBER.pattern}|{ELLIPSIS}|\s+", shown):
        out.append(re.escape(shown[pos:match.start()]))
        token = match.group()
        out.append(".*" if token == ELLIPSIS else r"\s+" if token.isspace() else r"[-+]?\d[\d.,]*(?:e[-+]?\d+)?")
        pos = match.end()
    out.append(re.escape(shown[pos:]))
    return re.compile("".join(out))


def same_shape(shown: list[str], actual: list[str]) -> bool:
    """Every shown line matches the actual line in order; a line that is only `…` stands for any lines."""
    if not shown:
        return not actual
    if shown[0].strip() == ELLIPSIS:
        return any(same_shape(shown[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and bool(line_pattern(shown[0]).fullmatch(actual[0].rstrip())) and same_shape(shown[1:],
                                                                                                     actual[1:])


def test_shape_matching_is_not_vacuous():
    shown = ["photo.jpg: cat 97.3%, dog 0.7%", "1 classified, 0 failed (onnx-int8 via onnxruntime: …/x.onnx)"]
    assert same_shape(shown, ["photo.jpg: cat 12.5%, dog 1.25%", "1 classified, 0 failed (onnx-int8 via "
                                                                 "onnxruntime: /a/b/x.onnx)"])
    assert not same_shape(shown, ["photo.jpg: dog 97.3%, cat 0.7%", shown[1]])  # words must match
    assert not same_shape(shown, shown[:1])  # so must the number of lines
    assert same_shape(["a", ELLIPSIS, "z"], ["a", "b", "c", "z"]) and not same_shape(["a", ELLIPSIS, "z"], ["a", "b"])


def test_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link, a missing page or an API object griffe cannot find fails."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                            "-d", str(site)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-4000:]
    api = (site / "api" / "classifier" / "index.html").read_text()
    assert "Classifier" in api and "Labels and preprocessing come from the model" in api  # from the docstring
    assert (site / "api" / "bundle" / "index.html").read_text().count("reference_bundle") >= 1
    for path in (p for p in RESULTS.iterdir() if p.is_file()):  # every results file is on the site
        page = site / "results" / (f"{path.stem}/index.html" if path.suffix == ".md" else path.name)
        assert page.is_file(), page
    assert not (site / "hooks").exists()


@pytest.fixture(scope="module")
def quick_start_dir(tmp_path_factory, cifar_dir) -> Path:
    """A folder outside the repository holding the photo and the folder the quick start names."""
    cwd = tmp_path_factory.mktemp("quick-start")
    shutil.copy(cifar_dir / "test" / PHOTO[0] / PHOTO[1], cwd / "photo.jpg")
    (cwd / "photos").mkdir()
    for label, name in PHOTOS:
        shutil.copy(cifar_dir / "test" / label / name, cwd / "photos" / f"{label}-{name}")
    return cwd


def test_quick_start_has_five_commands():
    assert len(console_blocks(readme_section(QUICK_START))) == 5


@pytest.mark.parametrize("command, shown", console_blocks(readme_section(QUICK_START)),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_quick_start_runs_as_written(command, shown, quick_start_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv the suite runs in
    result = subprocess.run(["bash", "-c", command], cwd=quick_start_dir, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    actual = (result.stdout + result.stderr).rstrip("\n").split("\n")
    assert same_shape(shown, actual), "\n".join(["shown:", *shown, "printed:", *actual])


def test_getting_started_python_runs(quick_start_dir):
    """The Python example on the Getting started page runs as written beside the quick start's photo."""
    page = (REPO / "docs" / "getting-started.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    result = subprocess.run([sys.executable, "-c", code], cwd=quick_start_dir, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "label='dog'" in result.stdout  # the photo the README's outputs were recorded with


def committed(paths: list[Path]) -> set[Path]:
    listed = subprocess.run(["git", "ls-files", "-z", "--", *map(str, paths)], cwd=REPO, capture_output=True,
                            text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell committed results files")
    return {REPO / name for name in listed.stdout.split("\0") if name}


RESULTS_LINK = re.compile(r"\]\((?:\.\./)*(benchmarks/results/[^)\s#]+)\)")
LINK = re.compile(r"\[[^\]]*\]\([^)]*\)")
FIGURE = re.compile(rf"(?<![\w.]){NUMBER.pattern}")  # a whole number: not the 20 of resnet20 nor the 8 of INT8


def figures(text: str) -> set[str]:
    """The numbers of ``text`` as values (thousands separators dropped), links aside."""
    return {n.replace(",", "") for n in FIGURE.findall(LINK.sub("", text))}


def results_rows(path: Path) -> list[set[str]]:
    """Each line of a results file (a table row, a JSON field, a log line) as the set of values it holds."""
    return [figures(line) for line in path.read_text().splitlines()]


def unsourced(row: str) -> list[str]:
    """The figures of a table row found in no single row of the results files the row links."""
    rows = [r for link in RESULTS_LINK.findall(row) for r in results_rows(REPO / link)]
    return sorted(f for f in figures(row) if not any(f in r for r in rows))


def test_a_figure_must_be_a_whole_value_of_a_row():
    rows = results_rows(RESULTS / "edge-formats-2026-12-07.md")
    assert any("4889" in r and "87.45" in r for r in rows)
    assert not any("87" in r or "89" in r for r in rows)  # a part of a value is not one
    assert figures("| `resnet20` | ONNX INT8 | 87.45% | 4,889 | [x](benchmarks/results/a-2026.md) |") == {
        "87.45", "4889"}


def test_results_tables_name_a_results_file_in_every_row():
    """The README's results tables: every row names its results files, and those are committed."""
    lines = readme_section(RESULTS_TABLE).splitlines()
    headers = {lines[i - 1] for i, line in enumerate(lines) if line.startswith("|---")}
    body = [row for row in lines if row.startswith("|") and not row.startswith("|---") and row not in headers
            and figures(row)]
    assert len(body) >= 8, "the README's results tables are missing"
    assert [row for row in body if not RESULTS_LINK.search(row)] == []
    linked = sorted({REPO / link for row in body for link in RESULTS_LINK.findall(row)})
    assert set(linked) <= committed(linked), "a results file the README links is not committed"


@pytest.mark.parametrize("page", [README, *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_each_figure_is_a_value_in_a_row_of_the_results_file_its_row_names(page):
    """Every table row that names results files: each of its figures is a value of one row of those files."""
    rows = [line for line in page.read_text().splitlines() if line.startswith("|") and RESULTS_LINK.search(line)]
    wrong = {row[:60]: missing for row in rows if (missing := unsourced(row))}
    assert not wrong, f"figures in {page.name} found in no row of the results files their row names: {wrong}"
