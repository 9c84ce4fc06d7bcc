"""`edgecls benchmark`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

Opt = typer.Option


def benchmark_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(
        help="Checkpoint to benchmark (default: newest artifacts/runs/*/best.pt, else the reference ResNet-20).",
        show_default=False)] = None,
    data: Annotated[Optional[str], Opt(help="'cifar10' or PATH with test/<class>/*: its test split is scored "
                                            "(default: the checkpoint's training data).", show_default=False)] = None,
    formats: Annotated[str, Opt(help="all, or comma-separated: pytorch, torchscript, onnx, onnx-int8, openvino, "
                                     "openvino-int8.")] = "all",
    export: Annotated[Optional[Path], Opt("--export", help="An existing export folder of this checkpoint "
                                                           "(default: export into a temporary folder).",
                                          show_default=False)] = None,
    check_images: Annotated[Optional[int], Opt(help="Test images for accuracy and agreement, a seeded subset "
                                                    "(default: the whole test split).", show_default=False)] = None,
    latency_runs: Annotated[int, Opt(help="Timed batch-1 runs per format, after warm-up.")] = 200,
    throughput_runs: Annotated[int, Opt(help="Timed batch-64 runs per format, after warm-up.")] = 20,
    data_dir: Annotated[Optional[str], Opt(help="Where torchvision's CIFAR-10 lives.")] = None,
    cache_dir: Annotated[Optional[str], Opt(help="Where decoded image-folder caches go.")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print the rows as JSON.")] = False,
    markdown: Annotated[bool, Opt("--markdown", help="Print a GitHub markdown table.")] = False,
) -> None:
    """One row per format: file size, test accuracy, top-1 agreement and max |Δlogit| against PyTorch eager,
    batch-1 latency (p50/p95), batch-64 throughput, threads.

    OpenVINO FP32 runs pinned to f32. Threads for onnxruntime/OpenVINO are the cores this process may use
    (their runners keep the engine's default pool).
    """
    from edgecls.errors import EdgeclsError
    from edgecls.export.benchmark import BenchOptions, run_benchmark
    from edgecls.export.benchtable import markdown_table, plain_table

    if as_json and markdown:
        raise EdgeclsError("choose one of --json and --markdown")
    opts = BenchOptions(checkpoint=checkpoint, formats=formats, export_dir=export, data=data, data_dir=data_dir,
                        cache_dir=cache_dir, check_images=check_images, latency_runs=latency_runs,
                        throughput_runs=throughput_runs)
    rows = run_benchmark(opts, log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(rows, indent=2) if as_json else markdown_table(rows) if markdown else plain_table(rows))
