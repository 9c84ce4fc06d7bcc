"""All knobs of a training run in one dataclass; the CLI fills it, checkpoints store it.

Torch-free, so the CLI can read the defaults without paying for a torch import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 4
    flip: str = "alternate"  # alternate | random | none
    cutout: int = 0  # side of the square zeroed out; 0 disables


@dataclass
class TrainConfig:
    model: str = "resnet20"
    data: str = "cifar10"
    data_dir: str | None = None
    cache_dir: str | None = None
    out: str | None = None
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    schedule: str = "onecycle"
    warmup_epochs: float = 2.0
    ema_decay: float = 0.0
    tta: bool = False
    patience: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tensorboard: bool = False

    def validate(self) -> "TrainConfig":
        """Reject bad values up front with a message naming the flag."""
        from edgecls.errors import EdgeclsError

        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.schedule in ("onecycle", "cosine"), "--schedule must be onecycle or cosine"),
            (self.augment.flip in ("alternate", "random", "none"), "--flip must be alternate, random or none"),
            (0 <= self.ema_decay < 1, "--ema must be in [0, 1)"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.limit_train is None or self.limit_train >= 1, "--limit-train must be at least 1"),
            (self.limit_test is None or self.limit_test >= 1, "--limit-test must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgeclsError(message)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["augment"] = AugmentConfig(**values.get("augment", {}))
        return cls(**values)
