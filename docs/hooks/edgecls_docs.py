"""MkDocs hook for the edgecls site: API pages by import name, and the committed results files.

1. mkdocstrings must find ``edgecls.runtime``, ``edgecls.trainer`` … by their import names, but
   pyproject.toml maps those subpackages to top-level folders (``edgecls.runtime`` → ``runtime/``), which
   the installed package resolves and griffe's static loader, walking ``edgecls/`` on disk, cannot. The
   hook lays out a throw-away ``edgecls/`` tree of symlinks mirroring the installed layout, read from the
   one place the mapping is written (``[tool.setuptools] package-dir``), and puts it first on the Python
   handler's search path. Nothing is imported, so building the docs runs none of our code.
2. Every file under ``benchmarks/results/`` is published at ``results/<name>``, so the pages link and
   show the measurements where they are committed; a link to a file that is not there fails
   ``mkdocs build --strict``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority

try:
    import tomllib
except ImportError:  # Python 3.10: the docs extra installs tomli there
    import tomli as tomllib

_TREES: list[Path] = []
RESULTS = Path("benchmarks/results")


def _mirror(repo: Path, into: Path) -> None:
    mapping = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    root = into / "edgecls"
    root.mkdir()
    for entry in (repo / mapping["edgecls"]).iterdir():
        (root / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == "edgecls" and not (root / parts[1]).exists():
            (root / parts[1]).symlink_to(repo / folder, target_is_directory=True)


@event_priority(100)  # before mkdocstrings reads its handlers' options
def on_config(config):
    repo = Path(config.config_file_path).resolve().parent
    tree = Path(tempfile.mkdtemp(prefix="edgecls-docs-"))
    _TREES.append(tree)
    _mirror(repo, tree)
    python = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
    python["paths"] = [str(tree)]
    return config


def on_files(files, config):
    """Publish ``benchmarks/results/`` under ``results/`` so the pages can link and show every results file
    where it is committed, instead of a copy that could drift."""
    from mkdocs.structure.files import File

    repo = Path(config.config_file_path).resolve().parent
    for path in sorted((repo / RESULTS).iterdir()):
        if path.is_file():
            files.append(File(f"{RESULTS.name}/{path.name}", str(repo / RESULTS.parent), config.site_dir,
                              config.use_directory_urls))
    return files


def on_shutdown():
    while _TREES:
        shutil.rmtree(_TREES.pop(), ignore_errors=True)
