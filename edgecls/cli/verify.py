"""`edgecls verify`: prove on this machine, without PyTorch, that a bundle answers like PyTorch did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import SHIPPED_HELP, backend_option, device_option, threads_option

Opt = typer.Option


def verify_command(
    model: Annotated[Optional[Path], typer.Argument(
        help=f"An export folder, one model file inside it, or {SHIPPED_HELP}.", show_default=False)] = None,
    backend: backend_option("each file in its own engine") = "auto",
    device: device_option() = None,
    precision: Annotated[str, Opt(help="f32 pins OpenVINO's float math as the runtime does; default lets the "
                                       "device choose (bf16 on CPUs that have it) to see the drift.")] = "f32",
    threads: threads_option() = None,
    as_json: Annotated[bool, Opt("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run every file of a bundle on its golden images here; exit 0 if all pass, 1 if any fails, 2 on usage errors."""
    from edgecls.runtime.verify import format_report, verify_bundle
    from edgecls.shipped import model_location

    report = verify_bundle(model_location(model), backend=backend, device=device, precision=precision,
                           threads=threads)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
    raise typer.Exit(0 if report.passed else 1)
