"""Options several commands share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

AllowFailedProof = Annotated[bool, typer.Option(
    "--allow-failed-proof",
    help="Answer from a model file even where it fails its golden check on this CPU (`edgecls verify` shows "
         "why). Without it such a file named alone is refused (exit 1), and a folder's next file answers instead.")]
