"""The mobile networks' INT8 files in every format and engine, as the default export builds them (issue 35).

    python benchmarks/mobile_formats.py mobilenetv2=RUN/best.pt mobilenetv3small=RUN2/best.pt ...
                                        [--images 10000] [--training "1 epoch on 2,048 images"]
                                        [--data ../shared/datasets/cifar10]
                                        [--out benchmarks/results/mobile-formats-cpu-<class>-<date>.md]

Depthwise convolutions are where naive INT8 is known to break (per-channel ranges that differ by orders of
magnitude, hardswish and squeeze-excite activations), so this measures what the default export ships: each
checkpoint goes through `--format all --int8` (the default 300 seeded calibration images; each INT8 file climbs
export/int8_ladder.py's steps past plain PTQ only when PTQ misses the 1.0-point target, and
`benchmarks/int8_ladder.py EXPORT` prints which step each needed) and every file runs in every engine that
can run it, against PyTorch eager FP32 on the same tensors
(`edge_formats.measure_checkpoint`). Per row: accuracy, top-1 agreement with PyTorch, the INT8 file's accuracy
change against its own FP32 file in the same engine, and the issue's verdict (edge_formats' target: FP32 under
the bundle's rule, INT8 >= 99% agreement and within 0.5 points). Formats a converter cannot express are listed
with the exporter's reason. No timings: the table is about accuracy.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

from edge_formats import REPO, TEST_IMAGES, measure_checkpoint

SKIP_MARK = "  skipped "  # how export_checkpoint logs a format left out, with its reason


def measure(name: str, checkpoint: Path, data: str, workdir: Path, images: int) -> tuple[list[dict], list[str]]:
    """The rows of one network and the export's skipped-format lines."""
    log = io.StringIO()
    with redirect_stdout(log):
        rows = measure_checkpoint(name, checkpoint, data, workdir, latency_runs=1, throughput_runs=1, images=images,
                                  extra_checks=False)
    skips = [line.strip().removeprefix("skipped ") for line in log.getvalue().splitlines()
             if line.startswith(SKIP_MARK)]
    return rows, skips


def int8_drops(rows: list[dict]) -> None:
    """Each INT8 row gains ``drop``: its accuracy minus that of the FP32 file it quantizes, in the same engine."""
    from edgecls.format_table import FORMATS

    fp32 = {(r["model"], r["format"], r["engine"]): r["accuracy"] for r in rows}
    for r in rows:
        source = FORMATS[r["format"]].int8_of
        key = (r["model"], source, r["engine"])
        r["drop"] = (r["accuracy"] - fp32[key]) * 100 if source and key in fp32 else None


def markdown(rows: list[dict], skips: dict[str, list[str]]) -> str:
    head = "| model | format | engine | precision | accuracy | agreement with PyTorch | INT8 − FP32 (pts) | verdict |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        drop = "" if r["drop"] is None else f"{r['drop']:+.2f}"
        lines.append(f"| {r['model']} | {r['format']} | {r['engine']} | {r['precision']} | {r['accuracy']:.2%} | "
                     f"{r['agreement']:.2%} | {drop} | {r['target']} |")
    listed = [f"- {model}: {skip}" for model, found in skips.items() for skip in found]
    return "\n".join(lines) + "\n\nFormats left out (the exporter's reason):\n\n" + "\n".join(listed or ["- none"])


def checkpoints(pairs: list[str]) -> dict[str, Path]:
    parsed = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"error: {pair!r}: expected NAME=CHECKPOINT with an existing checkpoint file")
        parsed[name] = Path(path)
    return parsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="NAME=CHECKPOINT, one per network")
    ap.add_argument("--images", type=int, default=TEST_IMAGES, help="seeded draw of test images per row")
    ap.add_argument("--training", default="not stated", help="what training the checkpoints had, for the header")
    ap.add_argument("--data", default=str(REPO.parent / "shared/datasets/cifar10"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    runs = checkpoints(args.checkpoints)

    from edgecls import __version__
    from edgecls.atomic import write_text_atomic
    from edgecls.host import cpu_class, cpu_name, instruction_sets

    stamp = time.strftime("%Y-%m-%d")
    out = args.out or REPO / "benchmarks/results" / f"mobile-formats-cpu-{cpu_class()}-{stamp}.md"
    rows, skips = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, checkpoint in runs.items():  # the file is rewritten after each network: a long run keeps its part
            found, skips[name] = measure(name, checkpoint, args.data, Path(tmp), args.images)
            rows += found
            int8_drops(rows)
            text = (f"# Naive INT8 of the mobile networks, every format and engine ({stamp})\n\n"
                    f"`python benchmarks/mobile_formats.py` (edgecls {__version__}) on {cpu_name()}, instruction "
                    f"sets: {', '.join(instruction_sets())}. Training: {args.training}. A seeded draw of "
                    f"{args.images:,} CIFAR-10 test images per row, against PyTorch eager FP32 on the same "
                    "tensors; default export settings (`--format all --int8`, 300 calibration images).\n\n"
                    + markdown(rows, skips) + "\n")
            write_text_atomic(out, text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
