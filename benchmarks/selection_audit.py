"""Did the test set choose anything in the figures measured before runs had a validation split?

Until 2026-12-07 best.pt was the epoch with the best per-epoch *test* accuracy. A figure from such a
run is one honest test score exactly when that epoch was the last one (a fixed schedule, nothing
picked). This reads every recorded run and says, per run, the epochs and the epoch best.pt came from:

    python benchmarks/selection_audit.py > benchmarks/results/selection-audit-<date>.md
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHIPPED = [REPO / "artifacts" / "reference" / "metrics.json",
           REPO / "artifacts" / "reference" / "airbench" / "metrics.json"]
BEST_LINE = re.compile(r"epoch +\d+/(\d+).*?\nbest test accuracy [\d.]+% \(epoch (\d+)\)", re.S)


def from_csv(path: Path) -> tuple[int, int]:
    text = path.read_text()
    epochs = sum(1 for line in text.splitlines() if line[:1].isdigit())
    best = int(re.search(r"best\.pt \(epoch (\d+)\)", text)[1])
    return epochs, best


def from_log(path: Path) -> list[tuple[str, int, int]]:
    """Each run in a training log: its epoch count and the epoch its 'best test accuracy' line names."""
    runs = []
    for match in BEST_LINE.finditer(path.read_text()):
        runs.append((f"{path.name}, run {len(runs) + 1}", int(match[1]), int(match[2])))
    return runs


def main() -> None:
    rows = []
    for path in SHIPPED:
        metrics = json.loads(path.read_text())
        rows.append((str(path.relative_to(REPO)), len(metrics["epochs"]), metrics["best_epoch"]))
    rows += [(p.name, *from_csv(p)) for p in sorted(RESULTS.glob("time-to-accuracy-*.csv"))
             if "\nepoch,wall_s,train_img_per_s,test_acc\n" in p.read_text()]  # per-epoch test: before val splits
    for log in sorted(RESULTS.glob("finetune-cpu-*.log")):
        rows += from_log(log)
    print("| run | epochs | best.pt from epoch | the test set chose |\n|---|---:|---:|---|")
    for name, epochs, best in rows:
        chose = "nothing (the last epoch)" if best == epochs else "an earlier epoch"
        print(f"| {name} | {epochs} | {best} | {chose} |")


if __name__ == "__main__":
    main()
