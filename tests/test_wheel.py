"""The wheel a user gets: built from the repo, installed as `pip install edgecls` would, run outside the repo.

One wheel is built per module (``python -m build --wheel``). Two installs of it:
- a fresh venv with the base dependencies resolved by pip (no extras, no ``--no-deps``): the torch-free
  install a user gets, where ``infer``, ``verify`` and ``doctor`` must work from any folder;
- a ``--target`` copy imported by this (dev) Python, to check the namespaced packages that need torch.
"""

import json
import os
import subprocess
import sys
import venv
import zipfile

import pytest

from edgecls.bundle import MANIFEST
from edgecls.shipped import SHIPPED

from .conftest import REPO

BASE_DEPS = ("numpy", "pillow", "onnxruntime", "typer")  # pyproject's [project] dependencies
NOT_IN_BASE = ("torch", "openvino", "starlette")  # extras' packages: a base install has none of them


def run(cmd, cwd, env=None, timeout=300):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO], cwd=REPO)
    assert built.returncode == 0, built.stderr[-2000:]
    return next(dist.glob("edgecls-*.whl"))


@pytest.fixture(scope="module")
def base_venv(wheel, tmp_path_factory):
    """A fresh venv with the wheel and its base dependencies, as `pip install edgecls` leaves it."""
    root = tmp_path_factory.mktemp("base-venv")
    venv.create(root, with_pip=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = run([root / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel],
                    cwd=root, env=env)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return root, env


@pytest.fixture(scope="module")
def target_install(wheel, tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    copied = run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, wheel], cwd=target)
    assert copied.returncode == 0, copied.stderr
    return target


def run_from(target, *args, cwd):
    env = {**os.environ, "PYTHONPATH": str(target)}
    return run([sys.executable, *args], cwd=cwd, env=env)


def test_wheel_holds_the_namespaced_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("edgecls/cli/__init__.py", "edgecls/trainer/fit.py", "edgecls/trainer/models/cifar_resnet.py",
                   "edgecls/trainer/data/folder.py", "edgecls/export/__init__.py", "edgecls/runtime/__init__.py"):
        assert module in names, module
    assert not any(n.startswith(("trainer/", "runtime/", "export/", "tests/", "docs/")) for n in names)
    assert "edgecls/reference/airbench/exports/airbench-int8.onnx" in names  # shipped beside ResNet-20…
    assert not any(n.endswith("airbench.pt") for n in names)  # …without its checkpoint
    assert os.path.getsize(wheel) <= 25 * 10**6  # issue 25's budget, with every shipped bundle's edge formats


def test_wheel_declares_only_the_base_dependencies(wheel):
    """Extras stay extras: the wheel's unconditional requirements are the four base packages."""
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    required = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    unconditional = sorted({r.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
                            for r in required if "extra ==" not in r})
    assert unconditional == sorted(BASE_DEPS)


def test_base_install_is_torch_free(base_venv, tmp_path):
    root, env = base_venv
    for package in NOT_IN_BASE:
        probe = run([root / "bin" / "python", "-c", f"import {package}"], cwd=tmp_path, env=env)
        assert probe.returncode != 0, f"{package} is importable from a base install"


def test_base_install_infers_a_photo_from_anywhere(base_venv, tmp_path, cifar_dir):
    root, env = base_venv
    image = sorted((cifar_dir / "test" / "ship").iterdir())[0]
    result = run([root / "bin" / "edgecls", "infer", image, "--json"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == str(image)
    assert str(root) in result.stderr  # the model came from the installed wheel's package data


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_base_install_verifies_the_shipped_bundles(base_venv, tmp_path, model):
    root, env = base_venv
    result = run([root / "bin" / "edgecls", "verify", model, "--json"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert str(root) in json.dumps(report)  # the bundle verified is the installed one


def test_base_install_doctor(base_venv, tmp_path):
    root, env = base_venv
    result = run([root / "bin" / "edgecls", "doctor", "--json"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert not any(report["extras"].values())  # no extra is installed in a base venv
    assert report["bundle"]["sha256_ok"] is True
    assert (root / "lib").is_dir() and any(root.glob(f"lib/python*/site-packages/edgecls/reference/exports/{MANIFEST}"))


def test_installed_wheel_runs(target_install, tmp_path):
    probe = run_from(target_install, "-c", "import edgecls, edgecls.trainer.models as m; print(edgecls.__file__); "
                     "print(len(m.model_names()))", cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    path, count = probe.stdout.split()
    assert path.startswith(str(target_install)) and int(count) >= 9
    help_ = run_from(target_install, "-m", "edgecls", "--help", cwd=tmp_path)
    assert help_.returncode == 0 and "train" in help_.stdout
    models = run_from(target_install, "-m", "edgecls", "models", cwd=tmp_path)
    assert models.returncode == 0 and "resnet20" in models.stdout
