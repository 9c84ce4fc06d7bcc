"""INT8 files answer alike on a CPU without VNNI, whatever CPU built them (issue 33).

Every INT8 file of both shipped bundles must pass its golden check under qemu-user emulating an AVX2 CPU
(``-cpu Haswell``: no AVX-512, no VNNI), whichever CPU runs the tests. The CPU the emulation presents is
read back through CPUID, and a control proves it reaches the kernels that saturate: an ONNX INT8 file with
full 8-bit weights (the exporter's settings before issue 33, as built on a VNNI box) fails its golden check
there. qemu-user runs the interpreter itself (it cannot start a ``#!`` script); ``.ci/run`` installs Debian's
qemu-user when it is missing. The emulated run costs one to two minutes, most of it importing ExecuTorch's
runtime (which imports torch and its exporter: ~40 s emulated), so one process verifies both bundles.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecls.bundle import MANIFEST, file_entry, read_manifest
from edgecls.format_table import FORMATS, INT8
from edgecls.golden_file import GOLDEN, read_golden, write_golden
from edgecls.shipped import SHIPPED, reference_bundle

HASWELL = ("qemu-x86_64", "-cpu", "Haswell")
# Run in the emulated interpreter: every INT8 file of each MODEL=FOLDER bundle through `edgecls verify FILE`'s
# own function; prints {model: {format: report}}.
VERIFY_INT8 = """
import json, sys
from pathlib import Path
from edgecls.bundle import read_manifest
from edgecls.format_table import FORMATS, INT8
from edgecls.runtime.engines import engine_available
from edgecls.runtime.verify import verify_bundle
reports = {}
for pair in sys.argv[1:]:
    model, folder = pair.split("=", 1)
    reports[model] = {e["format"]: verify_bundle(Path(folder) / e["path"]).to_dict()
                      for e in read_manifest(Path(folder))["files"]
                      if FORMATS[e["format"]].precision == INT8 and engine_available(FORMATS[e["format"]].engine)}
print(json.dumps(reports))
"""


@pytest.fixture(scope="module")
def qemu() -> None:
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"qemu-x86_64 emulates an x86 CPU for this x86 interpreter; this host is {platform.machine()}")
    if shutil.which(HASWELL[0]) is None:
        pytest.fail("the portability tests need Debian's qemu-user: apt-get install -y qemu-user")


def emulated(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*HASWELL, sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def shipped_int8_reports(qemu) -> dict[str, dict]:
    """Both shipped bundles' INT8 files verified under emulation, in one process."""
    run = emulated("-c", VERIFY_INT8, *(f"{model}={reference_bundle(model)}" for model in SHIPPED))
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def test_emulated_cpu_has_avx2_and_no_vnni(qemu):
    """What CPUID says inside the emulation (qemu-user shows the host's /proc/cpuinfo, so that is not asked)."""
    run = emulated("-c", "import json, numpy; f = numpy._core._multiarray_umath.__cpu_features__; "
                         "print(json.dumps(sorted(k for k, v in f.items() if v)))")
    features = set(json.loads(run.stdout))
    assert "AVX2" in features and "FMA3" in features
    assert not features & {"AVX512F", "AVX512VNNI", "AVX512_SPR"}


@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_int8_files_pass_their_golden_check_without_vnni(shipped_int8_reports, model):
    folder = reference_bundle(model)
    reports = shipped_int8_reports[model]
    expected = {e["format"] for e in read_manifest(folder)["files"] if FORMATS[e["format"]].precision == INT8}
    assert set(reports) == expected  # every INT8 file the bundle ships ran: the dev install has every engine
    for fmt, report in reports.items():
        row = next(r for r in report["rows"] if r["format"] == fmt)
        assert report["passed"] and row["passed"], f"{model} {fmt}: {row['note']}"


@pytest.fixture(scope="module")
def saturating_bundle(tmp_path_factory) -> Path:
    """The shipped airbench bundle with its ONNX INT8 file rebuilt with 8-bit weights (no reduce_range, every
    layer quantized), its golden logits those of this machine, and the manifest re-hashed to match."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgecls.runtime.engines import open_engine
    from edgecls.runtime.preprocess import normalize
    from edgecls.spec import ModelSpec

    folder = tmp_path_factory.mktemp("saturating") / "airbench"
    shutil.copytree(reference_bundle("airbench"), folder)
    manifest = read_manifest(folder)
    golden = read_golden(folder, manifest)
    x = normalize(golden.images, ModelSpec.from_dict(manifest["spec"]))
    entry = next(e for e in manifest["files"] if e["format"] == "onnx-int8")
    target = folder / entry["path"]
    quantize_static(str(folder / "airbench.onnx"), str(target), _Reader(x), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=False, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    golden.logits["onnx-int8"] = open_engine("onnxruntime", target).run(x)
    write_golden(folder / GOLDEN, golden)
    entry.update(file_entry(target))
    manifest["golden"].update(file_entry(folder / GOLDEN))
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


class _Reader:
    def __init__(self, images: np.ndarray):
        from edgecls.export.onnx_export import INPUT_NAME

        self.items = iter([{INPUT_NAME: images[i:i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self.items, None)


def test_control_8bit_weights_fail_without_vnni(qemu, saturating_bundle):
    """The emulation is a CPU on which full 8-bit u8×s8 weights saturate: the check this file guards can fail."""
    run = emulated("-m", "edgecls", "verify", str(saturating_bundle / "airbench-int8.onnx"), "--json")
    assert run.returncode == 1, run.stderr[-2000:]
    row = next(r for r in json.loads(run.stdout)["rows"] if r["format"] == "onnx-int8")
    assert row["passed"] is False and row["agreement_build"] < 0.95, row
