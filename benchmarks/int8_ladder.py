"""Which INT8 ladder step each file of an export needed, and what it cost: one markdown table from the
manifests of export folders (the steps: export/int8_ladder.py).

    python benchmarks/int8_ladder.py EXPORT [EXPORT ...] > benchmarks/results/int8-ladder-<date>.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecls.bundle import read_manifest
from edgecls.host import INSTRUCTION_SETS, cpu_class, cpu_flags


def rows(folder: Path) -> list[str]:
    manifest = read_manifest(folder)
    model = manifest["source"]["model"]
    out = []
    for fmt, settings in (manifest.get("quantization") or {}).items():
        ladder = settings.get("ladder") if isinstance(settings, dict) else None
        if not ladder:
            continue
        for i, a in enumerate(ladder["attempts"]):
            kept = "kept" if i == ladder["kept_attempt"] else ""
            detail = ", ".join(a["settings"].get("float_nodes", [])) or a["settings"].get("calibration_images", "")
            out.append(f"| {folder.name} ({model}) | {fmt} | {a['rung']} | {detail} | {100 * a['val_accuracy']:.1f}% | "
                       f"{a['drop_points']:+.1f} | {a['seconds']:.1f} | {kept} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="+", type=Path)
    args = parser.parse_args()
    flags = sorted(cpu_flags() & set(INSTRUCTION_SETS))
    print(f"CPU class {cpu_class()} ({', '.join(flags)}); `python benchmarks/int8_ladder.py "
          f"{' '.join(str(p) for p in args.exports)}`\n")
    print("| export | INT8 file | step | float layers / calibration images | val accuracy | drop (pts) | "
          "seconds | |\n|---|---|---|---|---|---|---|---|")
    for folder in args.exports:
        print("\n".join(rows(folder)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
