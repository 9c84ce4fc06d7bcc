#!/usr/bin/env bash
# Prove the edgecls wheel on ARM64 Linux without an ARM CPU: a Debian bookworm arm64 root run under
# qemu-user (issue 26). The wheel built from a git revision is installed there (base install plus every
# runtime extra with an aarch64 wheel); then, per emulated CPU, `edgecls doctor`, `edgecls verify` on both
# shipped bundles and `edgecls infer` over a fixed 200-image selection, whose labels are compared with the
# same command on this x86 host. Everything lands in benchmarks/results/arm64-verify-<date>.txt.
#
# Why two CPUs: cortex-a72 (Raspberry Pi 4) has no int8 dot product, cortex-a76 (Pi 5) has `asimddp`, so
# onnxruntime's and OpenVINO's two ARM INT8 code paths both run. Both are ~4x faster to emulate than
# qemu's default `max`. Wall times here are qemu-user's, not ARM speed.
#
# Needs root on a Debian/Ubuntu host (apt, debootstrap, mount, chroot) and network access to the Debian
# mirror and PyPI. Not part of pytest: it takes minutes and needs root.
#
# Usage: sudo benchmarks/arm64_verify.sh
# Environment (all optional):
#   EDGECLS_ARM64_ROOT     the arm64 root, built once and reused     [/var/tmp/edgecls-arm64]
#   EDGECLS_ARM64_REV      git revision the wheel is built from      [HEAD]
#   EDGECLS_ARM64_CPUS     QEMU_CPU models to run                    ["cortex-a72 cortex-a76"]
#   EDGECLS_ARM64_MODELS   shipped bundles to verify and infer with  ["resnet20 airbench"]
#   EDGECLS_ARM64_EXTRAS   runtime extras to install in the root     ["openvino litert ncnn"]
#   EDGECLS_ARM64_DATA     CIFAR-10 JPEG folder ({test}/<class>/*)   [../shared/datasets/cifar10]
#   EDGECLS_ARM64_PER_CLASS  first N test files (sorted) per class   [20 → 200 images]
#   EDGECLS_ARM64_OUT      results file                              [benchmarks/results/arm64-verify-<UTC date>.txt]
#   EDGECLS_HOST_VENV      x86 venv that builds the wheel and whose engine versions are pinned  [.venv]
#   EDGECLS_ARM64_MIRROR   Debian mirror                              [http://deb.debian.org/debian]
#   EDGECLS_ARM64_PIN      1: pin the engines (onnxruntime, openvino, …) to the host venv's versions  [1]
#
# Pitfalls handled (found by hand first, see issue 26): binfmt_misc must be mounted and qemu-aarch64
# enabled; pip in the root needs the host's resolv.conf and CA certificates; onnxruntime's aarch64 wheel
# segfaults on import when qemu-user shows it the host's x86 /proc/cpuinfo, so an ARM cpuinfo (fixtures
# below, one per QEMU_CPU) is bind-mounted over the root's.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${EDGECLS_ARM64_ROOT:-/var/tmp/edgecls-arm64}
REV=${EDGECLS_ARM64_REV:-HEAD}
read -r -a CPUS <<<"${EDGECLS_ARM64_CPUS:-cortex-a72 cortex-a76}"
DATA=${EDGECLS_ARM64_DATA:-$REPO/../shared/datasets/cifar10}
PER_CLASS=${EDGECLS_ARM64_PER_CLASS:-20}
DATE=$(date -u +%F)
OUT=${EDGECLS_ARM64_OUT:-$REPO/benchmarks/results/arm64-verify-$DATE.txt}
HOST_VENV=${EDGECLS_HOST_VENV:-$REPO/.venv}
MIRROR=${EDGECLS_ARM64_MIRROR:-http://deb.debian.org/debian}
PIN=${EDGECLS_ARM64_PIN:-1}
SUITE=bookworm
read -r -a MODELS <<<"${EDGECLS_ARM64_MODELS:-resnet20 airbench}"
RUNTIME_EXTRAS=(openvino litert ncnn executorch)  # every runtime extra pyproject.toml may declare
# Tried in the root by default: all but executorch, whose Python runtime links libtorch (a 6.4 GB install on
# x86; on aarch64 PyPI's torch pulls its CUDA libraries too), far too slow to unpack under qemu-user.
read -r -a EXTRAS <<<"${EDGECLS_ARM64_EXTRAS:-openvino litert ncnn}"
ENGINE_PACKAGES=(onnxruntime openvino ai-edge-litert ncnn executorch torch)  # pinned to the host's versions with PIN=1
VENV=/opt/edgecls  # inside the root
SEL=/data/cifar10-selection  # inside the root: the 200 test JPEGs
READY=.edgecls-root-ready  # marker: debootstrap finished

die() { echo "arm64_verify: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, mount, chroot); run with sudo"
[[ -n $ROOT && $ROOT == /* && $ROOT != / ]] || die "EDGECLS_ARM64_ROOT must be an absolute path other than /"
[[ -d $DATA/test ]] || die "no CIFAR-10 test folder at $DATA/test (set EDGECLS_ARM64_DATA)"
[[ -x $HOST_VENV/bin/python ]] || die "no venv at $HOST_VENV (set EDGECLS_HOST_VENV; pip install -e '.[dev]')"
git -C "$REPO" rev-parse --verify -q "$REV^{commit}" >/dev/null || die "not a git revision: $REV"
[[ $PER_CLASS =~ ^[1-9][0-9]*$ ]] || die "EDGECLS_ARM64_PER_CLASS must be a positive integer"
COMMIT=$(git -C "$REPO" rev-parse --short=12 "$REV^{commit}")  # fixed now: commits may land while debootstrap runs

WORK=$(mktemp -d /tmp/edgecls-arm64.XXXXXX)
T0=$(date +%s.%N)
MOUNTS=()  # mounted by this run, unmounted in reverse order on exit

cleanup() {
  local rc=$? i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || echo "arm64_verify: could not unmount ${MOUNTS[i]}" >&2
  done
  if ((rc == 0)); then rm -rf "$WORK"; else echo "arm64_verify: failed (exit $rc); logs kept in $WORK" >&2; fi
}
trap cleanup EXIT

mnt() {  # mnt TARGET mount-args…: mount, remember it, keep it out of the host's propagation
  local target=$1; shift
  mount "$@" "$target"
  MOUNTS+=("$target")
  mount --make-private "$target"
}
umnt() {  # unmount the most recent mount (the cpuinfo bind between CPUs)
  local last=$((${#MOUNTS[@]} - 1))
  umount "${MOUNTS[last]}"
  unset "MOUNTS[last]"
}
unmount_stale() {  # mounts left under the root by a run that was killed
  findmnt -rn -o TARGET | awk -v r="$ROOT/" 'index($0, r) == 1' | sort -r | while read -r m; do
    log "unmounting stale $m"; umount -l "$m"
  done
}

TIMES=$WORK/times.tsv
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
timed() {  # timed LABEL cmd…: run, append "label<TAB>seconds<TAB>rc" to TIMES, return the command's rc
  local label=$1 t rc=0; shift
  t=$(date +%s.%N)
  "$@" || rc=$?
  printf '%s\t%s\t%s\n' "$label" "$(elapsed "$t")" "$rc" >>"$TIMES"
  return "$rc"
}

in_root() {  # run in the root with a clean environment (the host's PIP_* and proxies do not apply there);
  # PIP_CERT: pip in a venv trusts its own certifi bundle, not the system's that holds the host's CAs
  chroot "$ROOT" /usr/bin/env -i PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_CERT=/etc/ssl/certs/ca-certificates.crt QEMU_CPU="${QEMU_CPU:-cortex-a72}" "$@"
}

# /proc/cpuinfo as an arm64 Linux kernel writes it for the CPU qemu emulates, one block per host core.
# Features lists the hwcaps qemu 7.2 gives the model (checked against getauxval in the results file; a
# real kernel adds evtstrm, and the Pi 4's BCM2711 lacks the crypto extensions aes/pmull/sha1/sha2).
cpuinfo_fixture() {
  local cpu=$1 n i part variant revision features
  case $cpu in
    cortex-a72) part=0xd08 variant=0x0 revision=3  # Raspberry Pi 4 (BCM2711): no asimddp
      features="fp asimd aes pmull sha1 sha2 crc32 cpuid" ;;
    cortex-a76) part=0xd0b variant=0x4 revision=1  # Raspberry Pi 5 (BCM2712): asimddp (int8 dot product)
      features="fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
    *) die "no cpuinfo fixture for QEMU_CPU=$cpu (have: cortex-a72 cortex-a76)" ;;
  esac
  n=$(nproc)
  for ((i = 0; i < n; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$i" "$features"
    printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %d\n\n' "$variant" "$part" "$revision"
  done
}

# ---- 1. host tools and binfmt ------------------------------------------------------------------------
host_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P || -e /usr/bin/qemu-aarch64-static ]] || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null || missing+=(binfmt-support)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  [[ -e /proc/sys/fs/binfmt_misc/status ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 2>/dev/null || true  # "already enabled" is not an error
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 binfmt handler is not enabled"
}
timed "host tools + binfmt" host_tools

# ---- 2. the arm64 root (built once) ------------------------------------------------------------------
unmount_stale
COLD=no
build_root() {
  log "debootstrap $SUITE arm64 into $ROOT (about 5 minutes)"
  rm -rf --one-file-system "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; return 1; }
  touch "$ROOT/$READY"
}
if [[ ! -f $ROOT/$READY ]]; then COLD=yes; timed "debootstrap (arm64 root, emulated)" build_root; fi

network_in_root() {  # resolv.conf and CA certificates for pip
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  local changed=no f
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  for f in /usr/local/share/ca-certificates/*.crt; do
    [[ -e $f ]] || continue
    cmp -s "$f" "$ROOT/usr/local/share/ca-certificates/${f##*/}" || { cp "$f" "$ROOT/usr/local/share/ca-certificates/"; changed=yes; }
    f=${f##*/}; [[ -e $ROOT/etc/ssl/certs/${f%.crt}.pem ]] || changed=yes  # copied by a run that stopped before the update
  done
  [[ $changed == no ]] || in_root update-ca-certificates >/dev/null
}
mnt "$ROOT/proc" -t proc proc
mnt "$ROOT/dev" --bind /dev
# sysfs: OpenVINO's CPU plugin (hwloc, TBB) segfaults without /sys/devices/system/cpu, and onnxruntime's
# cpuinfo cannot initialise (so it would not see asimddp) without cpu/possible and cpu/present.
mnt "$ROOT/sys" -t sysfs -o ro sysfs
timed "resolv.conf + CA certificates" network_in_root

# ---- 3. the wheel, built on the host from $REV -------------------------------------------------------
build_wheel() {
  mkdir -p "$WORK/src" "$WORK/dist"
  git -C "$REPO" archive --format=tar "$COMMIT" | tar -x -C "$WORK/src"
  "$HOST_VENV/bin/python" -m build --wheel --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
    || { tail -20 "$WORK/build.log" >&2; return 1; }
}
timed "build wheel (host)" build_wheel
WHEEL=$(ls "$WORK"/dist/edgecls-*.whl)
WHEEL_NAME=${WHEEL##*/}

# ---- 4. install into the root ------------------------------------------------------------------------
install_in_root() {
  rm -rf "$ROOT/tmp/edgecls-wheel" && mkdir -p "$ROOT/tmp/edgecls-wheel"
  cp "$WHEEL" "$ROOT/tmp/edgecls-wheel/"
  local w=/tmp/edgecls-wheel/$WHEEL_NAME pins=/tmp/edgecls-wheel/pins.txt declared extra
  : >"$ROOT$pins"
  if [[ $PIN == 1 ]]; then  # the same engine versions as the x86 run, so differences are the CPU's
    "$HOST_VENV/bin/python" -m pip list --format=freeze 2>/dev/null \
      | grep -iE "^($(IFS='|'; echo "${ENGINE_PACKAGES[*]}"))==" >"$ROOT$pins" || true
  fi
  [[ -x $ROOT$VENV/bin/python ]] || in_root python3 -m venv "$VENV"
  in_root pip install -q --prefer-binary -c "$pins" "$w" >"$WORK/pip-base.log" 2>&1 \
    || { tail -20 "$WORK/pip-base.log" >&2; return 1; }
  in_root pip install -q --no-deps --force-reinstall "$w" >>"$WORK/pip-base.log" 2>&1
  declared=$("$HOST_VENV/bin/python" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(next(
    z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA")))' "$WHEEL" | sed -n 's/^Provides-Extra: //p')
  : >"$WORK/extras.tsv"
  for extra in "${RUNTIME_EXTRAS[@]}"; do
    if ! grep -qx "$extra" <<<"$declared"; then
      printf '%s\tnot declared in pyproject.toml at %s\n' "$extra" "$COMMIT" >>"$WORK/extras.tsv"
    elif [[ " ${EXTRAS[*]} " != *" $extra "* ]]; then
      printf '%s\tnot tried (not in EDGECLS_ARM64_EXTRAS)\n' "$extra" >>"$WORK/extras.tsv"
    elif in_root pip install -q --prefer-binary --only-binary=:all: -c "$pins" "$w[$extra]" >"$WORK/pip-$extra.log" 2>&1; then
      printf '%s\tinstalled\n' "$extra" >>"$WORK/extras.tsv"
    else
      printf '%s\tnot installable on aarch64: %s\n' "$extra" "$(grep -m1 -iE 'error' "$WORK/pip-$extra.log" || tail -1 "$WORK/pip-$extra.log")" >>"$WORK/extras.tsv"
    fi
  done
  in_root pip list --format=freeze >"$WORK/root-packages.txt" 2>/dev/null
  cp "$ROOT$pins" "$WORK/pins.txt"
}
timed "pip install wheel + extras (emulated)" install_in_root

# ---- 5. the 200 test images: the first $PER_CLASS files of each class, in byte order -------------------
select_images() {
  rm -rf "$ROOT$SEL" && mkdir -p "$ROOT$SEL"
  local cls f
  for cls in $(cd "$DATA/test" && LC_ALL=C ls -d -- */ | tr -d /); do
    mkdir -p "$ROOT$SEL/$cls"
    for f in $(cd "$DATA/test/$cls" && LC_ALL=C ls | head -n "$PER_CLASS"); do cp "$DATA/test/$cls/$f" "$ROOT$SEL/$cls/"; done
  done
  find "$ROOT$SEL" -type f | LC_ALL=C sort | sed "s|^$ROOT$SEL/||" >"$WORK/selection.txt"
}
select_images

# ---- 6. runs: x86 host, then each emulated ARM CPU -----------------------------------------------------
run_suite() {  # run_suite DIR PREFIX…: doctor, verify both bundles, infer the selection; PREFIX runs edgecls
  local dir=$1 m rc; shift
  mkdir -p "$dir"
  rc=0; timed "$(basename "$dir"): doctor" "$@" edgecls doctor --json >"$dir/doctor.json" 2>"$dir/doctor.err" || rc=$?
  echo "$rc" >"$dir/doctor.rc"
  for m in "${MODELS[@]}"; do
    rc=0; timed "$(basename "$dir"): verify $m" "$@" edgecls verify "$m" --json >"$dir/verify-$m.json" 2>"$dir/verify-$m.err" || rc=$?
    echo "$rc" >"$dir/verify-$m.rc"
    rc=0; timed "$(basename "$dir"): infer $m (200 images)" "$@" edgecls infer "$SELDIR" --model "$m" --top-k 2 --json \
      >"$dir/infer-$m.jsonl" 2>"$dir/infer-$m.err" || rc=$?
    echo "$rc" >"$dir/infer-$m.rc"
  done
}
# The x86 side runs the same wheel with the same pins in a fresh venv, not the editable checkout: the
# comparison is then between CPUs, not between a commit and whatever the working tree holds.
x86_venv() {
  local extras
  extras=$(awk -F'\t' '$2 == "installed" { print $1 }' "$WORK/extras.tsv" | paste -sd,)
  "$HOST_VENV/bin/python" -m venv "$WORK/x86-venv"
  "$WORK/x86-venv/bin/pip" install -q -c "$WORK/pins.txt" "$WHEEL${extras:+[$extras]}" >"$WORK/pip-x86.log" 2>&1 \
    || { tail -20 "$WORK/pip-x86.log" >&2; return 1; }
}
timed "x86 venv: same wheel, extras and pins (native)" x86_venv
host_edgecls() { local cmd=$1; shift; "$WORK/x86-venv/bin/$cmd" "$@"; }
in_root_edgecls() { local cmd=$1; shift; in_root "$VENV/bin/$cmd" "$@"; }
SELDIR=$ROOT$SEL run_suite "$WORK/x86-host" host_edgecls

for cpu in "${CPUS[@]}"; do
  log "QEMU_CPU=$cpu"
  cpuinfo_fixture "$cpu" >"$WORK/cpuinfo-$cpu"
  mnt "$ROOT/proc/cpuinfo" --bind "$WORK/cpuinfo-$cpu"
  export QEMU_CPU=$cpu
  mkdir -p "$WORK/arm64-$cpu"
  in_root python3 -c 'import ctypes; g = ctypes.CDLL(None).getauxval; g.restype = ctypes.c_ulong; print(g(16), g(26))' \
    >"$WORK/arm64-$cpu/hwcap.txt"
  SELDIR=$SEL run_suite "$WORK/arm64-$cpu" in_root_edgecls
  umnt
done
unset QEMU_CPU

# ---- 7. the results file -------------------------------------------------------------------------------
TOTAL=$(elapsed "$T0")
HOST_CPU=$(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)
HOST_FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_bf16|amx_int8' | paste -sd' ')
export WORK OUT DATE COMMIT WHEEL_NAME COLD TOTAL HOST_CPU HOST_FLAGS SUITE ROOT PER_CLASS
# Not QEMU_*: qemu-user reads QEMU_<option> variables (QEMU_VERSION prints its version instead of running).
export EMULATOR="$(qemu-aarch64-static --version 2>/dev/null | head -1 || echo '?')"
export ROOT_PYTHON="$(QEMU_CPU=cortex-a72 in_root python3 -c 'import platform; print("Python", platform.python_version())')"
export CPU_LIST="${CPUS[*]}" MODEL_LIST="${MODELS[*]}"
mkdir -p "$(dirname "$OUT")"
"$HOST_VENV/bin/python" - <<'PY'
"""Write the results file from the run's JSON outputs (to a temp file, then renamed)."""
import json, os
from pathlib import Path

W = Path(os.environ["WORK"])
cpus, models = os.environ["CPU_LIST"].split(), os.environ["MODEL_LIST"].split()
HWCAP = {"fp": 0, "asimd": 1, "evtstrm": 2, "aes": 3, "pmull": 4, "sha1": 5, "sha2": 6, "crc32": 7, "atomics": 8,
         "fphp": 9, "asimdhp": 10, "cpuid": 11, "asimdrdm": 12, "lrcpc": 15, "dcpop": 16, "asimddp": 20, "sve": 22}
HWCAP2 = {"i8mm": 13, "bf16": 14, "sve2": 1}
EMU = "emulated (qemu-user), not ARM speed"
out = []
p = out.append


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def rc(path):
    return Path(path).read_text().strip() if Path(path).exists() else "?"


def infer_rows(path):
    rows = {}
    for line in Path(path).read_text().splitlines() if Path(path).exists() else []:
        r = json.loads(line)
        key = r["path"].split("cifar10-selection/", 1)[-1]
        rows[key] = r
    return rows


def gap(r):
    tk = r.get("top_k") or []
    return tk[0][1] - tk[1][1] if len(tk) > 1 else float("nan")


def pct(v):
    return "-" if v is None else f"{v:.2%}"


def sci(v):
    return "-" if v is None else f"{v:.1e}"


times = {}
for line in (W / "times.tsv").read_text().splitlines():
    label, sec, code = line.split("\t")
    times[label] = (float(sec), code)

sel = (W / "selection.txt").read_text().split()
p(f"# edgecls on ARM64 Linux, emulated (qemu-user), {os.environ['DATE']}")
p("")
p("Written by benchmarks/arm64_verify.sh. Every number below comes from that run.")
p(f"wheel: {os.environ['WHEEL_NAME']} built from commit {os.environ['COMMIT']}")
p(f"host: {os.environ['HOST_CPU']} ({os.cpu_count()} cores; flags: {os.environ['HOST_FLAGS']}), "
  f"{os.environ['EMULATOR']}")
p(f"arm64 root: Debian {os.environ['SUITE']} (debootstrap --variant=minbase) at {os.environ['ROOT']}, "
  f"{os.environ['ROOT_PYTHON']}")
p(f"root built in this run (cold start): {os.environ['COLD']}; whole script: {float(os.environ['TOTAL']):.0f} s "
  f"wall on the x86 host ({EMU})")
pins = (W / "pins.txt").read_text().split()
p(f"engine versions pinned to the x86 venv's: {', '.join(pins) or 'no'}")
p("runtime extras in the root: " + "; ".join(l.replace("\t", ": ") for l in (W / "extras.tsv").read_text().splitlines()))
wanted = ("edgecls", "numpy", "pillow", "onnxruntime", "openvino", "ai-edge-litert", "ncnn", "typer")
pk = [l for l in (W / "root-packages.txt").read_text().splitlines() if l.split("==")[0].lower() in wanted]
p(f"packages in the root: {', '.join(pk)}")
p(f"images: {len(sel)} CIFAR-10 test JPEGs, the first {os.environ['PER_CLASS']} files of each class "
  f"(file names in byte order): {sel[0]} … {sel[-1]}")
p("")
p(f"## Step wall times ({EMU}; the x86 rows are native)")
for label, (sec, code) in times.items():
    p(f"  {label:<48} {sec:8.1f} s" + (f"  (exit {code})" if code != "0" else ""))

runs = ["x86-host"] + [f"arm64-{c}" for c in cpus]
verdicts = {}
for run in runs:
    d = W / run
    p("")
    p(f"## {run}" + ("" if run == "x86-host" else f" (QEMU_CPU={run[6:]})"))
    if (d / "hwcap.txt").exists():
        h1, h2 = (int(x) for x in (d / "hwcap.txt").read_text().split())
        caps = [n for n, b in HWCAP.items() if h1 >> b & 1] + [n for n, b in HWCAP2.items() if h2 >> b & 1]
        fixture = next(l for l in (W / f"cpuinfo-{run[6:]}").read_text().splitlines() if l.startswith("Features"))
        p(f"qemu's AT_HWCAP/AT_HWCAP2: {' '.join(caps)}")
        p(f"bind-mounted /proc/cpuinfo {fixture.split(':', 1)[1].strip()!r}")
    doc = load(d / "doctor.json")
    if doc:
        cpu = doc.get("cpu", {})
        eng = {k: v.get("version") for k, v in (doc.get("engines") or {}).items() if isinstance(v, dict)}
        p(f"doctor (exit {rc(d / 'doctor.rc')}): platform {doc.get('platform')}; cpu {json.dumps(cpu)}; "
          f"engines {json.dumps(eng)}; healthy {doc.get('healthy')}")
    else:
        p(f"doctor failed (exit {rc(d / 'doctor.rc')}): {(d / 'doctor.err').read_text().strip()[-400:]}")
    for m in models:
        rep = load(d / f"verify-{m}.json")
        t = times.get(f"{run}: verify {m}", (float('nan'), '?'))[0]
        if not rep:
            p(f"verify {m}: no report (exit {rc(d / f'verify-{m}.rc')}): "
              f"{(d / f'verify-{m}.err').read_text().strip()[-400:]}")
            verdicts[(run, m)] = False
            continue
        verdicts[(run, m)] = rep["passed"]
        p(f"verify {m} (exit {rc(d / f'verify-{m}.rc')}, {rep['images']} golden images, {t:.1f} s"
          + ("" if run == "x86-host" else f" {EMU}") + f"): {'PASS' if rep['passed'] else 'FAIL'}")
        p(f"  {'format':<18}{'engine':<24}{'precision':<16}{'agree':>8}{'rel|Δ|':>9}{'agree(build)':>14}{'rel|Δ|(build)':>15}  result")
        for r in rep["rows"]:
            res = "skip" if r["passed"] is None else "pass" if r["passed"] else "FAIL"
            prec = f"{r['precision']} ({r['float_math']})" if r.get("float_math") else r["precision"]
            p(f"  {r['format']:<18}{(r['engine'] + ' ' + r['version']).strip():<24}{prec:<16}{pct(r['agreement']):>8}"
              f"{sci(r['max_rel_dlogit']):>9}{pct(r['agreement_build']):>14}{sci(r['max_rel_dlogit_build']):>15}  {res}"
              + (f"  {r['note']}" if r.get("note") else ""))

    notes = sorted({l.strip() for f in d.glob("*.err") for l in f.read_text().splitlines()
                    if l.strip() and " classified, " not in l})
    for n in notes:
        p(f"stderr: {n[:300]}")

p("")
p("## infer over the selection: labels against the x86 host (same command, --top-k 2 --json)")
p("top-2 gap = probability of the first label minus the second's")
low_agreement = []
for m in models:
    host = infer_rows(W / "x86-host" / f"infer-{m}.jsonl")
    engine = (W / "x86-host" / f"infer-{m}.err").read_text().strip().splitlines()[-1:] or ["?"]
    acc = sum(r.get("label") == k.split("/")[0] for k, r in host.items())
    t = times.get(f"x86-host: infer {m} (200 images)", (float('nan'), '?'))[0]
    p(f"{m}: x86 host {len(host)} classified, {acc} match the folder's class, {t:.1f} s native; {engine[0]}")
    for c in cpus:
        arm = infer_rows(W / f"arm64-{c}" / f"infer-{m}.jsonl")
        t = times.get(f"arm64-{c}: infer {m} (200 images)", (float('nan'), '?'))[0]
        common = [k for k in sel if k in host and k in arm and "label" in host[k] and "label" in arm[k]]
        diff = [k for k in common if host[k]["label"] != arm[k]["label"]]
        same = len(common) - len(diff)
        acc = sum(arm[k]["label"] == k.split("/")[0] for k in common)
        chosen = (W / f"arm64-{c}" / f"infer-{m}.err").read_text().strip().splitlines()[-1:] or ["?"]
        p(f"  {c}: {chosen[0]}")
        p(f"  {c}: {len(arm)} classified (exit {rc(W / f'arm64-{c}' / f'infer-{m}.rc')}), same label as x86 on "
          f"{same}/{len(sel)} ({same / len(sel):.1%}), {acc} match the folder's class, {t:.1f} s {EMU}")
        if same < 0.99 * len(sel):
            low_agreement.append(f"{c} infer {m}: same label on {same}/{len(sel)}")
        maxdp = max((abs(host[k]["prob"] - arm[k]["prob"]) for k in common), default=float("nan"))
        p(f"    max |Δ top-1 probability| over images with the same label: {maxdp:.4f}")
        for k in diff:
            p(f"    differs: {k}: x86 {host[k]['top_k']} (gap {gap(host[k]):.4f}); arm64 {arm[k]['top_k']} "
              f"(gap {gap(arm[k]):.4f})")
p("")
failed = [f"{run} verify {m}" for (run, m), ok in verdicts.items() if not ok] + low_agreement
p("verdict: " + ("every verify passed; infer labels match x86 on >= 99% of the images" if not failed
                 else "FAILED: " + ", ".join(failed)))
tmp = Path(os.environ["OUT"] + ".tmp")
tmp.write_text("\n".join(out) + "\n")
tmp.replace(os.environ["OUT"])
print("\n".join(out))
raise SystemExit(1 if failed else 0)
PY
log "results: $OUT (total $(printf '%.0f' "$TOTAL") s, cold start: $COLD)"
