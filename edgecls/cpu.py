"""The CPU's instruction sets that decide speed and numerics here (AVX2, AVX-512, VNNI, BF16, AMX).

Read from /proc/cpuinfo; empty where it cannot be read (not Linux), which callers treat as "none".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

# The flags that matter to edgecls, in the order reports list them.
INSTRUCTION_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # int8 dot products in hardware
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # native bf16 arithmetic (otherwise emulated, slower than fp32)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split()[2:])


def instruction_sets(flags: frozenset[str] | None = None) -> list[str]:
    """The INSTRUCTION_SETS this CPU has, in their listed order."""
    flags = cpu_flags() if flags is None else flags
    return [name for name in INSTRUCTION_SETS if name in flags]


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in VNNI_FLAGS)


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_class(flags: frozenset[str] | None = None) -> str:
    """The class timings are quoted per: avx512bf16 (native bf16), avx512, avx2, or other."""
    flags = cpu_flags() if flags is None else flags
    if has_bf16(flags):
        return "avx512bf16"
    return next((name for name in ("avx512f", "avx2") if name in flags), "other").replace("avx512f", "avx512")
