"""How every benchmark row is timed: batch-1 latency and throughput at a batch (peak memory: ``edgecls.host``).

Torch-free and engine-agnostic (a ``run`` is any callable from a float32 batch to logits), so
`edgecls benchmark EXPORT_DIR` on a device and `edgecls benchmark CKPT` next to PyTorch time
their rows with the same code.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from edgecls.progress import track

Runner = Callable[[np.ndarray], np.ndarray]

LATENCY_WARMUP = 20
THROUGHPUT_WARMUP = 3
THROUGHPUT_BATCH = 64
PERCENTILES = (50, 95, 99)


def latency_ms(run: Runner, one: np.ndarray, runs: int, name: str) -> dict[str, float]:
    """Batch 1: warm-up (allocations, lazy kernel choice), then ``runs`` individually timed calls."""
    for _ in range(LATENCY_WARMUP):
        run(one)
    times = []
    for _ in track(range(runs), runs, f"{name}: latency"):
        start = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - start)
    values = np.percentile(np.asarray(times) * 1000, PERCENTILES)
    return {f"latency_ms_p{p}": float(v) for p, v in zip(PERCENTILES, values)}


def throughput(run: Runner, images: np.ndarray, runs: int, batch: int = THROUGHPUT_BATCH) -> float:
    """Images per second at ``batch`` (the given images repeated when there are fewer)."""
    x = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])))
    for _ in range(THROUGHPUT_WARMUP):
        run(x)
    start = time.perf_counter()
    for _ in range(runs):
        run(x)
    return batch * runs / (time.perf_counter() - start)


def speed(run: Runner, images: np.ndarray, name: str, latency_runs: int, throughput_runs: int,
          batch: int = THROUGHPUT_BATCH) -> dict:
    """The timing columns of a row: latency percentiles at batch 1 and throughput at ``batch``."""
    return {**latency_ms(run, images[:1], latency_runs, name),
            "throughput_ips": throughput(run, images, throughput_runs, batch), "batch_size": batch}
