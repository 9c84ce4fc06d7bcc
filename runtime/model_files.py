"""Which file to run: a model file as given, or an export folder's files in the order the runtime prefers them.

The runtime answers from the first candidate that is proven on this machine (`runtime.proof`), so a folder
gives its candidates one at a time, each checked against its sha256 only when it is reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from edgecls.bundle import MANIFEST, read_manifest, verify_entry
from edgecls.errors import EdgeclsError, UsageError
from edgecls.format_table import (EXECUTORCH, FORMATS, FP32, INT8, LITERT, NCNN, ONNXRUNTIME, OPENVINO,
                                  runtime_preference)
from edgecls.host import has_vnni

from .engines import ORT_PROVIDERS, PINNED, engine_available, open_engine

BACKENDS = ("auto", ONNXRUNTIME, OPENVINO, LITERT, NCNN, EXECUTORCH)
# The edge engines `auto` falls back to, in this order, after onnxruntime and OpenVINO: a bundle holding only
# their files (or a .tflite, .param or .pte given as the model) runs on them; any ONNX or OpenVINO file wins.
EDGE_ENGINES = (LITERT, NCNN, EXECUTORCH)
# From this many images on, `edgecls infer` asks for the engine that streams fastest rather than the one
# that starts fastest: OpenVINO's extra ~0.2 s of start-up is won back at ~40 us per image (AVX-512-VNNI).
STREAM_IMAGES = 5000


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    format: str
    engine: str
    folder: Path | None = None  # the export folder that lists it (the chosen file's sha256s were checked)
    manifest: dict | None = field(default=None, compare=False, repr=False)  # that folder's, as read

    @property
    def entry(self) -> dict | None:
        """The file's manifest entry (None outside a bundle)."""
        files = (self.manifest or {}).get("files", [])
        return next((e for e in files if self.folder is not None and self.folder / e["path"] == self.path), None)

    def open(self, threads: int | None = None, device: str | None = None, precision: str = PINNED,
             streaming: bool = False):
        return open_engine(self.engine, self.path, threads, device, precision, streaming)


def choose_model(path: Path, backend: str = "auto", device: str | None = None, throughput: bool = False,
                 flags: frozenset[str] | None = None) -> ModelChoice:
    """The first of `model_candidates`: what the runtime answers from where that file passes its proof."""
    return next(model_candidates(path, backend, device, throughput, flags))


def model_candidates(path: Path, backend: str = "auto", device: str | None = None, throughput: bool = False,
                     flags: frozenset[str] | None = None) -> Iterator[ModelChoice]:
    """A file as given (one candidate), or a folder's files in preference order (`folder_candidates`).

    ``throughput``: the caller will stream many images, so `auto` may trade start-up for images per
    second; ``flags`` stands in for this CPU's instruction sets (tests). Usage errors raise before the first
    candidate is taken.
    """
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not path.exists():
        raise EdgeclsError(f"model {path} does not exist")
    engines = auto_engines(throughput, flags) if backend == "auto" else (backend,)
    if path.is_dir():
        return folder_candidates(path, engines, device)
    return iter([in_bundle(_file_choice(path, backend, engines, device))])


def _file_choice(path: Path, backend: str, engines: tuple[str, ...], device: str | None) -> ModelChoice:
    suffix = path.suffix.lower()
    known = FORMATS.get(format_of(path))
    if backend != "auto" and known is not None and backend not in known.engines:
        raise UsageError(f"{path} is a {known.label} model; the {backend} backend cannot run it "
                         f"(it runs on {', '.join(known.engines)})")
    if suffix == ".onnx":
        return ModelChoice(path, format_of(path), _engine_for_onnx(engines, device))
    if suffix == ".xml":
        if backend == ONNXRUNTIME:
            raise UsageError(f"{path} is an OpenVINO model; onnxruntime cannot run it")
        return ModelChoice(path, format_of(path), OPENVINO)
    fmt = FORMATS.get(format_of(path))
    if fmt is not None and fmt.engine in EDGE_ENGINES:
        if backend not in ("auto", fmt.engine):
            raise UsageError(f"{path} is a {fmt.label} model; only the {fmt.engine} backend runs it")
        return ModelChoice(path, fmt.name, fmt.engine)
    raise EdgeclsError(f"{path}: expected an .onnx file, an OpenVINO .xml, a .tflite, an NCNN .param, a .pte or an "
                       f"export folder with {MANIFEST}")


