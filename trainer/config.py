"""All knobs of a training run in one dataclass; the CLI fills it, checkpoints store it.

Torch-free, so the CLI can read the defaults without paying for a torch import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from edgecls.splits import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION


# (peak LR, weight decay) when not given: SGD for training from scratch; AdamW with the
# fine-tuning tutorials' values.
OPTIMIZER_DEFAULTS = {"sgd": (0.2, 5e-4), "adamw": (1e-3, 1e-4)}
SCHEDULES = ("onecycle", "cosine", "plateau", "triangle")
TTA_LEVELS = ("none", "flip", "flip-translate")


CROPS = ("auto", "pad", "resized")  # auto: `edgecls.trainer.data.inputs` picks from the images


@dataclass(frozen=True)
class AugmentConfig:
    crop: str = "auto"  # pad: pad-and-crop (thumbnails); resized: random-resized crop (photos)
    crop_padding: int = 4
    min_scale: float = 0.35  # resized crops keep at least this share of the image's area
    flip: str = "alternate"  # alternate | random | none
    cutout: int = 0  # side of the square zeroed out; 0 disables


@dataclass
class TrainConfig:
    model: str  # no default: the default model and its recipe live in recipes.py (DEFAULT_MODEL, recipe_config)
    data: str = "cifar10"
    data_dir: str | None = None
    cache_dir: str | None = None
    out: str | None = None
    epochs: int = 25  # the classic ResNet recipe, which models without an entry in recipes.RECIPES take
    images_seen: int | None = None  # photos: epochs raised to see this many training images (recipes.py)
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None  # None: the optimizer's default (OPTIMIZER_DEFAULTS)
    momentum: float = 0.9
    weight_decay: float | None = None
    label_smoothing: float = 0.1
    schedule: str = "onecycle"
    warmup_epochs: float = 2.0
    ema_decay: float = 0.0
    tta: str = "none"  # TTA_LEVELS; applied when best.pt is re-scored at the end, not per epoch
    bias_lr_scale: float = 1.0  # BN/bias parameters learn this many times faster (airbench: 64)
    lookahead: bool = False  # pull the weights toward a slow average every few steps (airbench)
    arch: dict = field(default_factory=dict)  # builder keyword arguments, e.g. {"width": 0.5}
    patience: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_val: int | None = None
    limit_test: int | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION  # held out of train when the data has no val/ folder
    test_fraction: float = DEFAULT_TEST_FRACTION  # held out when the data is one folder of class folders
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tensorboard: bool = False
    sync_bn: bool = False  # torchrun on GPUs: SyncBatchNorm across processes
    init: str | None = None  # "imagenet" or a checkpoint / state_dict path: fine-tuning
    freeze: str = "auto"  # auto | none | comma list of stages
    head: str = "auto"  # auto: dropout-linear when fine-tuning, else linear
    img_size: int | None = None  # None: the model's native input size
    feature_cache: str = "memory"  # memory | disk | off: frozen-trunk outputs computed once
    cache_views: int = 4  # augmented views of the training set kept in the feature cache

    @property
    def head_kind(self) -> str:
        if self.head != "auto":
            return self.head
        return "dropout-linear" if self.init else "linear"

    def validate(self) -> "TrainConfig":
        """Reject bad values up front with a message naming the flag; fill optimizer defaults."""
        from edgecls.errors import EdgeclsError

        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise EdgeclsError(f"--optimizer must be one of {', '.join(OPTIMIZER_DEFAULTS)}, got {self.optimizer!r}")
        default_lr, default_wd = OPTIMIZER_DEFAULTS[self.optimizer]
        self.lr = default_lr if self.lr is None else self.lr
        self.weight_decay = default_wd if self.weight_decay is None else self.weight_decay
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (self.tta in TTA_LEVELS, f"--tta must be one of {', '.join(TTA_LEVELS)}"),
            (self.bias_lr_scale > 0, "--bias-lr-scale must be positive"),
            (self.weight_decay >= 0, "--weight-decay must not be negative"),
            (self.feature_cache in ("memory", "disk", "off"), "--feature-cache must be memory, disk or off"),
            (self.cache_views >= 1, "--cache-views must be at least 1"),
            (self.img_size is None or self.img_size >= 16, "--img-size must be at least 16"),
            (self.head in ("auto", "linear", "dropout-linear"), "--head must be auto, linear or dropout-linear"),
            (self.augment.flip in ("alternate", "random", "none"), "--flip must be alternate, random or none"),
            (0 <= self.ema_decay < 1, "--ema must be in [0, 1)"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.limit_train is None or self.limit_train >= 1, "--limit-train must be at least 1"),
            (self.limit_val is None or self.limit_val >= 1, "--limit-val must be at least 1"),
            (self.limit_test is None or self.limit_test >= 1, "--limit-test must be at least 1"),
            (0 < self.val_fraction < 1, "--val-fraction must be in (0, 1)"),
            (0 < self.test_fraction < 1, "--test-fraction must be in (0, 1)"),
            (self.val_fraction + self.test_fraction < 1, "--val-fraction + --test-fraction must be below 1"),
            (self.augment.crop in CROPS, f"--crop must be one of {', '.join(CROPS)}"),
            (0 < self.augment.min_scale <= 1, "--min-scale must be in (0, 1]"),
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
        if isinstance(values.get("tta"), bool):  # checkpoints from before the TTA levels
            values["tta"] = "flip" if values["tta"] else "none"
        return cls(**values)
