"""Which optional parts of edgecls are installed, so a command can name the extra it lacks.

The base install (`pip install edgecls`) is the torch-free runtime; these are the extras of
pyproject.toml, each with the import names that prove it present.
"""

from __future__ import annotations

import importlib.util

from .errors import UsageError

EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "torchvision", "matplotlib"),
    "export": ("torch", "torchvision", "onnx", "onnxscript", "nncf", "openvino"),
    "openvino": ("openvino",),
    "serve": ("starlette", "uvicorn", "prometheus_client"),
}


def missing_modules(extra: str) -> list[str]:
    """Import names of ``extra`` that cannot be found (nothing is imported)."""
    missing = []
    for name in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken package
            found = False
        if not found:
            missing.append(name)
    return missing


def installed_extras() -> dict[str, bool]:
    return {extra: not missing_modules(extra) for extra in EXTRAS}


def require_extra(extra: str, command: str) -> None:
    """One clear line instead of a ModuleNotFoundError traceback deep inside the command."""
    missing = missing_modules(extra)
    if missing:
        raise UsageError(f"`edgecls {command}` needs the {extra} extra ({', '.join(missing)} missing): "
                         f"pip install 'edgecls[{extra}]'")
