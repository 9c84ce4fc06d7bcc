"""The `edgecls` command line: thin commands over library functions.

Command modules import torch inside their functions, so `edgecls --help` and the torch-free
runtime commands start fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from edgecls import __version__, cli_bench, cli_export, cli_infer, cli_train
from edgecls.errors import EdgeclsError

app = typer.Typer(
    name="edgecls",
    help="Train CIFAR-style image classifiers, export them with proven parity, run them without PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(cli_train.train_command)
app.command("eval")(cli_train.eval_command)
app.command("models")(cli_train.models_command)
app.command("export")(cli_export.export_command)
app.command("infer")(cli_infer.infer_command)
app.command("benchmark")(cli_bench.benchmark_command)


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
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
