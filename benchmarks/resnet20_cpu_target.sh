#!/usr/bin/env bash
# ResNet-20 with its own (classic) recipe on the shared CIFAR-10 copy, timed end to end; the default
# model's run is benchmarks/time_to_accuracy.py.
#   bash benchmarks/resnet20_cpu_target.sh [OUT_DIR]
# Prints wall seconds and best test accuracy; run it on an otherwise idle machine.
set -euo pipefail
out="${1:-artifacts/runs/resnet20-cpu-target}"
data="${EDGECLS_DATA:-../shared/datasets/cifar10}"
start=$(date +%s.%N)
edgecls train --model resnet20 --data "$data" --out "$out"
end=$(date +%s.%N)
python - "$out/metrics.json" "$start" "$end" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"wall {float(sys.argv[3]) - float(sys.argv[2]):.0f} s (process), best test accuracy {m['best_acc']:.2%} "
      f"at epoch {m['best_epoch']} of {len(m['epochs'])}")
PY
