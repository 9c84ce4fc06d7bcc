"""The `edgecls` command line: one module per command, each a thin layer over library functions.

Command modules import torch (and every other heavy library) inside their functions, so
`edgecls --help` and the torch-free device commands start fast and run on the base install.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from edgecls import __version__
from edgecls.errors import EdgeclsError

from . import benchmark, doctor, evaluate, export, infer, models, serve, train, verify

app = typer.Typer(
    name="edgecls",
    help="Train CIFAR-style image classifiers, export them with proven parity, run them without PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(train.train_command)
app.command("eval")(evaluate.eval_command)
app.command("models")(models.models_command)
app.command("export")(export.export_command)
app.command("infer")(infer.infer_command)
app.command("benchmark")(benchmark.benchmark_command)
app.command("verify")(verify.verify_command)
app.command("serve")(serve.serve_command)
app.command("doctor")(doctor.doctor_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecls {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """edgecls: train → export → infer."""


def main() -> None:
    try:
        app()
    except EdgeclsError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
