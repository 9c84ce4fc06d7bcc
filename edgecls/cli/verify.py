"""`edgecls verify`: prove on this machine, without PyTorch, that a bundle answers like PyTorch did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

Opt = typer.Option


def verify_command(
    model: Annotated[Optional[Path], typer.Argument(
        help="An export folder, one model file inside it, or a shipped model's name: resnet20 (the default), airbench.",
        show_default=False)] = None,
    backend: Annotated[str, Opt(help="auto (each file in its own engine),"
                                     " onnxruntime, openvino, litert, ncnn or executorch.")] = "auto",
    device: Annotated[Optional[str], Opt(help="OpenVINO device (CPU, GPU, NPU, AUTO) or onnxruntime provider "
                                              "(cpu, cuda, …) \\[default: CPU].", show_default=False)] = None,
    precision: Annotated[str, Opt(help="f32 pins OpenVINO's float math as the runtime does; default lets the "
                                       "device choose (bf16 on CPUs that have it) to see the drift.")] = "f32",
    threads: Annotated[Optional[int], Opt(help="Engine threads (default: all cores this process may use).",
                                          show_default=False)] = None,
    as_json: Annotated[bool, Opt("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run every file of a bundle on its golden images here; exit 0 if all pass, 1 if any fails, 2 on usage errors."""
    from edgecls.runtime.verify import format_report, verify_bundle
    from edgecls.shipped import model_location

    report = verify_bundle(model_location(model), backend=backend, device=device, precision=precision,
                           threads=threads)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
    raise typer.Exit(0 if report.passed else 1)
