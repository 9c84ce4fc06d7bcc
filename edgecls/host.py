"""The one place that asks the OS and the CPU what they offer, answered on Linux, macOS and Windows, x86 and ARM.

Cores this process may use (its affinity mask and CPU quota) and the threads each pool takes of them,
instruction sets (x86 ``flags``, ARM ``Features``, macOS ``sysctl hw.optional``), native bf16 and int8 dot
products, the CPU's own feature key, the user's cache folder, the peak-memory counter, and which signals exist.
The rest of the code asks here and never the OS itself (``tests/test_platforms.py`` fails on a Linux-only call
anywhere else). Where the OS does not say, the answer is the conservative one: no instruction sets, fp32, no
reload signal, no CPU quota.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from functools import lru_cache
from pathlib import Path

# The flags that matter to edgecls, in the order reports list them: x86 first, then ARM's names.
INSTRUCTION_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                    "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # x86 int8 dot products (what `auto` measured OpenVINO on)
INT8_DOT_FLAGS = (*VNNI_FLAGS, "asimddp", "i8mm")  # int8 dot products in hardware, x86 or ARM
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # native bf16 arithmetic (otherwise emulated, slower than fp32)
# macOS names its CPU features in `sysctl hw.optional`; these are the ones with a Linux flag name above.
MACOS_FEATURES = {"hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512f",
                  "hw.optional.avx512vnni": "avx512_vnni", "hw.optional.neon": "asimd",
                  "hw.optional.arm.FEAT_DotProd": "asimddp", "hw.optional.arm.FEAT_I8MM": "i8mm",
                  "hw.optional.arm.FEAT_BF16": "bf16"}
CPUINFO = Path("/proc/cpuinfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_SELF = Path("/proc/self")


# --- cores ----------------------------------------------------------------------------------------

def usable_cores() -> int:
    """Cores this process may run on: its affinity mask where the OS has one (Linux: cpusets, taskset), else the
    count Python reports for the process (3.13+) or the machine; capped by a cgroup CPU quota, which no mask
    shows (a container given 2 CPUs of quota on a 64-core host sees 64 cores in its mask)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def thread_budget(reserve: int = 0, share: int = 1) -> int:
    """The threads one pool of this process runs by default, the one rule every engine, stream, server and the
    trainer ask: the usable cores, less ``reserve`` cores left to other work of the process (a server's event
    loop), divided among ``share`` processes on this machine (torchrun's ranks); at least one."""
    return max(1, (usable_cores() - reserve) // max(1, share))


def cpu_quota() -> float | None:
    """The CPUs a cgroup quota grants this process (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``), the tightest along its cgroup's path; None where there is no quota or no cgroup."""
    try:
        membership = (_PROC_SELF / "cgroup").read_text()
    except OSError:  # not Linux, or no /proc
        return None
    quotas = [q for folder in cgroup_cpu_folders(membership, CGROUP_ROOT) if (q := _folder_quota(folder))]
    return min(quotas) if quotas else None


def cgroup_cpu_folders(membership: str, root: Path) -> list[Path]:
    """The folders that may hold this process's CPU quota, from its /proc/self/cgroup text: its cgroup's folder
    and each parent up to the mount, v2's unified tree and v1's cpu controller. A cgroup path that is not under
    the mount (a container without its own cgroup namespace sees the host's path) falls back to the mount."""
    folders = []
    for line in membership.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if not controllers:
            mount = root if (root / "cgroup.controllers").exists() else root / "unified"
        elif "cpu" in controllers.split(","):
            mount = next((root / name for name in (controllers, "cpu,cpuacct", "cpu") if (root / name).is_dir()),
                         root / "cpu")
        else:
            continue
        folder = mount / path.strip().lstrip("/")
        folders += [f for f in (folder, *folder.parents) if f.is_relative_to(mount) and f.is_dir()] or [mount]
    return folders


def _folder_quota(folder: Path) -> float | None:
    """One cgroup folder's CPU quota in CPUs, None when it sets none ("max", -1) or cannot be read."""
    try:
        if (folder / "cpu.max").exists():
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota, period = ((folder / f"cpu.cfs_{k}_us").read_text().strip() for k in ("quota", "period"))
        return int(quota) / int(period) if quota not in ("max", "-1") and int(period) > 0 else None
    except (OSError, ValueError):
        return None


# --- instruction sets -----------------------------------------------------------------------------

def parse_cpuinfo(text: str) -> frozenset[str]:
    """Flags from /proc/cpuinfo text: x86's ``flags`` lines and ARM's ``Features`` lines."""
    return frozenset(word for line in text.splitlines() if line.startswith(("flags", "Features"))
                     for word in line.split(":", 1)[-1].split())


def parse_sysctl(text: str) -> frozenset[str]:
    """Flags from `sysctl hw.optional` output (macOS): ``name: 1`` lines named in MACOS_FEATURES."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return frozenset(MACOS_FEATURES[k.strip()] for k, v in pairs if k.strip() in MACOS_FEATURES and v.strip() == "1")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    if sys.platform == "darwin":
        return parse_sysctl(_sysctl("hw.optional"))
    try:
        return parse_cpuinfo(CPUINFO.read_text())
    except OSError:  # Windows, or a container without /proc
        return frozenset()


def _sysctl(name: str) -> str:
    import subprocess

    try:
        return subprocess.run(["sysctl", name], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def instruction_sets(flags: frozenset[str] | None = None) -> list[str]:
    """The INSTRUCTION_SETS this CPU has, in their listed order."""
    flags = cpu_flags() if flags is None else flags
    return [name for name in INSTRUCTION_SETS if name in flags]


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in VNNI_FLAGS)


def has_int8_dot(flags: frozenset[str] | None = None) -> bool:
    """Hardware int8 dot products: VNNI or AMX on x86, the dot-product or i8mm extensions on ARM."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in INT8_DOT_FLAGS)


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def is_arm(machine: str | None = None) -> bool:
    return (machine or cpu_architecture()).lower() in ("arm64", "aarch64", "armv8l", "armv7l")


# Arm Ltd (implementer 0x41) core designs by /proc/cpuinfo "CPU part": ARM boards print no model name.
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76",
             "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78", "0xd49": "Neoverse-N2",
             "0xd4f": "Neoverse-V2"}


