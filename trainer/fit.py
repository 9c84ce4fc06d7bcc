"""A whole training run: set up, epochs, checkpoints, metrics and plots, resume."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgecls.atomic import write_text_atomic
from edgecls.errors import EdgeclsError
from edgecls.progress import make_progress
from edgecls.spec import ModelSpec
from edgecls.splits import SPLIT_FILE, read_split, write_split

from .augment import to_model_input
from .checkpoint import read_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import SHOWN_SKIPPED, DataSplits, ImageSet, SplitPlan, load_data
from .data.profile import crop_for, profile_data
from .distributed import World, check_batch, close_world, init_world, unwrap, wrap_model
from .ema import make_ema
from .feature_cache import FeatureBank, build_feature_bank, feature_batches, predict_features
from .freeze import apply_freeze, parse_freeze
from .init_weights import InitWeights, load_backbone, resolve_init
from .lookahead import Lookahead
from .loop import EVAL_BATCH, DeviceData, StepParts, accuracy, fit_batches, predict_logits, train_one_epoch
from .models import build_model, get_entry
from .models.stages import split_stages
from .optim import end_epoch, make_optimizer, make_scheduler
from .policy import ExecPolicy, resolve_policy, set_cpu_threads
from .recipes import epochs_for


@dataclass
class RunState:
    """What changes from epoch to epoch and must survive a resume."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_acc: float = -1.0  # per-epoch check on the validation split (policy autocast)
    best_epoch: int = 0
    final: dict = field(default_factory=dict)  # best.pt scored once at the end: val_acc and test_acc, fp32

    def epochs_since_best(self) -> int:
        return self.epoch - self.best_epoch


def default_run_dir(model: str) -> Path:
    return Path("artifacts") / "runs" / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch draws from its own seeded stream, so a resumed run replays the same batches."""
    return seed * 1_000_003 + epoch


def input_size(cfg: TrainConfig) -> int:
    return cfg.img_size or get_entry(cfg.model).input_size


def build_spec(cfg: TrainConfig, splits: DataSplits, init: InitWeights | None = None) -> ModelSpec:
    """Normalization follows the starting weights when there are any, else the training images."""
    mean, std = (init.mean, init.std) if init is not None and init.mean else splits.channel_stats()
    return ModelSpec(model=cfg.model, classes=splits.classes, mean=mean, std=std, input_size=input_size(cfg))


def model_kwargs(cfg: TrainConfig, init: InitWeights | None) -> dict:
    """Builder arguments that change the architecture; checkpoints store them to rebuild it. Starting
    weights from an edgecls checkpoint bring the switches they were trained with (they fit no others)."""
    arch = init.arch if init is not None and init.arch is not None else cfg.arch
    kwargs = {**arch, "head": cfg.head_kind}
    if get_entry(cfg.model).family == "torchvision-resnet":
        kwargs["stem"] = init.stem if init is not None and init.stem else "cifar"
    return kwargs


# Training images a data-dependent first layer (airbench's patch whitening) is set from.
DATA_INIT_IMAGES = 5000


def data_init_sample(data: DeviceData, seed: int) -> torch.Tensor:
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:DATA_INIT_IMAGES]
    return to_model_input(data.images[pick.to(data.images.device)], data.mean, data.std)


def build_parts(cfg: TrainConfig, spec: ModelSpec, policy: ExecPolicy, steps_per_epoch: int,
                init: InitWeights | None = None, sync_bn: bool = False,
                init_data: DeviceData | None = None) -> StepParts:
    """The model as ``cfg`` describes it (`model_kwargs`: its --arch switches too) and what trains it.
    ``init_data``: the training images, for models whose first layer is set from data."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, spec.num_classes, **model_kwargs(cfg, init))
    if init is not None:
        load_backbone(model, init)
    elif init_data is not None and hasattr(model, "init_from_data"):
        model.init_from_data(data_init_sample(init_data, cfg.seed).cpu())
    if sync_bn:  # before freezing and the optimizer: the converted BN layers are the ones they must see
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(policy.device)
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    plan = apply_freeze(model, parse_freeze(cfg.freeze, model, init is not None))
    opt = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.bias_lr_scale)
    total = cfg.epochs * steps_per_epoch
    sched = make_scheduler(opt, total, int(cfg.warmup_epochs * steps_per_epoch), cfg.schedule)
    ema = make_ema(model) if cfg.ema_decay > 0 else None
    lookahead = Lookahead(model, total) if cfg.lookahead else None
    compiled = torch.compile(model) if policy.compile else model
    scaler = torch.amp.GradScaler(policy.device.type, enabled=policy.grad_scaler)
    return StepParts(compiled, opt, sched, scaler, ema, cfg.ema_decay, cfg.label_smoothing, plan, lookahead)


