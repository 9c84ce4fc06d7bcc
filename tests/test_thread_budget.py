"""The thread budget (`edgecls.host.thread_budget`): this process's affinity mask capped by a cgroup CPU quota.

The quota is injected as fake cgroup files (v2's ``cpu.max``, v1's ``cpu.cfs_quota_us``) in a temporary
folder standing in for /sys/fs/cgroup, with a fake /proc/self/cgroup naming the process's cgroup; the
expected counts come from the quota written and the affinity mask the OS reports, never from the code.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from edgecls import host

AFFINITY = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fake_cgroup(tmp_path: Path, monkeypatch, membership: str, files: dict[str, str]) -> None:
    """A /proc/self/cgroup text and cgroup files (path under the mount → text), made this process's."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    (proc / "cgroup").write_text(membership)
    root.mkdir()
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    monkeypatch.setattr(host, "_PROC_SELF", proc)
    monkeypatch.setattr(host, "CGROUP_ROOT", root)


def expected_cores(quota_cpus: float | None) -> int:
    return AFFINITY if quota_cpus is None else max(1, min(AFFINITY, math.ceil(quota_cpus)))


V2 = {"cgroup.controllers": "cpu memory"}  # what marks the mount as cgroup v2's unified tree

CASES = {
    "v2 quota at the root": ("0::/\n", {**V2, "cpu.max": "150000 100000\n"}, 1.5),
    "v2 no quota": ("0::/\n", {**V2, "cpu.max": "max 100000\n"}, None),
    "v2 the tightest along the path": ("0::/a/b\n", {**V2, "a/cpu.max": "100000 100000\n",
                                                     "a/b/cpu.max": "max 100000\n"}, 1.0),
    "v2 a large quota": ("0::/\n", {**V2, "cpu.max": "6400000 100000\n"}, 64.0),
    "v1 cpu,cpuacct": ("4:cpu,cpuacct:/\n3:memory:/x\n", {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
                                                          "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
    "v1 unlimited": ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    # a container without its own cgroup namespace: /proc names the host's path, the mount is the container's
    "v1 host path outside the mount": ("2:cpu,cpuacct:/docker/0123abcd\n",
                                       {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                                        "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 2.0),
    "hybrid: v1 cpu and an empty unified tree": ("1:cpu:/\n0::/\n", {"cpu/cpu.cfs_quota_us": "100000\n",
                                                                     "cpu/cpu.cfs_period_us": "100000\n",
                                                                     "unified/cgroup.procs": ""}, 1.0),
}


@pytest.mark.parametrize("case", CASES)
def test_quota_caps_the_usable_cores(tmp_path, monkeypatch, case):
    membership, files, quota = CASES[case]
    fake_cgroup(tmp_path, monkeypatch, membership, files)
    assert host.cpu_quota() == quota
    assert host.usable_cores() == expected_cores(quota)
    assert host.thread_budget() == expected_cores(quota)


def test_no_cgroup_file_means_no_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "_PROC_SELF", tmp_path / "no-proc")
    assert host.cpu_quota() is None and host.usable_cores() == AFFINITY


def test_budget_reserves_and_shares_but_never_reaches_zero(tmp_path, monkeypatch):
    fake_cgroup(tmp_path, monkeypatch, "0::/\n", {**V2, "cpu.max": "400000 100000\n"})
    cores = expected_cores(4.0)
    assert host.thread_budget(reserve=1) == max(1, cores - 1)
    assert host.thread_budget(share=2) == max(1, cores // 2)
    assert host.thread_budget(reserve=cores + 5) == 1 and host.thread_budget(share=cores * 3) == 1


@pytest.fixture
def one_cpu_quota(tmp_path, monkeypatch):
    """This process given 1 CPU of quota: every pool that asks the budget must take one thread."""
    if AFFINITY < 2:
        pytest.skip("one core in the affinity mask: a quota of one CPU would change nothing to observe")
    fake_cgroup(tmp_path, monkeypatch, "0::/\n", {**V2, "cpu.max": "100000 100000\n"})


def test_engines_open_with_the_budget(one_cpu_quota):
    from edgecls.format_table import FORMATS, ONNXRUNTIME, OPENVINO
    from edgecls.runtime.engines import open_engine
    from edgecls.shipped import reference_bundle

    folder = reference_bundle()
    for engine, fmt in ((ONNXRUNTIME, "onnx"), (OPENVINO, "openvino")):
        opened = open_engine(engine, folder / f"resnet20{FORMATS[fmt].suffixes[0]}")
        assert opened.threads == 1, (engine, opened.threads)
    assert open_engine(ONNXRUNTIME, folder / "resnet20.onnx", threads=2).threads == 2  # --threads still wins


def test_serve_engine_and_decode_pool_share_the_budget(one_cpu_quota):
    from edgecls.serve.config import ServeConfig

    config = ServeConfig()
    assert (config.engine_threads, config.decode_pool) == (1, 1)
    assert ServeConfig(threads=3, decode_threads=5).engine_threads == 3
    assert ServeConfig(threads=3, decode_threads=5).decode_pool == 5


def test_serve_decode_pool_takes_what_the_engine_leaves(tmp_path, monkeypatch):
    from edgecls.serve.config import ServeConfig

    fake_cgroup(tmp_path, monkeypatch, "0::/\n", {**V2, "cpu.max": "6400000 100000\n"})
    config = ServeConfig()
    assert config.engine_threads + config.decode_pool == max(AFFINITY, 2)  # one core reserved, at least one each


def test_trainer_takes_the_budget_shared_between_ranks(one_cpu_quota, monkeypatch):
    torch = pytest.importorskip("torch")
    from edgecls.trainer.policy import set_cpu_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        assert set_cpu_threads(None) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
