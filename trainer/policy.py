"""Where and how the loop runs: device, autocast dtype, memory format, compile."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

from edgecls.errors import EdgeclsError
from edgecls.host import cpu_flags, has_bf16, is_arm, thread_budget


@dataclass(frozen=True)
class ExecPolicy:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    grad_scaler: bool  # fp16 needs loss scaling; bf16 does not
    compile: bool

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def describe(self) -> str:
        dtype = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "fp32"
        layout = " channels_last" if self.channels_last else ""
        return f"{self.device.type} {dtype}{layout}{' compiled' if self.compile else ''}"


def cpu_supports_bf16(flags: frozenset[str] | None = None, machine: str | None = None) -> bool:
    """Native bf16 on this CPU (else autocast bf16 is emulated and slower than fp32): from the CPU's flags
    where the OS shows them (x86 avx512_bf16 / amx_bf16, ARM bf16). Where it shows none, as on Windows, an
    ARM CPU takes what oneDNN reports; an x86 one gets fp32, as oneDNN's check is true on any AVX-512 CPU,
    bf16 or not (torch 2.14: Skylake to Ice Lake servers)."""
    flags = cpu_flags() if flags is None else flags
    if flags:
        return has_bf16(flags)
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(is_arm(machine) and check is not None and check())


DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(cuda: bool, mps: bool) -> str:
    """``--device auto``: a CUDA GPU, else Apple's GPU, else the CPU."""
    return "cuda" if cuda else "mps" if mps else "cpu"


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise EdgeclsError(f"--device must be {', '.join(DEVICES[:-1])} or {DEVICES[-1]}, got {name!r}")
    if name == "auto":
        name = pick_device(torch.cuda.is_available(), mps_available())
    elif name == "cuda" and not torch.cuda.is_available():
        raise EdgeclsError("--device cuda asked for, but no CUDA GPU is available (use --device cpu or auto)")
    elif name == "mps" and not mps_available():
        raise EdgeclsError("--device mps asked for, but Apple's GPU is not available (use --device cpu or auto)")
    if name == "mps":
        _allow_mps_fallback()
    return torch.device(name)


def _allow_mps_fallback() -> None:
    """Ops MPS lacks run on the CPU instead of raising; said once, in one line."""
    if os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") != "1":
        os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] = "1"
        print("note: on mps, operations Apple's GPU lacks fall back to the CPU (PYTORCH_ENABLE_MPS_FALLBACK=1)",
              file=sys.stderr)


def auto_precision(device_type: str) -> str:
    """bf16 where the hardware has it (CUDA Ampere+, CPUs with native bf16), else fp16 on GPUs, fp32 on CPUs;
    fp32 on MPS, where bf16 needs macOS 14 and fp16 training needs a loss scaler MPS does not document."""
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device_type == "mps":
        return "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def resolve_policy(device: str = "auto", precision: str = "auto", channels_last: bool = True,
                   compile: bool = False) -> ExecPolicy:
    dev = resolve_device(device)
    if precision == "auto":
        precision = auto_precision(dev.type)
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise EdgeclsError(f"--precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and dev.type == "cpu":
        raise EdgeclsError("--precision fp16 is for GPUs; use bf16 or fp32 on the CPU")
    if dev.type == "mps":  # channels_last and torch.compile are not dependable on MPS
        channels_last, compile = False, False
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return ExecPolicy(dev, dtypes[precision], channels_last, precision == "fp16", compile)


def set_cpu_threads(threads: int | None) -> int:
    """The thread budget unless told otherwise; under torchrun, shared out between the processes on this
    machine."""
    n = threads or thread_budget(share=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(n)
    return n
