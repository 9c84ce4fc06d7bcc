"""ExecuTorch (``.pte``) lowered to the XNNPACK delegate, and its PT2E INT8 variant.

FP32: ``torch.export`` (batch axis dynamic with --dynamic-batch) → ``to_edge_transform_and_lower`` with
``XnnpackPartitioner`` → ``to_executorch``. INT8: export.executorch_int8, then the same lowering.

ExecuTorch plans memory for the largest batch it was asked to accept, and the bound it keeps may be
lower than the one asked for (ResNet-20 asked for 65,536 or 64 keeps 15): the engine reads the bound
from the file and the manifest records it (``max_batch``), so nothing trusts the request.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import torch

from .job import ExportJob
from .metadata import write_sidecar


def lower(program, path: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(lowered.buffer)


def quiet():
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    return contextlib.redirect_stdout(io.StringIO())


def executorch_limits(path: Path) -> dict:
    """What the file accepts, read back from it: the manifest records this, not what export asked for."""
    from edgecls.runtime.engines import ExecuTorchEngine

    return {"max_batch": ExecuTorchEngine(path, threads=1).max_batch}


def build_executorch(job: ExportJob, path: Path) -> None:
    with quiet():
        program = torch.export.export(job.model, (job.example_input(),), dynamic_shapes=job.dynamic_shapes())
        lower(program, path)
    write_sidecar(path, job.metadata)
