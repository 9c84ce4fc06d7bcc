"""What a user's install costs on disk: the wheel, and a fresh venv per extra (issue 28's install table).

Builds the wheel from this checkout, then for the base install and each user extra creates a fresh venv,
installs ``edgecls[extra]`` from that wheel with pip's normal dependency resolution (no ``--no-deps``),
and adds up the sizes of the files in it. Prints a Markdown table; the README's install table quotes it.

    python benchmarks/install_sizes.py [--extras openvino,serve] > benchmarks/results/install-sizes-….md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOT_FOR_USERS = ("dev", "docs")  # developer extras: not rows of a user's install table


def user_extras() -> list[str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return [name for name in extras if name not in NOT_FOR_USERS]


def tree_bytes(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)], check=True,
                   capture_output=True)
    return next(out.glob("edgecls-*.whl"))


def install(wheel: Path, extra: str, venv: Path) -> tuple[int, float]:
    """Bytes of the fresh venv with ``edgecls[extra]`` installed, and the seconds the install took."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    start = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", target], check=True)
    return tree_bytes(venv), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default=",".join(user_extras()), help="comma-separated (default: all user extras)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgecls-sizes-") as tmp:
        tmp = Path(tmp)
        wheel = build_wheel(tmp / "dist")
        empty = tmp / "empty"
        subprocess.run([sys.executable, "-m", "venv", str(empty)], check=True)
        bare = tree_bytes(empty)
        print(f"# Install sizes, {datetime.date.today()}\n")
        print(f"`python benchmarks/install_sizes.py` on {platform.system()} {platform.machine()}, "
              f"Python {platform.python_version()}; sizes are the files in a fresh venv (an empty venv with pip "
              f"is {bare / 1e6:.0f} MB of it).\n")
        print(f"Wheel: `{wheel.name}`, **{wheel.stat().st_size / 1e6:.1f} MB**.\n")
        print("| install | venv size | added to the base install | pip install time |")
        print("|---|---:|---:|---:|")
        base = None
        for extra in [""] + [e for e in args.extras.split(",") if e]:
            size, seconds = install(wheel, extra, tmp / f"venv-{extra or 'base'}")
            base = size if base is None else base
            name = f"`edgecls[{extra}]`" if extra else "`edgecls` (base)"
            added = "—" if not extra else f"+{(size - base) / 1e6:,.0f} MB"
            print(f"| {name} | {size / 1e6:,.0f} MB | {added} | {seconds:.0f} s |", flush=True)
            subprocess.run(["rm", "-rf", str(tmp / f"venv-{extra or 'base'}")], check=True)


if __name__ == "__main__":
    main()
