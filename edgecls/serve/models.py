"""The model being served, and its hot swap: load beside the old one, prove it, switch atomically.

The file is proven on this machine as it loads (`Classifier.load`). At start-up a file that fails its golden
check still loads, but the server is not ready (503) until a reload brings one that passes; a reload to a
failing file is refused and the old model keeps serving.

Requests take `ModelSlot.current` once, when they start, and finish on that model even if a reload
switches the slot meanwhile; the old engine goes away with the last request that holds it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from edgecls.bundle import MANIFEST, bundle_entries, file_digests, manifest_path, read_manifest, verify_files
from edgecls.digest import file_sha256
from edgecls.errors import EdgeclsError
from edgecls.format_table import FORMATS
from edgecls.runtime import Classifier
from edgecls.runtime.proof import PROVEN

from .config import ServeConfig
from .errors import ApiError
from .metrics import Metrics


@dataclass(frozen=True)
class ServedModel:
    classifier: Classifier
    path: Path                 # as asked for: an export folder or a model file
    verified: str              # how the bundle was proven before it was served
    sha256: dict[str, str]     # of the files as they were when loaded

    @property
    def name(self) -> str:
        """The name the v2 routes use."""
        return self.classifier.spec.model

    def info(self) -> dict:
        """The body of GET /v1/model."""
        clf = self.classifier
        fmt = FORMATS.get(clf.choice.format)
        return {"name": self.name, "path": str(self.path), "spec": clf.spec.to_dict(), "format": clf.choice.format,
                "precision": fmt.precision if fmt else "unknown", "float_math": clf.engine.precision,
                "backend": clf.choice.engine, "engine_version": clf.engine.version, "device": clf.engine.device,
                "threads": clf.engine.threads, "verified": self.verified, "sha256": self.sha256}


def bundle_sha256(clf: Classifier) -> dict[str, str]:
    """Every file of the bundle by name (from its verified manifest), or the model file's own digest."""
    folder = clf.choice.folder
    if folder is not None:
        digests = {rel: sha for entry in bundle_entries(read_manifest(folder)) for rel, sha in file_digests(entry)}
        return {MANIFEST: file_sha256(manifest_path(folder)), **digests}
    path = clf.choice.path
    fmt = FORMATS.get(clf.choice.format)
    files = fmt.files(path) if fmt else [path]
    return {f.name: file_sha256(f) for f in files if f.is_file()}


def load_model(path: Path, config: ServeConfig, allow_failed: bool) -> ServedModel:
    """Load, proven on this machine (`Classifier.load`), with every sha256 in the bundle's manifest checked
    (the load checks only the file it runs: a server vouches for the bundle it reports). ``allow_failed``: a file
    that fails its golden check here loads anyway (the slot then keeps the server not ready)."""
    clf = Classifier.load(path, backend=config.backend, threads=config.engine_threads, device=config.device,
                          streaming=True,  # between batches, the engine leaves the cores to the event loop
                          allow_failed_proof=allow_failed)
    if clf.choice.folder:
        verify_files(clf.choice.folder, read_manifest(clf.choice.folder))
    return ServedModel(clf, path, verified(clf), bundle_sha256(clf))


def verified(clf: Classifier) -> str:
    """How the served file was proven, for GET /v1/model."""
    proof = clf.proof
    if proof.status == PROVEN:
        return "golden (cached proof for this CPU)" if proof.cached else "golden (proven on this CPU)"
    if proof.failed:
        return f"FAILS its golden check on this CPU: {proof.reason}"
    return "sha256 only: no golden vectors" if clf.choice.folder else "none: not in an export folder"


class ModelSlot:
    """Holds the served model; `reload` swaps it, one reload at a time."""

    def __init__(self, model: ServedModel, config: ServeConfig, metrics: Metrics):
        self.current = model
        self.config = config
        self.metrics = metrics
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return not self.not_ready()

    def not_ready(self) -> str:
        """Why requests may not be answered ('' when they may): the served file fails its golden check here."""
        clf = self.current.classifier
        if self.config.allow_failed_proof or not clf.proof.failed:
            return ""
        return (f"not ready: {clf.choice.path} fails its golden check on this CPU ({clf.proof.reason}); "
                "POST /v1/reload a model that passes, or serve with --allow-failed-proof")

    def serving(self) -> ServedModel:
        """The model a request runs on; 503 while it may not answer."""
        model = self.current
        why = self.not_ready()
        if why:
            raise ApiError(503, "not_ready", why)
        return model

    async def reload(self, path: Path | None) -> tuple[ServedModel, ServedModel]:
        """(old, new); on any failure the old model keeps serving and the ApiError says why."""
        async with self._lock:
            old = self.current
            target = Path(path) if path is not None else old.path
            try:
                new = await asyncio.to_thread(load_model, target, self.config, self.config.allow_failed_proof)
            except EdgeclsError as e:
                self.metrics.reloads.labels("refused").inc()
                raise ApiError(422, "reload", f"reload refused, still serving {old.path}: {e}") from None
            except Exception as e:  # anything else: keep serving, report it
                self.metrics.reloads.labels("failed").inc()
                raise ApiError(500, "reload", f"reload failed, still serving {old.path}: "
                                              f"{type(e).__name__}: {e}") from None
            self.current = new
            self.metrics.reloads.labels("ok").inc()
            return old, new
