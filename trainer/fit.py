"""A whole training run: set up, epochs, checkpoints, metrics and plots, resume."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgecls.atomic import write_text_atomic
from edgecls.errors import EdgeclsError
from edgecls.progress import make_progress
from edgecls.spec import ModelSpec

from .checkpoint import read_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import DataSplits, load_data
from .ema import make_ema
from .loop import DeviceData, StepParts, accuracy, predict_logits, train_one_epoch
from .models import build_model, get_entry
from .optim import make_optimizer, make_scheduler
from .policy import ExecPolicy, resolve_policy, set_cpu_threads


@dataclass
class RunState:
    """What changes from epoch to epoch and must survive a resume."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_acc: float = -1.0  # per-epoch check (policy autocast)
    best_epoch: int = 0
    best_acc_fp32: float | None = None  # best.pt re-scored in fp32 at the end

    def epochs_since_best(self) -> int:
        return self.epoch - self.best_epoch


def default_run_dir(model: str) -> Path:
    return Path("artifacts") / "runs" / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch draws from its own seeded stream, so a resumed run replays the same batches."""
    return seed * 1_000_003 + epoch


def build_spec(cfg: TrainConfig, splits: DataSplits) -> ModelSpec:
    mean, std = splits.channel_stats()
    return ModelSpec(model=cfg.model, classes=splits.classes, mean=mean, std=std,
                     input_size=get_entry(cfg.model).input_size)


def build_parts(cfg: TrainConfig, spec: ModelSpec, policy: ExecPolicy, steps_per_epoch: int) -> StepParts:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, spec.num_classes).to(policy.device)
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    total = cfg.epochs * steps_per_epoch
    sched = make_scheduler(opt, total, int(cfg.warmup_epochs * steps_per_epoch), cfg.schedule)
    ema = make_ema(model) if cfg.ema_decay > 0 else None
    compiled = torch.compile(model) if policy.compile else model
    scaler = torch.amp.GradScaler(policy.device.type, enabled=policy.grad_scaler)
    return StepParts(compiled, opt, sched, scaler, ema, cfg.ema_decay, cfg.label_smoothing)


def eval_model(parts: StepParts):
    """The weights that get evaluated and saved as best: the EMA when there is one."""
    return parts.ema if parts.ema is not None else getattr(parts.model, "_orig_mod", parts.model)


def save_run_checkpoint(path: Path, parts: StepParts, spec: ModelSpec, cfg: TrainConfig, state: RunState,
                        weights) -> None:
    save_checkpoint(
        path, weights, spec, state.epoch,
        raw_state_dict={k: v.detach().cpu() for k, v in getattr(parts.model, "_orig_mod", parts.model).state_dict().items()},
        optimizer=parts.optimizer.state_dict(), scheduler=parts.scheduler.state_dict(),
        scaler=parts.scaler.state_dict(), config=cfg.to_dict(), history=state.history,
        best_acc=state.best_acc, best_epoch=state.best_epoch,
    )


def restore(path: Path, parts: StepParts) -> RunState:
    payload = read_checkpoint(path)
    if "raw_state_dict" not in payload:
        raise EdgeclsError(f"{path} has no training state to resume from (use a last.pt)")
    model = getattr(parts.model, "_orig_mod", parts.model)
    model.load_state_dict(payload["raw_state_dict"])
    if parts.ema is not None:
        parts.ema.load_state_dict(payload["state_dict"])
    parts.optimizer.load_state_dict(payload["optimizer"])
    parts.scheduler.load_state_dict(payload["scheduler"])
    parts.scaler.load_state_dict(payload["scaler"])
    return RunState(payload["epoch"], list(payload["history"]), payload["best_acc"], payload["best_epoch"])


def config_for_resume(path: Path) -> TrainConfig:
    payload = read_checkpoint(path)
    if "config" not in payload:
        raise EdgeclsError(f"{path} has no training config to resume from")
    cfg = TrainConfig.from_dict(payload["config"])
    cfg.out = str(Path(path).parent)
    return cfg


def write_metrics(out: Path, cfg: TrainConfig, spec: ModelSpec, state: RunState, policy: ExecPolicy) -> dict:
    metrics = {
        "model": cfg.model, "data": cfg.data, "policy": policy.describe(), "classes": list(spec.classes),
        "epochs": state.history, "best_epoch": state.best_epoch,
        "best_acc": state.best_acc_fp32 if state.best_acc_fp32 is not None else state.best_acc,
        "best_acc_epoch_check": state.best_acc, "epoch_eval_precision": policy.describe(),
        "wall_s": state.history[-1]["wall_s"] if state.history else 0.0,
    }
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def train(cfg: TrainConfig, resume: str | Path | None = None, log=print) -> dict:
    """Run (or continue) a training run; returns the metrics dict also written to metrics.json."""
    if resume is not None:
        cfg = config_for_resume(Path(resume))
    out = Path(cfg.out) if cfg.out else default_run_dir(cfg.model)
    cfg.out = str(out)
    policy = resolve_policy(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    threads = set_cpu_threads(cfg.threads)
    t0 = time.perf_counter()
    splits = load_data(cfg.data, get_entry(cfg.model).input_size, cfg.data_dir, cfg.cache_dir)
    train_set = splits.train.subset(cfg.limit_train, cfg.seed)
    test_set = splits.test.subset(cfg.limit_test, cfg.seed)
    spec = build_spec(cfg, splits)
    train_data = DeviceData.from_numpy(train_set.images, train_set.labels, spec.mean, spec.std, policy.device)
    test_data = DeviceData.from_numpy(test_set.images, test_set.labels, spec.mean, spec.std, policy.device)
    steps = len(train_data) // min(cfg.batch_size, len(train_data))
    parts = build_parts(cfg, spec, policy, steps)
    state = restore(Path(resume), parts) if resume is not None else RunState()
    wall_offset = state.history[-1]["wall_s"] if state.history else 0.0
    log(f"{cfg.model} on {splits.source}: {len(train_data)} train / {len(test_data)} test images, "
        f"{policy.describe()}, {threads} threads, out {out}")
    writer = make_tensorboard(out) if cfg.tensorboard else None
    run_epochs(cfg, spec, policy, parts, state, train_data, test_data, out, t0 - wall_offset, writer, log)
    finish_run(out, cfg, spec, state, policy, test_data)
    return write_metrics(out, cfg, spec, state, policy)


def finish_run(out: Path, cfg: TrainConfig, spec: ModelSpec, state: RunState, policy: ExecPolicy,
               test_data: DeviceData) -> None:
    """Re-score best.pt in fp32 (what `edgecls eval` and FP32 exports will report) and draw the plots."""
    from .checkpoint import load_checkpoint
    from .plots import plot_confusion, plot_curves

    plot_curves(state.history, out / "curves.png")
    best_model, _ = load_checkpoint(out / "best.pt")
    logits = predict_logits(best_model.to(policy.device), test_data, policy, tta=cfg.tta)
    state.best_acc_fp32 = accuracy(logits, test_data.labels)
    plot_confusion(logits.argmax(1).numpy(), test_data.labels.cpu().numpy(), spec.classes, out / "confusion.png")


def run_epochs(cfg, spec, policy, parts, state, train_data, test_data, out, t_start, writer, log) -> None:
    with make_progress() as progress:
        task = progress.add_task("epoch", total=1, info="")
        while state.epoch < cfg.epochs:
            if cfg.patience and state.epochs_since_best() >= cfg.patience:
                log(f"early stop: no improvement for {cfg.patience} epochs")
                break
            epoch = state.epoch + 1
            progress.reset(task, total=len(train_data) // min(cfg.batch_size, len(train_data)),
                           description=f"epoch {epoch}/{cfg.epochs}")
            gen = torch.Generator(device=policy.device).manual_seed(epoch_seed(cfg.seed, epoch))
            torch.manual_seed(epoch_seed(cfg.seed, epoch))
            started = time.perf_counter()

            def on_step(done, total, loss):
                progress.update(task, completed=done, info=f"loss {loss:.3f}")

            loss, img_s = train_one_epoch(parts, train_data, cfg.batch_size, policy, cfg.augment, gen, cfg.seed,
                                          epoch, on_step)
            weights = eval_model(parts)
            acc = accuracy(predict_logits(weights, test_data, policy, tta=cfg.tta, amp=True), test_data.labels)
            now = time.perf_counter()
            state.epoch = epoch
            state.history.append({"epoch": epoch, "train_loss": round(loss, 5), "test_acc": round(acc, 5),
                                  "train_img_per_s": round(img_s, 1), "epoch_s": round(now - started, 2),
                                  "wall_s": round(now - t_start, 2), "lr": parts.scheduler.get_last_lr()[0]})
            improved = acc > state.best_acc
            if improved:
                state.best_acc, state.best_epoch = acc, epoch
                save_checkpoint(out / "best.pt", weights, spec, epoch, best_acc=acc, config=cfg.to_dict())
            save_run_checkpoint(out / "last.pt", parts, spec, cfg, state, weights)
            write_metrics(out, cfg, spec, state, policy)
            if writer is not None:
                for key in ("train_loss", "test_acc", "train_img_per_s"):
                    writer.add_scalar(key, state.history[-1][key], epoch)
            log(f"epoch {epoch:3d}/{cfg.epochs}  loss {loss:.4f}  test {acc:.2%}{' *' if improved else '  '} "
                f"best {state.best_acc:.2%}  {img_s:.0f} img/s  {now - started:.1f}s  wall {now - t_start:.0f}s")


def make_tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise EdgeclsError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(str(out / "tensorboard"))
