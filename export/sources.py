"""The file a converted format starts from: the one this export built, or a scratch copy built for it.

NCNN and ONNX FP16 are converted from the ONNX file (``FormatInfo.converted_from``). When ``onnx`` is
among the chosen formats its file is reused; otherwise it is built into a scratch folder inside the
staging folder and removed afterwards, so only the chosen formats reach the bundle.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from edgecls.format_table import FORMATS

from .job import ExportJob


@contextlib.contextmanager
def built_or_scratch(job: ExportJob, name: str, build: Callable[[ExportJob, Path], object]) -> Iterator[Path]:
    """The path of format ``name``'s model file, valid inside the ``with`` block; ``build`` makes it when this
    export did not (the caller names the builder, so this module needs no build table: no import cycle)."""
    if name in job.built:
        yield job.built[name]
        return
    with tempfile.TemporaryDirectory(dir=job.workdir, prefix=".scratch-") as scratch:
        path = Path(scratch) / f"{job.stem}{FORMATS[name].suffixes[0]}"
        build(job, path)
        yield path
