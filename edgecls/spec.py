"""The model spec: everything needed to feed a model and name its outputs.

Born once (model registry + dataset), then copied into checkpoints, exported files and
manifests. Plain Python so the torch-free runtime can read it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

RESIZE_POLICIES = ("shorter-side-center-crop",)


@dataclass(frozen=True)
class ModelSpec:
    model: str
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    resize: str = "shorter-side-center-crop"
    interpolation: str = "bilinear"
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
            resize=d.get("resize", "shorter-side-center-crop"),
            interpolation=d.get("interpolation", "bilinear"),
            layout=d.get("layout", "NCHW"),
            extra=dict(d.get("extra", {})),
        )
