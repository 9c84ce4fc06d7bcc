"""The model spec: everything needed to feed a model and name its outputs.

Born once (model registry + dataset), then copied into checkpoints, exported files and
manifests. Plain Python so the torch-free runtime can read it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SHORTER_SIDE_CENTER_CROP = "shorter-side-center-crop"  # the one resize policy so far
DEFAULT_INTERPOLATION = "bilinear"


@dataclass(frozen=True)
class ModelSpec:
    model: str
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    resize: str = SHORTER_SIDE_CENTER_CROP
    interpolation: str = DEFAULT_INTERPOLATION
    layout: str = "NCHW"
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return cls(
            model=str(d["model"]),
            classes=tuple(d["classes"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            input_size=int(d["input_size"]),
            resize=d.get("resize", SHORTER_SIDE_CENTER_CROP),
            interpolation=d.get("interpolation", DEFAULT_INTERPOLATION),
            layout=d.get("layout", "NCHW"),
            extra=dict(d.get("extra", {})),
        )


# Keys under which exported model files carry their spec (ONNX metadata_props, OpenVINO rt_info,
# TorchScript extra files). Values are strings; the spec itself is JSON.
META_SPEC = "edgecls.spec"
META_VERSION = "edgecls.version"
META_SOURCE_SHA256 = "edgecls.source_sha256"


def spec_to_metadata(spec: ModelSpec, version: str, source_sha256: str) -> dict[str, str]:
    import json

    return {META_SPEC: json.dumps(spec.to_dict(), sort_keys=True), META_VERSION: version,
            META_SOURCE_SHA256: source_sha256}


def spec_from_metadata(meta: dict[str, str]) -> ModelSpec | None:
    """The spec stored by :func:`spec_to_metadata`, or None when the file carries none."""
    import json

    raw = meta.get(META_SPEC)
    return ModelSpec.from_dict(json.loads(raw)) if raw else None
