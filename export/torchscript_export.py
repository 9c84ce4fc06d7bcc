"""TorchScript by ``torch.jit.trace``: loads with ``torch.jit.load`` and in LibTorch (C++).

TorchScript is deprecated upstream in favour of ``torch.export``; it is still shipped because
LibTorch users ask for it. Tracing (not scripting) is used because the CIFAR/torchvision ResNets
have no data-dependent control flow, and trace output is what LibTorch loads most reliably. The
trace uses a batch of 2 and no shape-dependent Python, so the file accepts any batch size.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch

from .job import ExportJob


@contextlib.contextmanager
def _quiet_deprecation():
    """``torch.jit.*`` warns that it is deprecated on every call; --help already says so once."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
        yield


def build_torchscript(job: ExportJob, path: Path) -> None:
    with _quiet_deprecation(), torch.no_grad():
        traced = torch.jit.trace(job.model, job.example_input(), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files=job.metadata)


def load_torchscript(path: Path):
    with _quiet_deprecation():
        module = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(x)).numpy()

    return run
