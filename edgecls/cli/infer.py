"""`edgecls infer`: classify image files with an exported model, without PyTorch."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, List, Optional

import typer

from edgecls.errors import EdgeclsError, ProofFailed
from edgecls.shipped import model_location

from .options import SHIPPED_HELP, AllowFailedProof, backend_option, device_option, threads_option

if TYPE_CHECKING:
    from edgecls.runtime import Prediction

Opt = typer.Option


@dataclass
class Inputs:
    paths: list[Path | str]
    skipped: int  # files met while walking folders whose extension no Pillow format opens


def collect_inputs(inputs: list[Path]) -> Inputs:
    """Files as given (even without an image suffix, so bad ones get reported); folders walked for images
    (as strings: a Path per file cost ~25 ms of 10,000)."""
    from edgecls.imageops import is_image_suffix

    paths: list[Path | str] = []
    skipped = 0
    for item in inputs:
        if not item.is_dir():
            paths.append(item)
            continue
        for root, dirs, names in os.walk(item):
            dirs.sort()
            for name in sorted(names):
                if is_image_suffix(os.path.splitext(name)[1]):
                    paths.append(os.path.join(root, name))
                else:
                    skipped += 1
    return Inputs(paths, skipped)


def infer_command(
    inputs: Annotated[List[Path], typer.Argument(help="Image files and/or folders (walked for images).")],
    model: Annotated[Optional[Path], Opt(help="An .onnx, an OpenVINO .xml, a .tflite, an NCNN .param, a .pte, an "
                                              f"export folder, or {SHIPPED_HELP}.")] = None,
    top_k: Annotated[int, Opt(help="How many classes to show per image.")] = 3,
    as_json: Annotated[bool, Opt("--json", help="One JSON object per line.")] = False,
    backend: backend_option() = "auto",
    device: device_option() = None,
    batch_size: Annotated[int, Opt(help="Images per engine call.")] = 32,
    threads: threads_option() = None,
    show_time: Annotated[bool, Opt("--time", help="Report decode, preprocess and model milliseconds.")] = False,
    allow_failed_proof: AllowFailedProof = False,
) -> None:
    """Classify images; exit 0 if all succeeded, 1 if some were refused or the model fails its golden check on
    this CPU, 2 on usage errors.

    A file that cannot be decoded is refused on its own line (the reason is Pillow's) and the run goes on;
    the last line counts the files classified, refused, and skipped while walking folders.
    """
    from edgecls.runtime import Classifier, Failure
    from edgecls.runtime.model_files import STREAM_IMAGES

    found = collect_inputs(inputs)
    skipped = f", {found.skipped} non-image files skipped" if found.skipped else ""
    try:
        clf = Classifier.load(model_location(model), backend=backend, threads=threads, device=device,
                              throughput=len(found.paths) >= STREAM_IMAGES, allow_failed_proof=allow_failed_proof)
    except ProofFailed:
        raise  # exit 1: the model is fine as asked, it fails here (the CLI prints its line)
    except EdgeclsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not found.paths:
        typer.echo(f"error: no images found in the given inputs{skipped}", err=True)
        raise typer.Exit(2)
    # Pillow warns, without naming the file, about damage it decoded around (corrupt EXIF, skipped TIFF tags):
    # each file already gets its own line, and a refused one its reason.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    ok = refused = 0
    write, line = sys.stdout.write, _line_format(as_json, show_time)
    start = time.perf_counter()
    for result in clf.classify(found.paths, top_k=top_k, batch_size=max(1, batch_size)):
        if isinstance(result, Failure):
            refused += 1
            _emit_failure(result, as_json)
        else:
            ok += 1
            write(line(result))
    sys.stdout.flush()
    seconds = time.perf_counter() - start
    summary = (f"{ok} classified, {refused} refused, {found.skipped} skipped "
               f"({clf.choice.format} via {clf.choice.engine}: {clf.choice.path})")
    if len(found.paths) > 1:  # the stream's own pace, start-up and loading left out
        summary += f" in {seconds:.2f} s, {len(found.paths) / seconds:,.0f} img/s"
    typer.echo(summary, err=True)
    raise typer.Exit(1 if refused else 0)


def _line_format(as_json: bool, show_time: bool) -> Callable[[Prediction], str]:
    """A prediction's output line, chosen once per run: lines are written straight to stdout, and at
    3,000 img/s per-line echo or lookups cost a measurable share of the run."""
    if as_json:
        from edgecls.runtime.rows import prediction_row

        return lambda p: json.dumps(prediction_row(p, show_time)) + "\n"

    def text(p: Prediction) -> str:
        ranked = ", ".join(f"{label} {prob:.1%}" for label, prob in p.top_k)
        timing = "  [" + " ".join(f"{k} {v:.2f} ms" for k, v in p.timing_ms.items()) + "]" if show_time else ""
        return f"{p.source}: {ranked}{timing}\n"

    return text


def _emit_failure(f, as_json: bool) -> None:
    from edgecls.runtime.rows import failure_row

    if as_json:
        sys.stdout.write(json.dumps(failure_row(f)) + "\n")
    else:
        typer.echo(f"{f.source}: error: {f.error}", err=True)
