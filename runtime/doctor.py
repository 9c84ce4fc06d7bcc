"""`edgecls doctor`: what this machine offers edgecls, and whether an export bundle can run on it.

Reads versions from package metadata and looks for modules without importing them (torch is never
imported), so it answers in about a second on the base install and names what is missing.
"""

from __future__ import annotations

import platform
from pathlib import Path

from edgecls import __version__
from edgecls.bundle import read_manifest, verify_entry, verify_files
from edgecls.errors import EdgeclsError
from edgecls.extras import installed_extras
from edgecls.format_table import FORMATS, ONNXRUNTIME, OPENVINO, TORCH
from edgecls.host import cpu_name, cpu_quota, has_bf16, has_int8_dot, instruction_sets, os_features, usable_cores
from edgecls.spec import ModelSpec

from .classifier import Classifier
from .engines import (ENGINE_DISTRIBUTIONS, ENGINE_EXTRAS, ORT_PROVIDERS, distribution_version, engine_available,
                      engine_version, import_openvino, missing_engine)
from .model_files import EDGE_ENGINES, ModelChoice
from .proof import FAILED, PROVEN, lookup, prove

PACKAGES = ("numpy", "pillow", "onnxruntime", "openvino", "torch", "torchvision")
NO_ENGINE = "no_engine"  # a proof status of doctor's own: the file's engine is not installed here


def diagnose(folder: Path | None) -> dict:
    """The whole report; ``healthy`` is False when the bundle fails its sha256s or the runtime can run none of it."""
    report = {"edgecls": __version__, "python": f"{platform.python_implementation()} {platform.python_version()}",
              "platform": platform.platform(), "os_features": os_features(), "packages": package_versions(),
              "cpu": cpu_report(),
              "engines": engine_report(), "edge_engines": edge_report(), "extras": installed_extras(), "bundle": None}
    if folder is not None:
        report["bundle"] = bundle_report(Path(folder), report["engines"])
    bundle = report["bundle"]
    runtime_runs = bundle and any(set(f["runs_here"]) - {TORCH} and f["proof"]["status"] != FAILED
                                  for f in bundle["formats"])
    report["healthy"] = bundle is None or bool(bundle["sha256_ok"] and runtime_runs)
    return report


# What each of host.os_features() means to a user.
OS_FEATURE_LABELS = {"sighup_reload": "serve reloads on SIGHUP (else POST /v1/reload):",
                     "cpu_affinity": "cores from the affinity mask:", "peak_rss_window": "per-row peak RSS:"}


def package_versions() -> dict[str, str | None]:
    """Installed distributions by metadata (None: not installed); nothing is imported."""
    return {name: distribution_version(name) for name in PACKAGES}


def cpu_report() -> dict:
    return {"name": cpu_name(), "cores": usable_cores(), "cpu_quota": cpu_quota(),
            "instruction_sets": instruction_sets(), "int8_dot_product": has_int8_dot(), "bf16": has_bf16()}


def edge_report() -> dict[str, str]:
    """LiteRT, NCNN, ExecuTorch: the version here, or the one line naming the extra each needs."""
    return {e: f"{e} {distribution_version(ENGINE_DISTRIBUTIONS[e], '?')}" if engine_available(e)
            else missing_engine(e) for e in EDGE_ENGINES}


def engine_report() -> dict:
    """onnxruntime's execution providers and OpenVINO's devices, by the names --device takes."""
    import onnxruntime as ort

    short = {v: k for k, v in ORT_PROVIDERS.items()}
    report = {ONNXRUNTIME: {"version": engine_version(ONNXRUNTIME),
                            "devices": [short.get(p, p) for p in ort.get_available_providers()]},
              OPENVINO: None}
    if engine_available(OPENVINO):
        core = import_openvino().Core()
        report[OPENVINO] = {"version": engine_version(OPENVINO), "devices": list(core.available_devices),
                            "names": {d: _device_name(core, d) for d in core.available_devices}}
    return report


def _device_name(core, device: str) -> str:
    try:
        return str(core.get_property(device, "FULL_DEVICE_NAME"))
    except RuntimeError:
        return device


def bundle_report(folder: Path, engines: dict) -> dict:
    """Each format of the bundle and the engines here that can run it; sha256s and golden vectors."""
    manifest = read_manifest(folder)
    try:
        verify_files(folder, manifest)
        sha256_error = None
    except EdgeclsError as e:
        sha256_error = str(e)
    golden = manifest.get("golden") or {}
    formats = []
    for entry in manifest.get("files", []):
        info = FORMATS.get(entry["format"])
        possible = info.engines if info else ()
        formats.append({"format": entry["format"], "path": entry["path"], "precision": entry.get("precision"),
                        "engines": list(possible), "runs_here": [e for e in possible if engine_available(e)],
                        "proof": file_proof(folder, manifest, entry)})
    return {"path": str(folder), "model": manifest.get("spec", {}).get("model"),
            "exported_by": manifest.get("edgecls_version"), "schema_version": manifest.get("schema_version", 1),
            "sha256_ok": sha256_error is None, "sha256_error": sha256_error,
            "golden_images": golden.get("images", 0), "formats": formats}


