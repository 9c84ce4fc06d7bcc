"""`edgecls infer`: classify image files with an exported model, without PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Iterator, List, Optional

import typer

from edgecls.errors import EdgeclsError
from edgecls.imageops import IMAGE_SUFFIXES

Opt = typer.Option


def default_model() -> Path:
    """The shipped reference model's export folder (package data, so a wheel has it too)."""
    from importlib.resources import files

    return Path(str(files("edgecls.reference"))) / "exports"


def walk_inputs(inputs: list[Path]) -> Iterator[Path]:
    """Files as given (even without an image suffix, so bad ones get reported); folders walked for images."""
    for item in inputs:
        if item.is_dir():
            for root, dirs, names in os.walk(item):
                dirs.sort()
                for name in sorted(names):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(root) / name
        else:
            yield item


def infer_command(
    inputs: Annotated[List[Path], typer.Argument(help="Image files and/or folders (walked for images).")],
    model: Annotated[Optional[Path], Opt(help="An .onnx, an OpenVINO .xml or an export folder (default: the shipped ResNet-20).")] = None,
    top_k: Annotated[int, Opt(help="How many classes to show per image.")] = 3,
    as_json: Annotated[bool, Opt("--json", help="One JSON object per line.")] = False,
    backend: Annotated[str, Opt(help="auto, onnxruntime or openvino.")] = "auto",
    batch_size: Annotated[int, Opt(help="Images per engine call.")] = 32,
    threads: Annotated[Optional[int], Opt(help="Engine threads (default: all cores this process may use).")] = None,
    show_time: Annotated[bool, Opt("--time", help="Report decode, preprocess and model milliseconds.")] = False,
) -> None:
    """Classify images; exit 0 if all succeeded, 1 if some failed, 2 on usage errors."""
    from edgecls.runtime import Classifier, Failure

    try:
        clf = Classifier.load(model or default_model(), backend=backend, threads=threads)
    except EdgeclsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    paths = list(walk_inputs(inputs))
    if not paths:
        typer.echo("error: no images found in the given inputs", err=True)
        raise typer.Exit(2)
    ok = failed = 0
    for result in clf.classify(paths, top_k=top_k, batch_size=max(1, batch_size)):
        if isinstance(result, Failure):
            failed += 1
            _emit_failure(result, as_json)
        else:
            ok += 1
            _emit_prediction(result, as_json, show_time)
    summary = f"{ok} classified, {failed} failed ({clf.choice.format} via {clf.choice.engine}: {clf.choice.path})"
    typer.echo(summary, err=True)
    raise typer.Exit(1 if failed else 0)


def _emit_prediction(p, as_json: bool, show_time: bool) -> None:
    if as_json:
        row = {"path": p.source, "label": p.label, "index": p.index, "prob": round(p.prob, 6),
               "top_k": [[label, round(prob, 6)] for label, prob in p.top_k]}
        if show_time:
            row["time_ms"] = {k: round(v, 3) for k, v in p.timing_ms.items()}
        typer.echo(json.dumps(row))
        return
    ranked = ", ".join(f"{label} {prob:.1%}" for label, prob in p.top_k)
    timing = "  [" + " ".join(f"{k} {v:.2f} ms" for k, v in p.timing_ms.items()) + "]" if show_time else ""
    typer.echo(f"{p.source}: {ranked}{timing}")


def _emit_failure(f, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"path": f.source, "error": f.error}))
    else:
        typer.echo(f"{f.source}: error: {f.error}", err=True)
