"""Beyond x86-64 Linux: the one place that asks the OS (edgecls.host), real /proc/cpuinfo texts of other CPUs,
and `train`, `infer`, `verify` and `serve` run with the Linux-only APIs removed, as on macOS and Windows.

What runs here is simulated: the same Linux Python with ``os.sched_getaffinity``, ``signal.SIGHUP`` (and, for
Windows, the ``resource`` module) deleted and ``sys.platform`` set, after the third-party packages were
imported on the real platform as a real Mac or PC imports its own builds.
"""

from __future__ import annotations

import ast
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from edgecls.host import (cpu_class, has_bf16, has_int8_dot, has_vnni, instruction_sets, name_from_cpuinfo,
                          parse_cpuinfo, parse_sysctl)
from edgecls.shipped import reference_bundle
from edgecls.trainer.policy import cpu_supports_bf16, pick_device

from .conftest import REPO, wait_until_ready

FIXTURES = Path(__file__).parent / "fixtures" / "cpuinfo"
SOURCES = ("edgecls", "trainer", "export", "runtime")
PORTABLE_HELPER = REPO / "edgecls" / "host.py"
# Names that exist only on Linux (or only on POSIX): they belong in PORTABLE_HELPER alone.
LINUX_ONLY_ATTRIBUTES = {("os", "sched_getaffinity"), ("os", "fork"), ("os", "getuid"), ("os", "geteuid"),
                         ("os", "uname"), ("os", "setsid"), ("os", "killpg"), ("signal", "SIGHUP"),
                         ("signal", "SIGUSR1"), ("signal", "SIGUSR2"), ("signal", "SIGKILL")}
LINUX_ONLY_MODULES = {"resource", "fcntl", "termios", "pwd", "grp"}


