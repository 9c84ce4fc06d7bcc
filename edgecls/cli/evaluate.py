"""`edgecls eval`: test accuracy, per-class accuracy and confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgecls.extras import require_extra

Opt = typer.Option


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="An edgecls checkpoint (best.pt / last.pt).")],
    data: Annotated[str, Opt(help="'cifar10' or an image folder with test/<class>/*.")] = "cifar10",
    data_dir: Annotated[Optional[str], Opt(help="Where torchvision's CIFAR-10 lives.")] = None,
    cache_dir: Annotated[Optional[str], Opt(help="Where decoded image-folder caches go.")] = None,
    device: Annotated[str, Opt(help="cpu, cuda or auto.")] = "cpu",
    tta: Annotated[bool, Opt("--tta", help="Horizontal-flip test-time augmentation.")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print one JSON object instead of a report.")] = False,
    grid: Annotated[Optional[Path], Opt(help="Write a PNG grid of test images titled true/predicted.")] = None,
) -> None:
    """Test accuracy, per-class accuracy and confusion matrix of a checkpoint (fp32)."""
    require_extra("train", "eval")
    from edgecls.trainer.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, data, data_dir, cache_dir, device, tta, grid)
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("accuracy", "per_class", "n", "confusion", "classes")}))
        return
    typer.echo(f"accuracy {result['accuracy']:.2%} on {result['n']} images")
    width = max(len(c) for c in result["classes"])
    for name, acc in result["per_class"].items():
        typer.echo(f"  {name:<{width}}  {acc:.2%}")
    typer.echo("confusion (rows true, columns predicted):")
    for name, row in zip(result["classes"], result["confusion"]):
        typer.echo(f"  {name:<{width}}  " + " ".join(f"{v:5d}" for v in row))
    if grid:
        typer.echo(f"grid written to {grid}")
