"""`edgecls eval`: test accuracy, per-class accuracy and confusion matrix of a checkpoint or an exported model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgecls.bundle import MANIFEST, has_manifest
from edgecls.errors import UsageError
from edgecls.extras import require_extra
from edgecls.shipped import model_location

from .options import (ENGINE_DEVICE_HELP, RUNTIME_PANEL, AllowFailedProof, backend_option, device_option,
                      threads_option, torch_panel)

Opt = typer.Option
TORCH_PANEL = torch_panel("train")
EXPORTED_SUFFIXES = (".onnx", ".xml")
JSON_KEYS = ("accuracy", "per_class", "n", "confusion", "classes")


def eval_command(
    model: Annotated[Path, typer.Argument(help="A checkpoint (.pt; needs PyTorch), or an export folder, .onnx, "
                                                ".xml or shipped model's name (runs without PyTorch).")],
    data: Annotated[str, Opt(help="An image folder with test/<class>/* (or, for an exported model, <class>/*); "
                                  "a checkpoint also takes 'cifar10'.")] = "cifar10",
    device: device_option("Checkpoint: cpu, cuda, mps or auto \\[default: cpu]. "
                          f"Exported model: an {ENGINE_DEVICE_HELP}") = None,
    as_json: Annotated[bool, Opt("--json", help="Print one JSON object instead of a report.")] = False,
    plot: Annotated[Optional[Path], Opt(help="Write the confusion matrix as a PNG.", show_default=False)] = None,
    backend: backend_option(panel=RUNTIME_PANEL) = "auto",
    threads: threads_option(panel=RUNTIME_PANEL) = None,
    batch_size: Annotated[int, Opt(help="Images per engine call.", rich_help_panel=RUNTIME_PANEL)] = 64,
    allow_failed_proof: AllowFailedProof = False,
    data_dir: Annotated[Optional[str], Opt(help="Where torchvision's CIFAR-10 lives.",
                                           rich_help_panel=TORCH_PANEL)] = None,
    cache_dir: Annotated[Optional[str], Opt(help="Where decoded image-folder caches go.",
                                            rich_help_panel=TORCH_PANEL)] = None,
    tta: Annotated[str, Opt(help="Test-time augmentation: none, flip, or flip-translate (airbench's).",
                            rich_help_panel=TORCH_PANEL)] = "none",
    grid: Annotated[Optional[Path], Opt(help="Write a PNG grid of test images titled true/predicted.",
                                        rich_help_panel=TORCH_PANEL)] = None,
) -> None:
    """Accuracy, per-class accuracy and confusion matrix: of a checkpoint in fp32 (PyTorch), or of an exported
    model through the torch-free runtime, compared with the accuracy its bundle recorded at export."""
    model = model_location(model)
    if _is_exported(model):
        if data_dir or cache_dir or tta != "none" or grid:
            raise UsageError("--data-dir, --cache-dir, --tta and --grid are for a checkpoint only")
        result = _evaluate_exported(model, data, backend, device, threads, batch_size, allow_failed_proof)
    else:
        if backend != "auto" or threads is not None or allow_failed_proof:
            raise UsageError("--backend, --threads and --allow-failed-proof are for an exported model only")
        require_extra("train", "eval")
        from edgecls.trainer.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(model, data, data_dir, cache_dir, device or "cpu", tta, grid)
    if plot:
        from edgecls.runtime.confusion_png import write_confusion_png

        write_confusion_png(result["confusion"], result["classes"], plot, f"{model.name}: ")
    if as_json:
        keys = JSON_KEYS + tuple(k for k in ("data", "split", "failed", "failures", "images_per_s", "model", "recorded")
                                 if k in result)
        typer.echo(json.dumps({k: result[k] for k in keys}))
        return
    typer.echo("\n".join(_report(result)))
    for path, what in ((grid, "grid"), (plot, "confusion matrix")):
        if path:
            typer.echo(f"{what} written to {path}")


def _is_exported(model: Path) -> bool:
    """The dispatch: an export folder or a model file runs on the runtime; anything else is a checkpoint."""
    if model.is_dir() and not has_manifest(model):
        raise UsageError(f"{model} is a folder without {MANIFEST}: expected an export folder or a model file")
    return model.is_dir() or model.suffix.lower() in EXPORTED_SUFFIXES


def _evaluate_exported(model: Path, data: str, backend: str, device: str | None, threads: int | None,
                       batch_size: int, allow_failed_proof: bool) -> dict:
    from edgecls.runtime import Classifier
    from edgecls.runtime.evaluate import evaluate_folder

    if data == "cifar10":
        raise UsageError("an exported model is evaluated on an image folder: --data DIR with test/<class>/*")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    clf = Classifier.load(model, backend=backend, device=device, threads=threads,
                          allow_failed_proof=allow_failed_proof)
    return evaluate_folder(clf, Path(data), batch_size=batch_size)


def _report(result: dict) -> list[str]:
    lines = [f"accuracy {result['accuracy']:.2%} on {result['n']} images"]
    if "model" in result:
        m = result["model"]
        lines[0] += (f" ({m['format']} via {m['engine']} {m['version']} on {m['device']}, "
                     f"{result['images_per_s']:,.0f} img/s)")
        if result.get("split"):
            lines.append(f"  scored: {result['split']}")
        if result["failed"]:
            lines.append(f"  {result['failed']} files could not be read and are not counted, e.g.:")
            lines += [f"    {failure}" for failure in result["failures"]]
        if result["recorded"]:
            lines.append(_recorded_line(result["recorded"]))
    width = max(len(c) for c in result["classes"])
    lines += [f"  {name:<{width}}  {acc:.2%}" for name, acc in result["per_class"].items()]
    lines.append("confusion (rows true, columns predicted):")
    lines += [f"  {name:<{width}}  " + " ".join(f"{v:5d}" for v in row)
              for name, row in zip(result["classes"], result["confusion"])]
    return lines


def _recorded_line(recorded: dict) -> str:
    return (f"  {recorded['difference_points']:+.2f} points against the {recorded['accuracy']:.2%} its manifest "
            f"recorded on the build machine ({recorded['images']} images of {recorded['data']})")
