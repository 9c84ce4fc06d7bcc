"""`edgecls doctor`: versions, CPU, engines and devices here, and whether a bundle can run (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgecls.bundle import MANIFEST, has_manifest
from edgecls.errors import UsageError

Opt = typer.Option


def doctor_command(
    model: Annotated[Optional[Path], typer.Argument(
        help="An export folder to check, or a shipped model's name: resnet20 (the default), airbench.",
        show_default=False)] = None,
    as_json: Annotated[bool, Opt("--json", help="Print the report as JSON.")] = False,
) -> None:
    """What this machine offers edgecls, and whether a bundle runs here; exit 1 if it cannot, 2 on usage errors."""
    from edgecls.runtime.doctor import diagnose, format_report
    from edgecls.shipped import model_location

    folder = model_location(model)
    if not has_manifest(folder):
        raise UsageError(f"{folder} is not an export folder (no {MANIFEST})")
    report = diagnose(folder)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    raise typer.Exit(0 if report["healthy"] else 1)