def cpu_name() -> str:
    try:
        name = name_from_cpuinfo(CPUINFO.read_text())
    except OSError:
        name = ""
    if name:
        return name
    import platform

    return platform.processor() or platform.machine()


def name_from_cpuinfo(text: str) -> str:
    """x86: the model name. ARM: the board (``Model``) and the core design, e.g. "Raspberry Pi 5 Model B
    Rev 1.0 (Cortex-A76)"; "" when the text names neither."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    if fields.get("model name"):
        return fields["model name"]
    core = ARM_PARTS.get(fields.get("CPU part", "").lower()) if fields.get("CPU implementer") == "0x41" else None
    board = fields.get("Model", "")
    if board and core:
        return f"{board} ({core})"
    return board or core or ""


def cpu_features_key() -> str:
    """The CPU as its own CPUID answers (on ARM: the kernel's HWCAP for this process): the machine and the
    features numpy's runtime dispatch found, sorted, e.g. ``x86_64:AVX,AVX2,…``. A proof's verdict is keyed by
    it rather than by `cpu_flags`: /proc/cpuinfo describes the host, so under `qemu-x86_64 -cpu Haswell` it
    still lists avx512_vnni while the CPU the engine's kernels dispatch on has none. numpy has no name for
    AVX-VNNI (the VEX form) or ARM's i8mm, so two CPUs that differ only there share a key."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return f"{cpu_architecture().lower()}:{','.join(sorted(name for name, on in features.items() if on))}"


def cpu_architecture() -> str:
    """x86_64, aarch64, AMD64, arm64 …: the OS's name for the CPU architecture (uname's where there is one: the
    platform module costs a cold start 1.3 ms to import)."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform

    return platform.machine()


def cpu_class(flags: frozenset[str] | None = None) -> str:
    """The class timings are quoted per: avx512bf16 (native bf16), avx512, avx2, arm64, or other."""
    flags = cpu_flags() if flags is None else flags
    if "asimd" in flags:
        return "arm64"
    if has_bf16(flags):
        return "avx512bf16"
    return next((name for name in ("avx512f", "avx2") if name in flags), "other").replace("avx512f", "avx512")


# --- where caches go -------------------------------------------------------------------------------

def user_cache_dir() -> Path:
    """edgecls's folder in this user's cache, where each OS keeps caches: Windows' %LOCALAPPDATA%, macOS's
    ~/Library/Caches, elsewhere $XDG_CACHE_HOME or ~/.cache."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "edgecls"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "edgecls"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecls"


# --- memory ---------------------------------------------------------------------------------------

def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: "5" to clear_refs resets VmHWM); False where that is impossible."""
    try:
        (_PROC_SELF / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """The process's resident-set high-water mark since the last reset (else since it started); 0 where the OS
    keeps none we can read (Windows)."""
    try:
        for line in (_PROC_SELF / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def available_memory_bytes() -> int | None:
    """Memory the OS could give this process now without swapping (Linux: MemAvailable, within a cgroup's
    limit; elsewhere the free physical pages); None where the OS does not say."""
    try:
        text = Path("/proc/meminfo").read_text()
        available = next(int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        available = None
    if available is None and hasattr(os, "sysconf"):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            available = None
    return min(x for x in (available, _cgroup_memory_room()) if x is not None) if available else None


def _cgroup_memory_room() -> int | None:
    """What a cgroup v2 memory limit leaves this container (limit − current), None without one."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        return None


# --- signals --------------------------------------------------------------------------------------

def reload_signal() -> signal.Signals | None:
    """The signal `serve` reloads its model on: SIGHUP where the OS has it (not Windows)."""
    return getattr(signal, "SIGHUP", None)


def os_features() -> dict[str, bool]:
    """What this OS lets edgecls do, for `doctor`: each False names a feature that is off here, not broken."""
    return {"sighup_reload": reload_signal() is not None, "cpu_affinity": hasattr(os, "sched_getaffinity"),
            "peak_rss_window": _PROC_SELF.joinpath("clear_refs").exists()}
