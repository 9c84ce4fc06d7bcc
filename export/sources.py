"""The file a converted format starts from: the one this export built, or a scratch copy built for it.

NCNN and ONNX FP16 are converted from the ONNX file (``FormatInfo.converted_from``). When ``onnx`` is
among the chosen formats its file is reused; otherwise it is built into a scratch folder inside the
staging folder and removed afterwards, so only the chosen formats reach the bundle.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from edgecls.errors import EdgeclsError

from .job import ExportJob


class FormatUnsupported(EdgeclsError):
    """The format cannot express this model (e.g. an op its runtime has no layer for): `--format all` lists it
    as skipped; named explicitly, it is the export's error."""


@contextlib.contextmanager
def built_or_scratch(job: ExportJob, name: str) -> Iterator[Path]:
    """The path of format ``name``'s model file, valid inside the ``with`` block."""
    if name in job.built:
        yield job.built[name]
        return
    from .formats import FORMATS

    fmt = FORMATS[name]
    with tempfile.TemporaryDirectory(dir=job.workdir, prefix=".scratch-") as scratch:
        path = Path(scratch) / f"{job.stem}{fmt.suffixes[0]}"
        fmt.build(job, path)
        yield path
