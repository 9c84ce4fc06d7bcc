"""`edgecls benchmark`: an export folder on this device (torch-free), or a checkpoint beside PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgecls.bundle import MANIFEST, has_manifest
from edgecls.format_table import FORMATS
from edgecls.errors import UsageError
from edgecls.extras import require_extra
from edgecls.shipped import model_location
from edgecls.tolerance import REFERENCE

from .options import RUNTIME_PANEL, AllowFailedProof, backend_option, device_option, threads_option, torch_panel, words

Opt = typer.Option
TORCH_PANEL = torch_panel("export")


def benchmark_command(
    model: Annotated[Optional[Path], typer.Argument(
        help=f"An export folder (has {MANIFEST}): measured here without PyTorch. Or a checkpoint (default: "
             "newest artifacts/runs/*/best.pt, else the reference ResNet-20): every format against PyTorch.",
        show_default=False)] = None,
    data: Annotated[Optional[str], Opt(help="Image folder with test/<class>/* (or <class>/*) for the accuracy "
                                            "column; a checkpoint also takes 'cifar10' (default: its training "
                                            "data's test split).", show_default=False)] = None,
    formats: Annotated[str, Opt(help=f"all, or comma-separated: {words([REFERENCE, *FORMATS])} (an export folder "
                                     "runs no torch rows).")] = "all",
    batch_size: Annotated[int, Opt(help="Batch for the throughput column.")] = 64,
    check_images: Annotated[Optional[int], Opt(help="Score a seeded subset of this many test images "
                                                    "(default: all).", show_default=False)] = None,
    latency_runs: Annotated[int, Opt(help="Timed batch-1 runs per row, after warm-up.")] = 200,
    throughput_runs: Annotated[int, Opt(help="Timed --batch-size runs per row, after warm-up.")] = 20,
    as_json: Annotated[bool, Opt("--json", help="Print the rows as JSON.")] = False,
    markdown: Annotated[bool, Opt("--markdown", help="Print a GitHub markdown table.")] = False,
    backend: backend_option("every engine installed here", RUNTIME_PANEL) = "auto",
    device: device_option(panel=RUNTIME_PANEL) = None,
    threads: threads_option(panel=RUNTIME_PANEL) = None,
    allow_failed_proof: AllowFailedProof = False,
    export: Annotated[Optional[Path], Opt("--export", help="An existing export folder of this checkpoint "
                                                           "(default: export into a temporary folder).",
                                          show_default=False, rich_help_panel=TORCH_PANEL)] = None,
    data_dir: Annotated[Optional[str], Opt(help="Where torchvision's CIFAR-10 lives.",
                                           rich_help_panel=TORCH_PANEL)] = None,
    cache_dir: Annotated[Optional[str], Opt(help="Where decoded image-folder caches go.",
                                            rich_help_panel=TORCH_PANEL)] = None,
) -> None:
    """One row per format and engine: size, accuracy, agreement with PyTorch, latency, throughput, peak RSS.

    An export folder runs every file on every engine installed here; agreement comes from its golden vectors.
    A file that fails its golden check on this CPU is skipped with a line saying why (--allow-failed-proof
    measures it anyway).

    A checkpoint adds PyTorch and TorchScript rows; agreement is measured on the test images.

    OpenVINO FP32 runs pinned to f32 in both.
    """
    from edgecls.runtime.benchtable import markdown_table, plain_table

    if as_json and markdown:
        raise UsageError("choose one of --json and --markdown")
    log = lambda m: typer.echo(m, err=True)  # noqa: E731
    model = model_location(model) if model is not None else None
    if model is not None and has_manifest(model):
        from edgecls.runtime.benchmark import BundleBenchOptions, benchmark_bundle

        _only_for("a checkpoint", export=export, data_dir=data_dir, cache_dir=cache_dir)
        if data == "cifar10":
            raise UsageError("an export folder is scored on an image folder: --data DIR with test/<class>/*")
        opts = BundleBenchOptions(model, Path(data) if data else None, formats, backend, device, threads,
                                  batch_size, latency_runs, throughput_runs, check_images, allow_failed_proof)
        rows = benchmark_bundle(opts, log=log)
        log(_agreement_note(rows))
        log(_auto_note(model, device))
    else:
        _only_for("an export folder", backend=None if backend == "auto" else backend, device=device, threads=threads,
                  allow_failed_proof=allow_failed_proof or None)
        if model is not None and model.is_dir():
            raise UsageError(f"{model} has no {MANIFEST}: expected an export folder or a checkpoint (.pt)")
        require_extra("export", "benchmark")
        from edgecls.export.benchmark import BenchOptions, run_benchmark

        opts = BenchOptions(checkpoint=model, formats=formats, export_dir=export, data=data, data_dir=data_dir,
                            cache_dir=cache_dir, check_images=check_images, latency_runs=latency_runs,
                            throughput_runs=throughput_runs, batch_size=batch_size)
        rows = run_benchmark(opts, log=log)
    typer.echo(json.dumps(rows, indent=2) if as_json else markdown_table(rows) if markdown else plain_table(rows))


def _only_for(kind: str, **given) -> None:
    """Options of the other path are refused rather than silently ignored."""
    named = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
    if named:
        raise UsageError(f"{', '.join(named)} {'is' if len(named) == 1 else 'are'} for {kind} only")


def _auto_note(folder: Path, device: str | None) -> str:
    """Which of the rows `--backend auto` runs on this CPU, so a user can see what to override."""
    from edgecls.runtime.model_files import STREAM_IMAGES, choose_model

    one, stream = (choose_model(folder, "auto", device, throughput) for throughput in (False, True))
    return (f"auto picks here: {one.format} via {one.engine} (a few images), {stream.format} via {stream.engine} "
            f"(a stream of {STREAM_IMAGES:,}+), each where it passes its golden check here; --backend overrides")


def _agreement_note(rows: list[dict]) -> str:
    from edgecls.runtime.benchmark import AGREEMENT_IMAGES

    golden = max(r[AGREEMENT_IMAGES] for r in rows)
    return (f"agreement: top-1 with PyTorch on the bundle's {golden} golden images" if golden else
            "agreement: n/a (this bundle carries no golden vectors; re-export it to get them)")
