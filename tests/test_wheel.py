"""A wheel built from the repo installs and runs, not only the editable checkout."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from .conftest import REPO


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(REPO)], check=True, capture_output=True, text=True)
    wheel = next(dist.glob("edgecls-*.whl"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    return wheel, target


def run_from(target, *args, cwd):
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_holds_the_namespaced_packages(installed_wheel):
    wheel, _ = installed_wheel
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("edgecls/cli/__init__.py", "edgecls/trainer/fit.py", "edgecls/trainer/models/cifar_resnet.py",
                   "edgecls/trainer/data/folder.py", "edgecls/export/__init__.py", "edgecls/runtime/__init__.py"):
        assert module in names, module
    assert not any(n.startswith(("trainer/", "runtime/", "export/", "tests/")) for n in names)
    assert "edgecls/reference/airbench/exports/airbench-int8.onnx" in names  # shipped beside ResNet-20…
    assert not any(n.endswith("airbench.pt") for n in names)  # …without its checkpoint
    assert os.path.getsize(wheel) <= 20 * 2**20


def test_installed_wheel_runs(installed_wheel, tmp_path):
    _, target = installed_wheel
    probe = run_from(target, "-c", "import edgecls, edgecls.trainer.models as m; print(edgecls.__file__); "
                     "print(len(m.model_names()))", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    path, count = probe.stdout.split()
    assert path.startswith(str(target)) and int(count) >= 9
    help_ = run_from(target, "-m", "edgecls", "--help", cwd=tmp_path)
    assert help_.returncode == 0 and "train" in help_.stdout
    models = run_from(target, "-m", "edgecls", "models", cwd=tmp_path)
    assert models.returncode == 0 and "resnet20" in models.stdout


def test_installed_wheel_infers_with_the_shipped_model(installed_wheel, tmp_path, cifar_dir):
    _, target = installed_wheel
    assert (target / "edgecls" / "reference" / "exports" / "manifest.json").is_file()
    image = sorted((cifar_dir / "test" / "ship").iterdir())[0]
    result = run_from(target, "-m", "edgecls", "infer", str(image), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stderr  # the model came from the wheel's package data
    assert json.loads(result.stdout)["path"] == str(image)
