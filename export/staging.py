"""All-or-nothing export folders: build in a hidden sibling folder, rename into place on success.

On any failure (an exception, a parity failure, Ctrl-C) the staging folder and any parent folders
this export created are removed, and an earlier export at ``--out`` is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgecls.atomic import current_umask
from edgecls.bundle import is_export_folder
from edgecls.errors import EdgeclsError


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    out = Path(out).absolute()
    _check_replaceable(out)
    created = _make_parents(out.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        _remove_empty(created)
        raise EdgeclsError(f"cannot write to --out {out}: {e.strerror or e}") from None
    committed = False
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        _replace(tmp, out)
        committed = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not committed:
            _remove_empty(created)


def _check_replaceable(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir() or not (is_export_folder(out) or not any(out.iterdir())):
        raise EdgeclsError(f"--out {out} exists and is not an edgecls export folder; choose another path")


def _make_parents(parent: Path) -> list[Path]:
    """Create missing parents; returns them deepest first so a failure can take them back."""
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeclsError(f"cannot write to --out {parent}: {e.strerror or e}") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _replace(tmp: Path, out: Path) -> None:
    """Swap the finished folder in; an earlier export is moved aside first and deleted after."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old / out.name, out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)

