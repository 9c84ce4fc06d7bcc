"""Prove a model file on this machine before answering from it, and remember the verdict.

A file that lives in an export bundle is run on the bundle's golden images in the engine just opened to answer
from it, and held to `edgecls verify`'s per-file rule (`golden_rule.score_file`). INT8 kernels differ between
CPUs (onnxruntime's u8s8 path saturates without VNNI), so a file that passed where it was built can fail here.

The verdict is cached in the user's cache folder under a key of everything it rests on: the file's and its
companions' sha256 and the golden vectors' (as the manifest lists them; the loader has already checked the
file's), the format and its bar, the engine, its version and device, edgecls's version, the float precision,
and the CPU's features as its CPUID reports them (`edgecls.host.cpu_features_key`). A failing file costs its
proof once per machine; an unwritable cache only means proving again next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from edgecls import __version__
from edgecls.bundle import file_digests, verify_entry
from edgecls.errors import EdgeclsError
from edgecls.format_table import FORMATS
from edgecls.golden_file import Golden, read_golden
from edgecls.host import cpu_features_key, user_cache_dir
from edgecls.tolerance import bundle_tolerance

from .engines import PINNED, engine_version

if TYPE_CHECKING:  # the modules a proof runs with are imported when one runs: a cached verdict needs none
    from .classifier import Classifier
    from .golden_rule import Row
    from .model_files import ModelChoice

PROVEN, FAILED, UNPROVEN = "proven", "failed", "unproven"
CACHE_ENV = "EDGECLS_CACHE_DIR"  # where verdicts are kept, instead of the user cache's edgecls/proofs
RECORD_VERSION = 1


HEADS = {PROVEN: "proven on this CPU", FAILED: "fails its golden check on this CPU", UNPROVEN: "not proven"}


class Proof(NamedTuple):  # not a dataclass: building one costs a cold start ~0.7 ms
    """Whether the file a Classifier answers from is proven on this machine (``Classifier.proof``)."""

    status: str  # PROVEN | FAILED | UNPROVEN
    reason: str  # one line: what was measured, why it failed (verify's note), or why it cannot be proven
    cached: bool = False  # the verdict came from this machine's cache, not from running the golden images now

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def __str__(self) -> str:
        return f"{HEADS[self.status]}{' (cached verdict)' if self.cached else ''}: {self.reason}"


NOT_LOADED = Proof(UNPROVEN, "opened directly, not through Classifier.load")


class Lookup(NamedTuple):
    """What is known before the file's engine opens: the verdict, if it cannot be proven or is cached, and the
    key to prove it under otherwise."""
    verdict: Proof | None
    key: dict | None


def lookup(choice: ModelChoice, precision: str = PINNED, device: str | None = None) -> Lookup:
    """Cheap: no engine opened, no golden vectors read (a cached failure is skipped without opening the file)."""
    why = unprovable(choice, precision)
    if why:
        return Lookup(Proof(UNPROVEN, why), None)
    key = proof_key(choice, precision, device)
    return Lookup(read_verdict(key), key)


def prove(clf: Classifier, found: Lookup) -> Proof:
    """The verdict for the file ``clf`` answers from: ``found``'s when known, else run here and cached."""
    if found.verdict is not None:
        return found.verdict
    from .golden_rule import score_file

    started = time.perf_counter()
    choice = clf.choice
    try:
        golden = golden_for(choice)
    except EdgeclsError as e:  # listed but missing, modified or unreadable: nothing to prove it with
        return Proof(UNPROVEN, f"its golden vectors cannot be used: {e}")
    row = score_file(clf, choice.entry, golden, bundle_tolerance(choice.manifest))
    proof = Proof(PROVEN if row.passed else FAILED, _reason(row))
    write_verdict(found.key, proof, row, time.perf_counter() - started)
    return proof


def proof_of(clf: Classifier, precision: str = PINNED, device: str | None = None) -> Proof:
    """The verdict for a file opened outside ``Classifier.load`` (benchmark, doctor), cached like the load's."""
    return prove(clf, lookup(clf.choice, precision, device))


def unprovable(choice: ModelChoice, precision: str) -> str:
    """Why this file cannot be proven here ('' when it can)."""
    if precision != PINNED:
        return f"precision {precision} (the golden check holds for {PINNED} math)"
    if choice.folder is None or choice.entry is None:
        return f"{choice.path.name} is not listed in an export folder's manifest (no golden vectors to run)"
    if not choice.manifest.get("golden"):
        return (f"its bundle carries no golden vectors (exported by edgecls "
                f"{choice.manifest.get('edgecls_version', '< 0.2')}, or with --golden-images 0)")
    return ""


def proof_key(choice: ModelChoice, precision: str, device: str | None) -> dict:
    """Everything the verdict rests on, as plain JSON values."""
    entry, fmt = choice.entry, FORMATS[choice.entry["format"]]
    return {"files": dict(file_digests(entry)), "golden": choice.manifest["golden"]["sha256"], "format": fmt.name,
            "bar": bundle_tolerance(choice.manifest)[fmt.precision], "engine": choice.engine,
            "engine_version": engine_version(choice.engine), "device": (device or "default").lower(),
            "precision": precision, "edgecls": __version__, "cpu": cpu_features_key()}


def golden_for(choice: ModelChoice) -> Golden:
    """What proving this file reads of the golden vectors: the images, their names and the logits of PyTorch
    and of this format, after the golden file's own sha256 is checked (the verdict rests on it)."""
    verify_entry(choice.folder, choice.manifest["golden"])
    return read_golden(choice.folder, choice.manifest, (choice.entry["format"],))


def _reason(row: Row) -> str:
    from .golden_rule import explained

    if not row.passed:
        return explained(row)
    build = f", with its build-machine logits {row.agreement_build:.2%}" if row.agreement_build is not None else ""
    return f"top-1 agreement with PyTorch {row.agreement:.2%}{build}, max relative |Δlogit| {row.max_rel_dlogit:.1e}"


# --- the cache ------------------------------------------------------------------------------------

def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or user_cache_dir() / "proofs")


def verdict_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return cache_dir() / f"{digest}.json"


def read_verdict(key: dict) -> Proof | None:
    """The cached verdict for exactly this key; None when there is none or it cannot be read (prove again)."""
    try:
        record = json.loads(verdict_path(key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or record.get("verdict") not in (PROVEN, FAILED):
        return None
    return Proof(record["verdict"], str(record.get("reason", "")), cached=True)


def write_verdict(key: dict, proof: Proof, row: Row, seconds: float) -> None:
    """Atomically (a reader never sees half a record); a cache that cannot be written is left alone."""
    from datetime import datetime, timezone

    from edgecls.atomic import write_text_atomic

    record = {"record": RECORD_VERSION, "verdict": proof.status, "reason": proof.reason,
              "agreement": row.agreement, "agreement_build": row.agreement_build,
              "max_rel_dlogit": row.max_rel_dlogit, "max_rel_dlogit_build": row.max_rel_dlogit_build,
              "seconds": round(seconds, 4), "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "key": key}
    try:
        write_text_atomic(verdict_path(key), json.dumps(record, indent=1))
    except OSError:
        pass
