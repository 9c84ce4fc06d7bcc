"""The metadata every exported file carries, so a runtime can feed it without the training code.

Keys (``edgecls.spec.META_*``, identical strings in every format; values are UTF-8 strings):

- ``edgecls.spec``: ``json.dumps(ModelSpec.to_dict())``: model, classes, mean, std (over [0, 1] pixels),
  input_size, resize, interpolation, layout (``NCHW``; input is float32 RGB, normalized).
- ``edgecls.version``: the edgecls version that exported the file.
- ``edgecls.source_sha256``: sha256 of the checkpoint the file was exported from.
- ``edgecls.precision``: ``fp32`` or ``int8``.

Where they live:

- ONNX: ``ModelProto.metadata_props`` (``onnxruntime``: ``session.get_modelmeta().custom_metadata_map``).
- OpenVINO IR: top-level ``rt_info`` entries, one per key (``model.get_rt_info([key]).astype(str)``).
- TorchScript: extra files in the archive (``torch.jit.load(path, _extra_files={key: ""})``).
- NCNN, LiteRT, ExecuTorch: a JSON object beside the model file (``edgecls.format_table.META_SIDECAR``).

Only writers live here: the runtime reads these keys itself (``edgecls.spec.spec_from_metadata``)
and never imports ``edgecls.export``.
"""

from __future__ import annotations

from pathlib import Path

from edgecls import __version__
from edgecls.spec import ModelSpec, spec_to_metadata

PRECISION_KEY = "edgecls.precision"


def model_metadata(spec: ModelSpec, source_sha256: str) -> dict[str, str]:
    """The FP32 metadata; INT8 builders override ``edgecls.precision`` via :func:`with_precision`."""
    return {**spec_to_metadata(spec, __version__, source_sha256), PRECISION_KEY: "fp32"}


def with_precision(metadata: dict[str, str], precision: str) -> dict[str, str]:
    return {**metadata, PRECISION_KEY: precision}


def stamp_onnx_file(path: Path, metadata: dict[str, str]) -> None:
    """Replace the file's edgecls metadata_props (other props, e.g. from a quantizer, are kept)."""
    import onnx

    proto = onnx.load(str(path))
    kept = {p.key: p.value for p in proto.metadata_props if p.key not in metadata}
    onnx.helper.set_model_props(proto, {**kept, **metadata})
    onnx.save(proto, str(path))


def stamp_openvino(model, metadata: dict[str, str]) -> None:
    """Set one top-level rt_info entry per key on an ``openvino.Model`` before saving it."""
    for key, value in metadata.items():
        model.set_rt_info(value, [key])


def write_sidecar(model_file: Path, metadata: dict[str, str]) -> Path:
    """The metadata of a format that has no place for it, as ``<model file>`` + ``META_SIDECAR``."""
    import json

    from edgecls.format_table import META_SIDECAR

    side = Path(str(model_file) + META_SIDECAR)
    side.write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    return side
