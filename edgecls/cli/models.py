"""`edgecls models`: the model zoo with sizes."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from edgecls.extras import require_extra

Opt = typer.Option


def models_command(
    as_json: Annotated[bool, Opt("--json", help="Print JSON rows.")] = False,
) -> None:
    """List the models with parameter count and forward FLOPs at their input size."""
    require_extra("train", "models")
    from edgecls.trainer.models.summary import model_table

    rows = model_table()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    width = max(len(r["name"]) for r in rows)
    typer.echo(f"{'model':<{width}} {'params':>9} {'MFLOPs':>8}  description")
    for r in rows:
        typer.echo(f"{r['name']:<{width}} {r['params'] / 1e6:8.2f}M {r['flops'] / 1e6:8.1f}  {r['description']}")
    typer.echo("FLOPs count a multiply-add as 2, for one image at the model's input size (32×32).")
