"""Options several commands share, declared once; their help text is written from the engine and format tables.

Each factory returns the ``Annotated`` type a command's parameter takes, so a command names the option and,
where it differs, what its default means or which help panel it sits in.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgecls.format_table import FORMATS, RUNTIME_ENGINES
from edgecls.shipped import DEFAULT_SHIPPED, SHIPPED

# The help panels of a command that takes either an exported model (torch-free) or a checkpoint (needs PyTorch).
RUNTIME_PANEL = "Exported model (torch-free)"


def torch_panel(extra: str) -> str:
    """The panel of the options for a checkpoint, naming the extra the command needs for it."""
    return f"Checkpoint (needs edgecls\\[{extra}])"


def words(names) -> str:
    """``a, b or c``: a list of names in a help text."""
    names = list(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


BACKENDS_HELP = words(RUNTIME_ENGINES)
ENGINE_DEVICE_HELP = "OpenVINO device (CPU, GPU, NPU, AUTO) or onnxruntime provider (cpu, cuda, …) \\[default: CPU]"
TORCH_DEVICE_HELP = "auto (a CUDA GPU, else Apple's mps, else the CPU), cpu, cuda or mps"
BUILD_FORMATS_HELP = words([*(f.name for f in FORMATS.values() if f.int8_of is None), "all"])
SHIPPED_HELP = "a shipped model's name: " + words([f"{DEFAULT_SHIPPED} (the default)",
                                                   *(n for n in SHIPPED if n != DEFAULT_SHIPPED)])
THREADS_DEFAULT = "the cores this process may use, within its CPU quota"


def backend_option(auto: str = "", panel: str | None = None):
    """``--backend``: auto (``auto`` says what it picks for this command) or one of the runtime's engines."""
    return Annotated[str, typer.Option(help=f"auto{f' ({auto})' if auto else ''}, {BACKENDS_HELP}.",
                                       rich_help_panel=panel)]


def device_option(help: str = ENGINE_DEVICE_HELP, panel: str | None = None, show_default: bool = False):
    """``--device``: where the engine (or, for a checkpoint, PyTorch) runs."""
    return Annotated[Optional[str], typer.Option(help=help + ".", show_default=show_default,
                                                 rich_help_panel=panel)]


def threads_option(what: str = "Engine threads", default: str = THREADS_DEFAULT, panel: str | None = None):
    """``--threads``: the default is the thread budget (`edgecls.host.thread_budget`)."""
    return Annotated[Optional[int], typer.Option(help=f"{what} (default: {default}).", show_default=False,
                                                 rich_help_panel=panel)]


AllowFailedProof = Annotated[bool, typer.Option(
    "--allow-failed-proof",
    help="Answer from a model file even where it fails its golden check on this CPU (`edgecls verify` shows "
         "why). Without it such a file named alone is refused (exit 1), and a folder's next file answers instead.")]
