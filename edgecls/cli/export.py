"""`edgecls export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgecls.bundle import MANIFEST
from edgecls.extras import require_extra
from edgecls.golden_file import GOLDEN_IMAGES

from .options import BUILD_FORMATS_HELP

Opt = typer.Option


def export_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(
        help="Checkpoint to export (default: newest artifacts/runs/*/best.pt, else the shipped ResNet-20).",
        show_default=False)] = None,
    format: Annotated[str, Opt(
        "--format", help=f"{BUILD_FORMATS_HELP} (every one whose converter is installed; the rest are listed); "
        "several comma-separated. TorchScript (via "
        "torch.jit.trace) is deprecated upstream in favour of torch.export; still shipped for LibTorch users.",
    )] = "all",
    int8: Annotated[bool, Opt("--int8", help="Also build INT8 variants: openvino-int8 (NNCF PTQ), onnx-int8 "
                                             "(onnxruntime static QDQ), litert-int8 (ai-edge-quantizer static) and "
                                             "executorch-int8 (PT2E, XNNPACK) of the chosen formats.")] = False,
    out: Annotated[Optional[Path], Opt(help="Export folder (default artifacts/exports/<model>-<sha8>); replaced "
                                            "only when everything succeeded.", show_default=False)] = None,
    data: Annotated[Optional[str], Opt(help="'cifar10' or PATH with train/<class>/* and test/<class>/*: the parity "
                                            "check uses its test split (default: the checkpoint's training data).",
                                       show_default=False)] = None,
    data_dir: Annotated[Optional[str], Opt(help="Where torchvision's CIFAR-10 lives.")] = None,
    cache_dir: Annotated[Optional[str], Opt(help="Where decoded image-folder caches go.")] = None,
    calib_data: Annotated[Optional[str], Opt(help="Calibration images: 'cifar10' or PATH laid out like --data; "
                                                  "its train split is used (default: --data).",
                                             show_default=False)] = None,
    calib_size: Annotated[int, Opt(help="INT8 calibration images, a seeded random draw from the train split.")] = 300,
    max_drop: Annotated[Optional[float], Opt(help="Every INT8 file keeps its accuracy on the validation split "
                                                  "within this many points of its FP32 file's, climbing the INT8 "
                                                  "ladder (more calibration, sensitive layers in float, NNCF "
                                                  "accuracy control) or the export fails (default: 1.0, and a "
                                                  "file that misses it is kept with a warning).",
                                             show_default=False)] = None,
    dynamic_batch: Annotated[bool, Opt(
        "--dynamic-batch/--static-batch",
        help="Dynamic batch axis, or a fixed batch of 1 (ONNX and OpenVINO; a TorchScript trace accepts any batch).",
    )] = True,
    opset: Annotated[int, Opt(help="ONNX opset (torch.onnx.export with dynamo=True; 18 is the lowest it emits "
                                   "natively, read by onnxruntime>=1.14 and OpenVINO>=2023.0).")] = 18,
    check_images: Annotated[int, Opt(help="Held-out test images for the parity check against PyTorch; 0 skips it "
                                          "(use 10000 for the full CIFAR-10 test set).")] = 1000,
    golden_images: Annotated[int, Opt(help="Held-out test images stored with their PyTorch logits (golden.npz), "
                                           "so `edgecls verify` can re-prove the bundle on a device; 0 for none.")
                             ] = GOLDEN_IMAGES,
    seed: Annotated[int, Opt(help="Seed for drawing calibration, check and golden images.")] = 0,
) -> None:
    """Export a checkpoint to TorchScript / ONNX / OpenVINO (+ INT8), check parity, write manifest.json.

    Every FP32 file must match PyTorch eager on 100% of top-1 predictions, max |Δlogit| <= 1e-3.

    Otherwise the command fails and writes nothing (an earlier export at --out stays as it was).

    OpenVINO is checked with INFERENCE_PRECISION_HINT=f32; its default precision and INT8 are reported.
    """
    require_extra("export", "export")
    from edgecls.export.parity import format_table
    from edgecls.export.pipeline import ExportOptions, ParityError, export_checkpoint

    opts = ExportOptions(checkpoint=checkpoint, formats=format, int8=int8, out=out, data=data, data_dir=data_dir,
                         cache_dir=cache_dir, calib_data=calib_data, calib_size=calib_size, check_images=check_images,
                         golden_images=golden_images,
                         dynamic_batch=dynamic_batch, opset=opset, max_drop=max_drop, seed=seed)
    try:
        result = export_checkpoint(opts, log=typer.echo)
    except ParityError as e:
        typer.echo(format_table(e.parity))
        raise
    if result.manifest["parity"] is not None:
        typer.echo(format_table(result.manifest["parity"]))
    written = ", ".join(e["format"] for e in result.manifest["files"])
    typer.echo(f"wrote {written} and {MANIFEST} to {result.out}")
