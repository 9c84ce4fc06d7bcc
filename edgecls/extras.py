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
    # Edge runtimes, each its own small extra. ExecuTorch's Python runtime links libtorch, so its extra brings torch.
    "litert": ("ai_edge_litert",),
    "ncnn": ("ncnn",),
    "executorch": ("executorch", "torch"),
    # The LiteRT converter pulls jax and transformers (~1 GB): only for those who build .tflite files.
    "litert-export": ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"),
    "serve": ("starlette", "uvicorn", "prometheus_client"),
}


def missing_modules(extra: str) -> list[str]:
    """Import names of ``extra`` that cannot be found (nothing is imported)."""
    return missing_of(EXTRAS[extra])


def missing_of(modules: tuple[str, ...]) -> list[str]:
    """Which of these import names cannot be found (nothing is imported)."""
    return [name for name in modules if not _findable(name)]


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken package
        return False


def installed_extras() -> dict[str, bool]:
    return {extra: not missing_modules(extra) for extra in EXTRAS}


def require_extra(extra: str, command: str) -> None:
    """One clear line instead of a ModuleNotFoundError traceback deep inside the command."""
    missing = missing_modules(extra)
    if missing:
        raise UsageError(f"`edgecls {command}` needs the {extra} extra ({', '.join(missing)} missing): "
                         f"pip install 'edgecls[{extra}]'")
