"""The linter, with the rules and reasons of pyproject.toml's [tool.ruff], over the code, benchmarks and tests."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, input=stdin, capture_output=True,
                          text=True, timeout=300)


def test_ruff_finds_nothing():
    result = ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_reads_the_project_rules():
    """The configuration is the one in force: a file breaking three of its rules is refused for each."""
    bad = "import os\n\n\ndef f(x=[]):\n    return " + "x" * 130 + "\n"
    result = ruff("check", "--no-cache", "--output-format", "concise", "--stdin-filename", "runtime/example.py", "-",
                  stdin=bad)
    assert result.returncode == 1
    assert all(code in result.stdout for code in ("F401", "B006", "E501")), result.stdout
