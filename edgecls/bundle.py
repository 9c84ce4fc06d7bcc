"""The export bundle's manifest, in one torch-free place: the exporter writes with it, the runtime reads with it.

A bundle is a folder holding model files, ``manifest.json`` (what each file is, its sha256, how it
matched PyTorch) and the golden vectors (``edgecls.golden_file``). The format table is
``edgecls.format_table``, the rule a file is held to ``edgecls.tolerance``, the shipped bundles
``edgecls.shipped``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .digest import file_sha256
from .errors import EdgeclsError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "edgecls-export"
# 1: no schema_version key and no golden vectors. 2: parity rows named top1_agreement, max_abs_logit_diff and
# max_rel_logit_diff (read by nothing in the runtime; `edgecls.tolerance` names them now).
SCHEMA_VERSION = 3


def manifest_path(folder: Path) -> Path:
    return Path(folder) / MANIFEST


def has_manifest(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest (read or not): what an export folder looks like from outside."""
    return manifest_path(folder).is_file()


def read_manifest(folder: Path) -> dict:
    path = manifest_path(folder)
    if not path.is_file():
        raise EdgeclsError(f"{folder} has no {MANIFEST} (is it an edgecls export folder?)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgeclsError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise EdgeclsError(f"{path} is not an edgecls export manifest")
    return manifest


def is_export_folder(folder: Path) -> bool:
    """True for a folder an earlier export wrote (safe to replace); protects anything else."""
    try:
        read_manifest(folder)
    except (EdgeclsError, OSError):
        return False
    return True


def file_digests(entry: dict) -> list[tuple[str, str]]:
    """(relative path, sha256) of a manifest entry and of its companion files (an IR's .bin)."""
    return [(entry["path"], entry["sha256"])] + [(c["path"], c["sha256"]) for c in entry.get("companions", [])]


def verify_files(folder: Path, manifest: dict) -> None:
    """Refuse a tampered or half-copied export: every listed file must match its sha256."""
    for entry in bundle_entries(manifest):
        verify_entry(folder, entry)


def bundle_entries(manifest: dict) -> list[dict]:
    """Every entry of the manifest that names files: the model files' and the golden vectors'."""
    return list(manifest.get("files", [])) + ([manifest["golden"]] if manifest.get("golden") else [])


def verify_entry(folder: Path, entry: dict) -> None:
    """One manifest entry's files against their sha256: what loading a model needs, whatever else the
    folder holds."""
    for rel, expected in file_digests(entry):
        target = Path(folder) / rel
        if not target.is_file():
            raise EdgeclsError(f"{target} is listed in {MANIFEST} but missing")
        if file_sha256(target) != expected:
            raise EdgeclsError(f"{target} does not match the sha256 in {MANIFEST} (modified or incomplete copy)")


def file_entry(path: Path) -> dict:
    return {"path": path.name, "size": path.stat().st_size, "sha256": file_sha256(path)}

