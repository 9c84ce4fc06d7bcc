"""The models shipped as package data (``edgecls.reference``): each one's export bundle and checkpoint, by name.

Everything that needs a shipped model (the CLI's defaults, the tests, the benchmarks) asks here for its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ShippedModel:
    bundle: str  # the export folder, relative to edgecls.reference
    checkpoint: str  # the checkpoint it was exported from; a wheel holds ResNet-20's only (pyproject package-data)


SHIPPED = {"resnet20": ShippedModel("exports", "resnet20.pt"),
           "airbench": ShippedModel("airbench/exports", "airbench/airbench.pt")}
# The runtime's default: airbench is more accurate, but its INT8 runs at half ResNet-20's throughput on a CPU
# (artifacts/reference/airbench/MODEL_CARD.md).
DEFAULT_SHIPPED = "resnet20"


def _reference_folder() -> Path:
    """From the package's own path, not importlib.resources (4 ms of a cold `infer`): onnxruntime and OpenVINO
    need real files, so a zipped install could not run the models anyway."""
    import edgecls.reference

    return Path(edgecls.reference.__file__).parent


def reference_bundle(name: str = DEFAULT_SHIPPED) -> Path:
    """A shipped model's export folder."""
    return _reference_folder() / SHIPPED[name].bundle


def reference_checkpoint(name: str = DEFAULT_SHIPPED) -> Path:
    """A shipped model's checkpoint; ResNet-20's is the default of `edgecls export`."""
    return _reference_folder() / SHIPPED[name].checkpoint


def model_location(model: Path | None) -> Path:
    """Where a command's model argument points: the default shipped bundle for None, a shipped
    model's bundle for its name (``resnet20``, ``airbench``) when no such path exists, else the path."""
    if model is None:
        return reference_bundle()
    if str(model) in SHIPPED and not model.exists():
        return reference_bundle(str(model))
    return model