def linux_only_calls(source: str) -> list[str]:
    """Linux-only attributes, imports and /proc paths in ``source``'s code (docstrings and comments aside)."""
    docstrings = {id(node.value) for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                (node.value.id, node.attr) in LINUX_ONLY_ATTRIBUTES:
            found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import {n}" for n in names if n.split(".")[0] in LINUX_ONLY_MODULES]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("/proc") \
                and id(node) not in docstrings:
            found.append(node.value)
    return found


# --- one helper -----------------------------------------------------------------------------------

def test_no_linux_only_call_outside_the_portable_helper():
    found = {str(path.relative_to(REPO)): calls for folder in SOURCES for path in sorted((REPO / folder).rglob("*.py"))
             if path != PORTABLE_HELPER and (calls := linux_only_calls(path.read_text()))}
    assert not found, found
    assert linux_only_calls(PORTABLE_HELPER.read_text())  # the scan sees them where they are allowed


def test_the_scan_catches_each_kind_of_linux_only_call():
    for line, call in (("n = len(os.sched_getaffinity(0))", "os.sched_getaffinity"),
                       ("loop.add_signal_handler(signal.SIGHUP, f)", "signal.SIGHUP"),
                       ('Path("/proc/self/status").read_text()', "/proc/self/status"),
                       ("import resource", "import resource"), ("pid = os.fork()", "os.fork")):
        assert linux_only_calls(line) == [call], line
    assert linux_only_calls('"""SIGHUP, /proc/self"""\nusable_cores()\nreload_signal()\nos.cpu_count()') == []


# --- CPUs seen in the field: /proc/cpuinfo and sysctl texts, with known answers --------------------

CPUS = {
    # fixture: (instruction sets, int8 dot product, x86 VNNI, native bf16, class)
    "avx2-laptop.txt": (["avx2"], False, False, False, "avx2"),
    "avx512-server-no-bf16.txt": (["avx2", "avx512f", "avx512_vnni"], True, True, False, "avx512"),
    "amx-server.txt": (["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"],
                       True, True, True, "avx512bf16"),
    "arm-pi4-cortex-a72.txt": (["asimd"], False, False, False, "arm64"),
    "arm-pi5-cortex-a76.txt": (["asimd", "asimddp"], True, False, False, "arm64"),
    "arm-neoverse-v2.txt": (["asimd", "asimddp", "i8mm", "bf16", "sve", "sve2"], True, False, True, "arm64"),
}


@pytest.mark.parametrize("fixture", CPUS)
def test_cpuinfo_of_each_cpu_class_gives_its_known_answers(fixture):
    flags = parse_cpuinfo((FIXTURES / fixture).read_text())
    sets, int8_dot, vnni, bf16, klass = CPUS[fixture]
    assert instruction_sets(flags) == sets
    assert (has_int8_dot(flags), has_vnni(flags), has_bf16(flags), cpu_class(flags)) == (int8_dot, vnni, bf16, klass)


@pytest.mark.parametrize("fixture, name", [
    ("avx2-laptop.txt", "Intel(R) Core(TM) i7-8565U CPU @ 1.80GHz"),
    ("arm-pi4-cortex-a72.txt", "Raspberry Pi 4 Model B Rev 1.4 (Cortex-A72)"),
    ("arm-pi5-cortex-a76.txt", "Raspberry Pi 5 Model B Rev 1.0 (Cortex-A76)"),
    ("arm-neoverse-v2.txt", "Neoverse-V2"),
])
def test_cpu_name_from_cpuinfo_names_arm_boards_and_cores(fixture, name):
    assert name_from_cpuinfo((FIXTURES / fixture).read_text()) == name


def test_macos_sysctl_names_map_to_the_linux_flag_names():
    flags = parse_sysctl((FIXTURES / "macos-m2-sysctl.txt").read_text())
    assert instruction_sets(flags) == ["asimd", "asimddp", "i8mm", "bf16"] and has_bf16(flags)


def test_bf16_training_only_where_the_cpu_has_it():
    """AVX-512 without bf16 gets fp32, whatever oneDNN's own check says; no flags on x86: fp32."""
    for fixture, (_, _, _, bf16, _) in CPUS.items():
        assert cpu_supports_bf16(parse_cpuinfo((FIXTURES / fixture).read_text())) is bf16, fixture
    assert cpu_supports_bf16(frozenset(), machine="x86_64") is False
    assert cpu_supports_bf16(frozenset(), machine="AMD64") is False


def test_device_auto_goes_cuda_then_mps_then_cpu():
    assert [pick_device(c, m) for c, m in ((True, True), (True, False), (False, True), (False, False))] == \
        ["cuda", "cuda", "mps", "cpu"]


# --- macOS and Windows, simulated -----------------------------------------------------------------

PRELUDE = """
import importlib, os, signal, sys
import numpy, PIL.Image, onnxruntime, typer, click{torch}
for name in {optional!r}:  # runtimes edgecls imports lazily, as installed here
    try:
        importlib.import_module(name)
    except ImportError:
        pass
del os.sched_getaffinity
del signal.SIGHUP
{windows}sys.platform = {platform!r}
sys.argv = ['edgecls', *{args!r}]
from edgecls.cli import main
main()
"""


def simulated(platform: str, *args, torch: bool = False) -> list[str]:
    heavy = ", torch" if torch else ", starlette, uvicorn" if args[0] == "serve" else ""
    code = PRELUDE.format(optional=OPTIONAL_RUNTIMES, torch=heavy,
                          windows="sys.modules['resource'] = None\n" if platform == "win32" else "",
                          platform=platform, args=[str(a) for a in args])
    return [sys.executable, "-c", code]


def run_simulated(platform: str, *args, torch: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(simulated(platform, *args, torch=torch), cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return result


PLATFORMS = ("darwin", "win32")
OPTIONAL_RUNTIMES = ("openvino", "ai_edge_litert.interpreter", "ncnn", "torch", "executorch.runtime",
                     "executorch.extension.pybindings.portable_lib")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_train_runs_without_the_linux_only_apis(platform, tmp_path, cifar_dir, cache_dir):
    run_simulated(platform, "train", "--data", cifar_dir, "--cache-dir", cache_dir, "--epochs", "1",
                  "--limit-train", "256",
                  "--limit-val", "100", "--limit-test", "100", "--batch-size", "64", "--device", "auto",
                  "--out", tmp_path / "run", torch=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1 and (tmp_path / "run" / "best.pt").is_file()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_infer_and_verify_run_without_the_linux_only_apis(platform, cifar_dir):
    from edgecls.runtime import Classifier

    photos = sorted((cifar_dir / "test" / "ship").iterdir())[:5]
    lines = run_simulated(platform, "infer", *photos, "--json").stdout.splitlines()
    expected = [p.label for p in Classifier.load(reference_bundle()).predict(photos)]
    assert [json.loads(line)["label"] for line in lines] == expected
    report = json.loads(run_simulated(platform, "verify", "resnet20", "--json").stdout)
    assert report["passed"] is True
    doctor = json.loads(run_simulated(platform, "doctor", "--json").stdout)
    assert doctor["os_features"] == {"sighup_reload": False, "cpu_affinity": False,
                                     "peak_rss_window": True}  # /proc is still this Linux's
    assert doctor["cpu"]["cores"] >= 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_serve_runs_and_reloads_over_http_without_sighup(platform):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(simulated(platform, "serve", "--port", str(port)), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, base)
        request = urllib.request.Request(f"{base}/v1/reload", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            assert r.status == 200 and json.loads(r.read())["model"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in out, out

