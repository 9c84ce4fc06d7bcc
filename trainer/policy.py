"""Where and how the loop runs: device, autocast dtype, memory format, compile."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from edgecls.errors import EdgeclsError


@dataclass(frozen=True)
class ExecPolicy:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    grad_scaler: bool  # fp16 needs loss scaling; bf16 does not
    compile: bool

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    def describe(self) -> str:
        dtype = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "fp32"
        return f"{self.device.type} {dtype}{' channels_last' if self.channels_last else ''}{' compiled' if self.compile else ''}"


def cpu_supports_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX512-BF16 / AMX); elsewhere bf16 is emulated and slower."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is not None:
        return bool(check())
    return False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgeclsError("--device cuda asked for, but no CUDA GPU is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise EdgeclsError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def resolve_policy(device: str = "auto", precision: str = "auto", channels_last: bool = True,
                   compile: bool = False) -> ExecPolicy:
    dev = resolve_device(device)
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_supports_bf16() else "fp32"
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise EdgeclsError(f"--precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and dev.type == "cpu":
        raise EdgeclsError("--precision fp16 is for GPUs; use bf16 or fp32 on the CPU")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return ExecPolicy(dev, dtypes[precision], channels_last, precision == "fp16", compile)


def set_cpu_threads(threads: int | None) -> int:
    """Use every core we are allowed on (cgroup/affinity aware) unless told otherwise; under
    torchrun, the cores are shared out between the processes on this machine."""
    n = threads or max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(n)
    return n