def auto_engines(throughput: bool, flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """The engines `auto` tries, fastest first for the work on this CPU (the README's "Which engine").

    On an AVX-512-VNNI CPU onnxruntime loads faster than OpenVINO and answers a single image sooner, and it
    is the base install's engine; OpenVINO's INT8 kernels stream more images per second there
    (benchmarks/results/runtime-speed-cpu-avx512bf16-2026-12-05.txt). That lead rests on int8 dot products
    (VNNI, AMX), so without them (AVX2) onnxruntime stays first for every kind of work
    (benchmarks/results/runtime-speed-ceiling-openvino-capped-avx2-2026-12-05.txt).
    """
    if throughput and has_vnni(flags) and engine_available(OPENVINO):
        return (OPENVINO, ONNXRUNTIME, *EDGE_ENGINES)
    return (ONNXRUNTIME, OPENVINO, *EDGE_ENGINES)


def _ort_device(device: str | None) -> bool:
    """Whether a device name is one onnxruntime knows (any other, e.g. GPU or NPU, means OpenVINO)."""
    return device is None or device.lower() in ORT_PROVIDERS or device.endswith("ExecutionProvider")


def _usable(engine: str, device: str | None) -> bool:
    """Whether ``engine`` can run here on ``device`` (OpenVINO may be absent; onnxruntime knows few devices)."""
    if engine == ONNXRUNTIME:
        return _ort_device(device)
    return engine_available(engine) and (engine == OPENVINO or device is None or device.lower() == "cpu")


def _engine_for_onnx(engines: tuple[str, ...], device: str | None) -> str:
    """A named backend as asked; under `auto` the first usable one, else the one whose error helps most."""
    if len(engines) == 1:
        return engines[0]
    usable = next((e for e in engines if _usable(e, device)), None)  # lazily: importing OpenVINO costs ~0.1 s
    return usable or (ONNXRUNTIME if _ort_device(device) else OPENVINO)


def folder_candidates(folder: Path, engines: tuple[str, ...], device: str | None = None) -> Iterator[ModelChoice]:
    """INT8 before FP32; within a precision, ``engines`` in order, each on the formats it runs natively.
    Each file is checked against its sha256 when it is reached (the whole folder is `edgecls verify`'s job)."""
    manifest = read_manifest(folder)
    by_format = {e["format"]: e for e in manifest.get("files", [])}
    explicit = len(engines) == 1
    found = False
    for precision in (INT8, FP32):
        for engine in engines:
            if not explicit and not _usable(engine, device):
                continue
            for fmt, native in runtime_preference():
                if fmt in by_format and native == engine and FORMATS[fmt].precision == precision:
                    verify_entry(folder, by_format[fmt])
                    found = True
                    yield ModelChoice(folder / by_format[fmt]["path"], fmt, engine, folder, manifest)
    if not found:
        raise EdgeclsError(f"{folder} has no model the {' or '.join(engines)} backend can run "
                           f"(formats: {', '.join(by_format)})")


def in_bundle(choice: ModelChoice) -> ModelChoice:
    """A file named alone, tied to the export folder whose manifest lists it (its sha256s checked, so it can be
    proven); as given when no edgecls manifest beside it lists it."""
    folder = choice.path.parent
    if not (folder / MANIFEST).is_file():
        return choice
    try:
        manifest = read_manifest(folder)
    except EdgeclsError:  # someone else's manifest.json: a loose file, as before
        return choice
    tied = replace(choice, folder=folder, manifest=manifest)
    if tied.entry is None:
        return choice
    verify_entry(folder, tied.entry)
    return tied


def format_of(path: Path) -> str:
    """The bundle format name of a model file, from its suffixes."""
    name = path.name.lower()
    matches = [f.name for f in FORMATS.values() if name.endswith(f.suffixes[0])]
    return max(matches, key=lambda n: len(FORMATS[n].suffixes[0])) if matches else path.suffix.lstrip(".")
