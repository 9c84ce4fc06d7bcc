"""Drop formats from a finished bundle, keeping it verifiable: for shipping what fits (the wheel's budget).

An INT8 row is built from its FP32 row, so an export always holds both; a bundle that ships only the INT8
file of a large model (the shipped airbench's LiteRT and ExecuTorch rows) drops the FP32 files afterwards.
Their manifest entries, parity rows and golden logits go with them, and golden.npz gets its new sha256, so
`edgecls verify` still re-proves everything that remains.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecls.atomic import write_text_atomic
from edgecls.bundle import MANIFEST, file_digests, file_entry, read_manifest
from edgecls.errors import EdgeclsError
from edgecls.golden_file import read_golden, write_golden


def drop_formats(folder: Path, names: list[str]) -> None:
    folder = Path(folder)
    manifest = read_manifest(folder)
    held = {e["format"] for e in manifest["files"]}
    unknown = [n for n in names if n not in held]
    if unknown:
        raise EdgeclsError(f"{folder} holds no {', '.join(unknown)}")
    golden = read_golden(folder, manifest)
    for entry in [e for e in manifest["files"] if e["format"] in names]:
        for rel, _ in file_digests(entry):
            (folder / rel).unlink()
    manifest["files"] = [e for e in manifest["files"] if e["format"] not in names]
    if manifest.get("parity"):
        manifest["parity"]["results"] = {k: v for k, v in manifest["parity"]["results"].items() if k not in names}
    if manifest.get("quantization"):
        manifest["quantization"] = {k: v for k, v in manifest["quantization"].items() if k not in names}
    golden.logits = {k: v for k, v in golden.logits.items() if k not in names}
    path = folder / manifest["golden"]["path"]
    write_golden(path, golden)
    manifest["golden"].update({k: v for k, v in file_entry(path).items() if k != "path"})
    manifest["dropped_after_export"] = sorted(names)
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