def file_proof(folder: Path, manifest: dict, entry: dict) -> dict:
    """Whether the file is proven here, in the engine `auto` runs it with: the cached verdict, else proven now
    (the file opened, its golden images run). ``status``: a `runtime.proof` status, or NO_ENGINE."""
    info = FORMATS.get(entry["format"])
    if info is None or info.engine == TORCH:
        return {"status": "unproven", "reason": "needs PyTorch (the exporter's parity gate proved it)",
                "cached": False}
    if not engine_available(info.engine):
        return {"status": NO_ENGINE, "reason": missing_engine(info.engine) if info.engine in EDGE_ENGINES else
                f"{info.engine} not installed", "cached": False}
    choice = ModelChoice(folder / entry["path"], info.name, info.engine, folder, manifest)
    try:
        verify_entry(folder, entry)
        found = lookup(choice)
        proof = found.verdict or prove(Classifier(choice.open(), ModelSpec.from_dict(manifest["spec"]), choice),
                                       found)
    except EdgeclsError as e:  # a modified file, a missing device, a file the engine cannot load
        return {"status": "unproven", "reason": str(e), "cached": False}
    return {"status": proof.status, "reason": proof.reason, "cached": proof.cached}


def format_report(report: dict) -> str:
    """The report as short aligned lines for a terminal."""
    cpu, ort, ov = report["cpu"], report["engines"][ONNXRUNTIME], report["engines"][OPENVINO]
    packages = ", ".join(f"{k} {v}" for k, v in report["packages"].items() if v)
    absent = [k for k, v in report["packages"].items() if not v]
    lines = [f"edgecls     {report['edgecls']} on {report['python']} ({report['platform']})",
             f"packages    {packages}" + (f"; not installed: {', '.join(absent)}" if absent else ""),
             f"cpu         {cpu['name']}, {cpu['cores']} cores; {', '.join(cpu['instruction_sets']) or 'none of'} "
             f"(int8 dot product: {_yes(cpu['int8_dot_product'])}, bf16: {_yes(cpu['bf16'])})",
             f"onnxruntime {ort['version']}: --device {', '.join(ort['devices'])}",
             f"openvino    {ov['version']}: --device "
             + ", ".join(f"{d} ({ov['names'][d]})" if ov["names"][d] != d else d for d in ov["devices"]) + ", AUTO"
             if ov else
             "openvino    not installed: pip install 'edgecls[openvino]'",
             "edge        " + "; ".join(report["edge_engines"].values()),
             "extras      " + ", ".join(f"{k} {_yes(v)}" for k, v in report["extras"].items()),
             "os          " + ", ".join(f"{OS_FEATURE_LABELS[k]} {_yes(v)}" for k, v in report["os_features"].items())]
    if report["bundle"]:
        lines += _bundle_lines(report["bundle"])
    lines.append("healthy" if report["healthy"] else "NOT healthy: see above")
    return "\n".join(lines)


def _bundle_lines(bundle: dict) -> list[str]:
    sha = "sha256 ok" if bundle["sha256_ok"] else f"sha256 FAILED: {bundle['sha256_error']}"
    golden = f"{bundle['golden_images']} golden images" if bundle["golden_images"] else "no golden vectors"
    lines = [f"bundle      {bundle['path']} ({bundle['model']}, exported by edgecls {bundle['exported_by']}): "
             f"{sha}; {golden}"]
    for f in bundle["formats"]:
        runs = ", ".join(f["runs_here"]) or (f"no: {missing_engine(f['engines'][0])}" if f["engines"] and
                                              f["engines"][0] in ENGINE_EXTRAS else
                                              f"no ({' or '.join(f['engines'])} not installed)")
        lines.append(f"  {f['format']:<16} {f['precision'] or '':<5} runs here on: {runs}; {proof_text(f['proof'])}")
    return lines


def proof_text(proof: dict) -> str:
    cached = " (cached verdict)" if proof["cached"] else ""
    if proof["status"] == PROVEN:
        return f"proven here{cached}"
    if proof["status"] == FAILED:
        return f"FAILS here{cached}: {proof['reason']}"
    if proof["status"] == NO_ENGINE:
        return "engine not installed"
    return f"cannot be proven: {proof['reason']}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
