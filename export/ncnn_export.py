"""NCNN (``.param`` + ``.bin``) by ``pnnx`` run on the ONNX file, FP32 weights (``fp16=0``).

pnnx is run on the ONNX file rather than on a TorchScript trace: the ONNX file is the one the gate has
already proven, and TorchScript is deprecated upstream. The input shape is given as one image (NCNN's Mat
holds one image; the engine feeds batches image by image). pnnx's other outputs (its own .param/.bin,
Python and ONNX re-exports) go to a scratch folder. NCNN has no place for metadata in its files, so
edgecls's metadata rides beside them (``edgecls.format_table.META_SIDECAR``).

Pip ships no NCNN INT8 tools (``ncnn2table``/``ncnn2int8`` are C++ builds), so there is no NCNN INT8 row.
NCNN's default options compute in fp16 on CPUs that can convert it, x86 included: the engine pins FP32
(``edgecls.runtime.engines.NcnnEngine``) and the gate reports the default as an extra check.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgecls.errors import EdgeclsError, FormatUnsupported

from .job import ExportJob
from .metadata import write_sidecar
from .onnx_export import build_onnx
from .sources import built_or_scratch


def pnnx_executable() -> Path:
    """The pnnx binary inside the ``pnnx`` wheel, found without importing it (its package imports torch)."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeclsError("pnnx is not installed: pip install 'edgecls[export]'")
    return Path(list(spec.submodule_search_locations)[0]) / "pnnx"


def unknown_layers(param: Path) -> list[str]:
    """Layer types of an NCNN .param that this NCNN build does not register (sorted, distinct)."""
    import ncnn

    types = {line.split()[0] for line in param.read_text().splitlines()[2:] if line.split()}
    return sorted(t for t in types if ncnn.layer_to_index(t) < 0)


def build_ncnn(job: ExportJob, path: Path) -> None:
    size = job.spec.input_size
    weights = path.with_suffix(".bin")
    with built_or_scratch(job, "onnx", build_onnx) as onnx_file, tempfile.TemporaryDirectory(dir=job.workdir,
                                                                                   prefix=".pnnx-") as scratch:
        work = Path(scratch)
        source = work / "model.onnx"  # pnnx writes model.pnnxsim.onnx beside its input
        shutil.copyfile(onnx_file, source)
        command = [str(pnnx_executable()), str(source), f"inputshape=[1,3,{size},{size}]", "fp16=0",
                   f"ncnnparam={path}", f"ncnnbin={weights}", f"pnnxparam={work / 'p.param'}",
                   f"pnnxbin={work / 'p.bin'}", f"pnnxpy={work / 'p.py'}", f"pnnxonnx={work / 'p.onnx'}",
                   f"ncnnpy={work / 'n.py'}"]
        result = subprocess.run(command, cwd=work, capture_output=True, text=True)
    if result.returncode != 0 or not path.is_file() or not weights.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EdgeclsError(f"pnnx could not convert the ONNX file to NCNN: {tail[0]}")
    unsupported = unknown_layers(path)
    if unsupported:  # pnnx leaves ops it cannot map as they were (Tensor.slice, ReduceMax): NCNN refuses the graph
        for written in (path, weights):
            written.unlink(missing_ok=True)
        raise FormatUnsupported(f"NCNN has no layer for {', '.join(unsupported)} in this model (pnnx could not "
                                "map them)")
    write_sidecar(path, job.metadata)