def eval_model(parts: StepParts):
    """The weights that get evaluated and saved as best: the EMA when there is one."""
    return parts.ema if parts.ema is not None else unwrap(parts.model)


def save_run_checkpoint(path: Path, parts: StepParts, spec: ModelSpec, cfg: TrainConfig, state: RunState,
                        arch: dict) -> None:
    """last.pt: evaluated weights as ``state_dict`` (so it loads like best.pt) plus all training state."""
    save_checkpoint(
        path, eval_model(parts), spec, state.epoch, model_kwargs=arch,
        raw_state_dict={k: v.detach().cpu() for k, v in unwrap(parts.model).state_dict().items()},
        optimizer=parts.optimizer.state_dict(), scheduler=parts.scheduler.state_dict(),
        scaler=parts.scaler.state_dict(), config=cfg.to_dict(), history=state.history,
        lookahead=parts.lookahead.state_dict() if parts.lookahead is not None else None,
        best_val_acc=state.best_val_acc, best_epoch=state.best_epoch,
    )


def restore(path: Path, parts: StepParts) -> RunState:
    payload = read_checkpoint(path)
    if "raw_state_dict" not in payload:
        raise EdgeclsError(f"{path} has no training state to resume from (use a last.pt)")
    unwrap(parts.model).load_state_dict(payload["raw_state_dict"])
    if parts.ema is not None:
        parts.ema.load_state_dict(payload["state_dict"])
    parts.optimizer.load_state_dict(payload["optimizer"])
    parts.scheduler.load_state_dict(payload["scheduler"])
    parts.scaler.load_state_dict(payload["scaler"])
    if parts.lookahead is not None:
        parts.lookahead.load_state_dict(payload["lookahead"])
    return RunState(payload["epoch"], list(payload["history"]), payload["best_val_acc"], payload["best_epoch"])


def config_for_resume(path: Path) -> TrainConfig:
    payload = read_checkpoint(path)
    if "config" not in payload:
        raise EdgeclsError(f"{path} has no training config to resume from")
    cfg = TrainConfig.from_dict(payload["config"])
    cfg.out = str(Path(path).parent)
    return cfg


def write_metrics(out: Path, cfg: TrainConfig, spec: ModelSpec, state: RunState, policy: ExecPolicy,
                  extra: dict | None = None) -> dict:
    metrics = {**(extra or {}),
        "model": cfg.model, "data": cfg.data, "policy": policy.describe(), "classes": list(spec.classes),
        "input_size": spec.input_size, "crop": cfg.augment.crop, "tta": cfg.tta,
        "epochs": state.history, "best_epoch": state.best_epoch, "best_val_acc_epoch_check": state.best_val_acc,
        **state.final, "epoch_eval_precision": policy.describe(),
        "wall_s": state.history[-1]["wall_s"] if state.history else 0.0,
    }
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


@dataclass
class Run:
    """Everything one training run works with, built once by :func:`prepare_run`."""

    cfg: TrainConfig
    spec: ModelSpec
    policy: ExecPolicy
    parts: StepParts
    train_data: DeviceData
    val_data: DeviceData  # scored every epoch: best.pt, --patience and the plateau schedule follow it
    test_data: DeviceData  # scored once, at the end, for best.pt
    out: Path
    log: Callable[[str], None]
    arch: dict = field(default_factory=dict)  # model_kwargs stored in checkpoints
    bank: FeatureBank | None = None
    info: dict = field(default_factory=dict)  # extra metrics.json entries
    writer: object | None = None
    world: World = field(default_factory=World)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_data) // min(self.cfg.batch_size, len(self.train_data))


