"""Your own photos, end to end, on a public folder of real photos: train at the defaults, export --int8,
verify, and the same folder with 1% junk files trained with the same seed.

    bash benchmarks/fetch_elpv.sh /tmp/photos          # ELPV solar cells from PyPI (CC BY-NC-SA 4.0)
    python benchmarks/photos.py /tmp/photos/elpv --out /tmp/photos-bench [--junk]

Prints one markdown block (the split, the image sizes, each command's wall time and result) for
benchmarks/results/photos-<cpu class>-<date>.md. Timings need an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edgecls.bundle import read_manifest
from edgecls.splits import SPLIT_FILE, read_split

JUNK_SHARE = 0.01


def run(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgecls", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"edgecls {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def with_junk(src: Path, dst: Path) -> list[str]:
    """A copy of ``src`` with 1% junk files spread over its classes: zero-byte, truncated, text named .jpg."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    images = sorted(p for p in dst.rglob("*") if p.is_file() and p.parent != dst)
    count = max(3, round(JUNK_SHARE * len(images)))
    made = []
    for i in range(count):
        victim = images[(i * 7919) % len(images)]
        junk = victim.with_name(f"junk-{i:03d}{victim.suffix if i % 3 != 2 else '.jpg'}")
        if i % 3 == 0:
            junk.write_bytes(b"")
        elif i % 3 == 1:
            junk.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])
        else:
            junk.write_text("this is a text file, not a photo\n")
        made.append(str(junk.relative_to(dst)))
    return made


def train_export_verify(data: Path, out: Path, cache: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    train_s, train_log = run("train", "--data", str(data), "--out", str(out / "run"), "--cache-dir", str(cache))
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    export_s, _ = run("export", str(out / "run" / "best.pt"), "--int8", "--out", str(out / "bundle"),
                      "--cache-dir", str(cache))
    verify_s, verify_log = run("verify", str(out / "bundle"))
    eval_s, eval_json = run("eval", str(out / "bundle"), "--data", str(data), "--json")
    return {"train_s": train_s, "train_log": train_log, "metrics": metrics, "export_s": export_s,
            "verify_s": verify_s, "verify": verify_log, "eval": json.loads(eval_json),
            "manifest": read_manifest(out / "bundle")}


def report(name: str, result: dict) -> str:
    m = result["metrics"]
    split = m["split"]
    rows = [f"### {name}", "",
            f"- split ({split['layout']}): {split['train']} train / {split['val']} val / {split['test']} test; "
            f"shorter side {split.get('shorter_side_px')}; skipped {split['skipped']}: {split['skipped_first']}",
            f"- input {m['input_size']} px, {m['crop']} crops, {len(m['epochs'])} epochs, policy {m['policy']}",
            f"- `edgecls train`: **{result['train_s']:.0f} s** whole process; best.pt epoch {m['best_epoch']}, "
            f"val {m['val_acc']:.2%}, **test {m['test_acc']:.2%}** (scored once, tta {m['tta']})",
            f"- `edgecls export --int8`: {result['export_s']:.0f} s; rows: "
            + ", ".join(f"{k} {v.get('accuracy', 0):.2%}" for k, v in result["manifest"]["parity"]["results"].items()),
            f"- `edgecls verify`: {result['verify_s']:.0f} s, exit 0",
            f"- `edgecls eval` (auto engine) on the folder: {result['eval']['accuracy']:.2%} on {result['eval']['n']} "
            f"images ({result['eval'].get('split', 'all images')})", ""]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--junk", action="store_true", help="also train a copy with 1%% junk files and compare")
    args = ap.parse_args()
    cache = args.out / "cache"
    clean = train_export_verify(args.data, args.out / "clean", cache)
    print(report(f"{args.data.name} (clean)", clean))
    if args.junk:
        junky_data = args.out / f"{args.data.name}-junk"
        made = with_junk(args.data, junky_data)
        junky = train_export_verify(junky_data, args.out / "junk", cache)
        print(report(f"{args.data.name} with {len(made)} junk files ({JUNK_SHARE:.0%})", junky))
        a, b = clean["metrics"], junky["metrics"]
        same = [x["val_acc"] for x in a["epochs"]] == [x["val_acc"] for x in b["epochs"]] and \
            a["test_acc"] == b["test_acc"]
        reported = {key for key, _ in read_split(args.out / "junk" / "run" / SPLIT_FILE).skipped}
        print(f"- junk run identical to the clean run (every epoch's val accuracy and the test accuracy): **{same}**; "
              f"junk files reported in split.json: {len(reported & set(made))} of {len(made)}")


if __name__ == "__main__":
    main()