def prepare_run(cfg: TrainConfig, log, world: World = World(), resumed: bool = False) -> Run:
    policy = resolve_policy(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    threads = set_cpu_threads(cfg.threads)
    if cfg.sync_bn and world.active and policy.device.type != "cuda":
        raise EdgeclsError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm has no CPU implementation")
    init = resolve_init(cfg.init, cfg.model) if cfg.init else None
    out = Path(cfg.out)
    if not world.main:
        world.barrier()  # rank 0 decodes and caches the images first
    splits = load_run_data(cfg, out, resumed)
    if world.main:
        write_split(out / SPLIT_FILE, splits.record)
        world.barrier()
    spec = build_spec(cfg, splits, init)
    sets = {"train": splits.train.subset(cfg.limit_train, cfg.seed), "val": splits.val.subset(cfg.limit_val, cfg.seed),
            "test": splits.test.subset(cfg.limit_test, cfg.seed)}
    if cfg.images_seen:
        cfg.epochs = epochs_for(cfg.images_seen, len(sets["train"]), cfg.epochs)
    data = {name: DeviceData.from_numpy(s.images, s.labels, spec.mean, spec.std, policy.device)
            for name, s in sets.items()}
    steps = len(data["train"]) // min(cfg.batch_size, len(data["train"]))
    processes = f", {world.size} processes × {cfg.batch_size // world.size} images" if world.active else ""
    log(f"{cfg.model} on {splits.source} at {spec.input_size} px ({cfg.augment.crop} crops): "
        f"{' / '.join(f'{len(d)} {n}' for n, d in data.items())} images ({splits.record.layout} split), "
        f"{policy.describe()}, {threads} threads{processes}, out {out}")
    log_data_report(splits, sets["train"], log)
    writer = make_tensorboard(out) if cfg.tensorboard and world.main else None
    arch = model_kwargs(cfg, init)
    parts = build_parts(cfg, spec, policy, steps, init, sync_bn=cfg.sync_bn and world.active,
                        init_data=data["train"])
    run = Run(cfg, spec, policy, parts, data["train"], data["val"], data["test"], out, log, arch, writer=writer,
              world=world)
    run.info["split"] = {**splits.record.counts(), "layout": splits.record.layout, **splits.info}
    if parts.freeze is not None:
        log(f"fine-tuning from {init.source if init else 'scratch'}: frozen {', '.join(parts.freeze.frozen)}")
    attach_feature_bank(run)
    return run


def load_run_data(cfg: TrainConfig, out: Path, resumed: bool) -> DataSplits:
    """The run's splits: a resumed run's as its folder records them, else a fresh seeded draw."""
    record = read_split(out / SPLIT_FILE) if resumed else None
    plan = SplitPlan(cfg.val_fraction, cfg.test_fraction, cfg.seed, record)
    return load_data(cfg.data, input_size(cfg), cfg.data_dir, cfg.cache_dir, plan)


def log_data_report(splits: DataSplits, train: ImageSet, log) -> None:
    """What a person should know about their folder before the epochs start: skipped files, imbalance."""
    info = splits.info
    if info.get("skipped"):
        named = "; ".join(f"{key} ({reason})" for key, reason in info["skipped_first"])
        rest = info["skipped"] - SHOWN_SKIPPED
        more = f" and {rest} more (all in split.json)" if rest > 0 else ""
        log(f"skipped {info['skipped']} file(s) that are not readable images: {named}{more}")
    counts = np.bincount(train.labels, minlength=len(train.classes))
    if counts.max() >= 1.5 * max(1, counts.min()):
        log("imbalanced classes (training images): " + ", ".join(f"{c} {n}" for c, n in zip(train.classes, counts)))


def attach_feature_bank(run: Run) -> None:
    """Cache the frozen prefix's outputs when there is one and caching is on."""
    plan, cfg = run.parts.freeze, run.cfg
    if plan is None or plan.prefix_len == 0 or cfg.feature_cache == "off":
        return
    started = time.perf_counter()
    folder = run.out / f"feature-cache-{run.world.rank}" if cfg.feature_cache == "disk" else None
    run.bank = build_feature_bank(plan.trunk(), run.train_data, run.val_data, run.policy, cfg.augment,
                                  cfg.seed, cfg.cache_views, folder)
    seconds = time.perf_counter() - started
    run.info["feature_cache"] = {"views": cfg.cache_views, "bytes": run.bank.nbytes, "build_s": round(seconds, 2),
                                 "where": cfg.feature_cache}
    run.log(f"feature cache: {cfg.cache_views} views of the frozen trunk's output, "
            f"{run.bank.nbytes / 1e9:.2f} GB in {cfg.feature_cache}, built in {seconds:.0f}s")


def train(cfg: TrainConfig, resume: str | Path | None = None, log=print) -> dict:
    """Run (or continue) a training run; returns the metrics dict also written to metrics.json."""
    t0 = time.perf_counter()
    if resume is not None:
        cfg = config_for_resume(Path(resume))
    cfg.validate()
    world = init_world(cfg.device)
    try:
        check_batch(cfg.batch_size, world)
        log = log if world.main else (lambda message: None)
        cfg.out = world.broadcast(str(Path(cfg.out) if cfg.out else default_run_dir(cfg.model)))
        if cfg.data != "cifar10":
            cfg.data = str(Path(cfg.data).expanduser().resolve())  # checkpoints name data usable from anywhere
        if cfg.augment.crop == "auto":
            cfg.augment = replace(cfg.augment, crop=crop_for(profile_data(cfg.data, cfg.seed)))
        run = prepare_run(cfg, log, world, resumed=resume is not None)
        state = restore(Path(resume), run.parts) if resume is not None else RunState()
        distribute(run)
        wall_offset = state.history[-1]["wall_s"] if state.history else 0.0
        with make_progress(enabled=world.main) as progress:
            task = progress.add_task("epoch", total=run.steps_per_epoch, info="")
            while state.epoch < cfg.epochs and not should_stop(state, cfg.patience, log):
                run_epoch(run, state, progress, task, t0 - wall_offset)
        if world.main:
            finish_run(run, state)
        elif run.bank is not None:
            run.bank.close()
        return write_metrics(run.out, cfg, run.spec, state, run.policy, run.info) if world.main else {}
    finally:
        close_world(world)


def distribute(run: Run) -> None:
    """Wrap the (possibly resumed) model in DDP: its constructor broadcasts rank 0's weights."""
    if run.world.active:
        model = wrap_model(unwrap(run.parts.model), run.world, run.policy.device)
        run.parts.model = torch.compile(model) if run.policy.compile else model


def should_stop(state: RunState, patience: int, log) -> bool:
    if patience and state.epochs_since_best() >= patience:
        log(f"early stop: no improvement for {patience} epochs")
        return True
    return False


def run_epoch(run: Run, state: RunState, progress, task, t_start: float) -> None:
    """Train one epoch, score it, and save checkpoints and metrics before returning."""
    cfg, epoch = run.cfg, state.epoch + 1
    progress.reset(task, total=run.steps_per_epoch, description=f"epoch {epoch}/{cfg.epochs}")
    gen = torch.Generator(device=run.policy.device).manual_seed(epoch_seed(cfg.seed, epoch))
    torch.manual_seed(epoch_seed(cfg.seed, epoch))  # dropout
    started = time.perf_counter()

    def on_step(done: int, total: int, loss: float) -> None:
        rate = done * cfg.batch_size / (time.perf_counter() - started)
        progress.update(task, completed=done, info=f"loss {loss:.3f}  {rate:.0f} img/s")

    loss, img_s = train_epoch(run, gen, epoch, on_step)
    weights = eval_model(run.parts)
    acc = epoch_accuracy(run, weights)
    end_epoch(run.parts.scheduler, acc)
    now = time.perf_counter()
    state.epoch = epoch
    state.history.append({"epoch": epoch, "train_loss": round(loss, 5), "val_acc": round(acc, 5),
                          "train_img_per_s": round(img_s, 1), "epoch_s": round(now - started, 2),
                          "wall_s": round(now - t_start, 2), "lr": run.parts.scheduler.get_last_lr()[0]})
    improved = acc > state.best_val_acc
    if improved:
        state.best_val_acc, state.best_epoch = acc, epoch
    if run.world.main:
        save_outputs(run, state, weights, improved)
    run.log(f"epoch {epoch:3d}/{cfg.epochs}  loss {loss:.4f}  val {acc:.2%}{' *' if improved else '  '} "
            f"best {state.best_val_acc:.2%}  {img_s:.0f} img/s  {now - started:.1f}s  wall {now - t_start:.0f}s")


def save_outputs(run: Run, state: RunState, weights: torch.nn.Module, improved: bool) -> None:
    """Rank 0's job: best.pt when improved, last.pt, metrics.json and TensorBoard every epoch."""
    cfg, epoch = run.cfg, state.epoch
    if improved:
        save_checkpoint(run.out / "best.pt", weights, run.spec, epoch, best_val_acc=state.best_val_acc,
                        config=cfg.to_dict(), model_kwargs=run.arch)
    save_run_checkpoint(run.out / "last.pt", run.parts, run.spec, cfg, state, run.arch)
    write_metrics(run.out, cfg, run.spec, state, run.policy, run.info)
    if run.writer is not None:
        for key in ("train_loss", "val_acc", "train_img_per_s"):
            run.writer.add_scalar(key, state.history[-1][key], epoch)


def train_epoch(run: Run, gen: torch.Generator, epoch: int, on_step) -> tuple[float, float]:
    """A full pass through the model, or through the trainable tail on cached trunk features."""
    cfg, world = run.cfg, run.world
    if run.bank is None:
        loss, img_s = train_one_epoch(run.parts, run.train_data, cfg.batch_size, run.policy, cfg.augment, gen,
                                      cfg.seed, epoch, on_step, world)
    else:
        bs = min(cfg.batch_size, len(run.train_data))
        batches = feature_batches(run.bank.view_for_epoch(epoch), run.train_data.labels, bs, gen, world)
        loss, img_s = fit_batches(run.parts, run.parts.freeze.tail(), batches, run.steps_per_epoch, bs,
                                  run.policy, on_step)
    return world.sum(torch.tensor(loss, device=run.policy.device)).item() / world.size, img_s


Scorer = Callable[[int, int], torch.Tensor]  # (start, stop) → float logits of those test images, on the CPU


def epoch_accuracy(run: Run, weights: torch.nn.Module) -> float:
    """Validation accuracy under the policy's autocast, from cached features when there are some; every
    rank gets the same number, whatever the number of ranks (see :func:`sharded_predictions`)."""
    preds = sharded_predictions(epoch_scorer(run, weights), len(run.val_data), run.world, run.policy.device)
    return (preds == run.val_data.labels.cpu()).sum().item() / max(1, len(run.val_data))


def epoch_scorer(run: Run, weights: torch.nn.Module) -> Scorer:
    """The whole model on the validation images, or its trainable tail on their cached trunk features."""
    if run.bank is None:
        return model_scorer(weights, run.val_data, run.policy, amp=True)
    tail = torch.nn.Sequential(*(m for _, m in split_stages(weights)[run.parts.freeze.prefix_len:]))
    return lambda start, stop: predict_features(tail, run.bank.val[start:stop], run.policy, EVAL_BATCH)


def model_scorer(model: torch.nn.Module, data: DeviceData, policy: ExecPolicy, tta: str = "none",
                 amp: bool = False) -> Scorer:
    return lambda start, stop: predict_logits(model, data.slice(start, stop), policy, EVAL_BATCH, tta, amp)


def sharded_predictions(score: Scorer, n: int, world: World, device: torch.device) -> torch.Tensor:
    """Top-1 class of each of ``n`` images, on every rank.

    Each rank scores its :meth:`World.chunks` of ``EVAL_BATCH`` images, so every image is computed
    in the batch a single process would give it. The all-reduce also counts how often each image
    was scored: anything but exactly once is a sharding bug, not a rounding difference.
    """
    votes = torch.zeros(2, n, dtype=torch.long)  # times scored, predicted class
    for start, stop in world.chunks(n, EVAL_BATCH):
        votes[0, start:stop] += 1
        votes[1, start:stop] = score(start, stop).argmax(1)
    votes = world.sum(votes.to(device)).cpu()
    missed = int((votes[0] != 1).sum())
    if missed:
        raise RuntimeError(f"sharded evaluation scored {missed} of {n} test images other than exactly once")
    return votes[1]


def finish_run(run: Run, state: RunState) -> None:
    """Score best.pt in fp32 with the run's test-time augmentation (without it, what `edgecls eval` and
    FP32 exports report): on validation, and on the test split for the first and only time; draw the plots."""
    from .checkpoint import load_checkpoint
    from .plots import plot_confusion, plot_curves

    if run.bank is not None:
        run.bank.close()
    plot_curves(state.history, run.out / "curves.png")
    best_model, _ = load_checkpoint(run.out / "best.pt")
    best_model = best_model.to(run.policy.device)
    val_logits = predict_logits(best_model, run.val_data, run.policy, tta=run.cfg.tta)
    logits = predict_logits(best_model, run.test_data, run.policy, tta=run.cfg.tta)
    state.final = {"val_acc": accuracy(val_logits, run.val_data.labels),
                   "test_acc": accuracy(logits, run.test_data.labels)}
    labels = run.test_data.labels.cpu().numpy()
    plot_confusion(logits.argmax(1).numpy(), labels, run.spec.classes, run.out / "confusion.png")


def make_tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise EdgeclsError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(str(out / "tensorboard"))
