"""The `edgecls` command line: one module per command, each a thin layer over library functions.

Command modules import torch (and every other heavy library) inside their functions, so
`edgecls --help` and the torch-free device commands start fast and run on the base install.
A plain command line builds only the command it names: typer inspects every registered
signature up front, which costs more than the model on a cold `edgecls infer`.
"""

import sys
from importlib import import_module
from typing import Annotated

import typer

from edgecls import __version__
from edgecls.errors import EdgeclsError

# command → (module in edgecls.cli, function); the order is `edgecls --help`'s.
COMMANDS = {
    "train": ("train", "train_command"),
    "eval": ("evaluate", "eval_command"),
    "models": ("models", "models_command"),
    "export": ("export", "export_command"),
    "infer": ("infer", "infer_command"),
    "benchmark": ("benchmark", "benchmark_command"),
    "verify": ("verify", "verify_command"),
    "serve": ("serve", "serve_command"),
    "doctor": ("doctor", "doctor_command"),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecls {__version__}")
        raise typer.Exit()


def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """edgecls: train → export → infer."""


def build_app(names=tuple(COMMANDS)) -> typer.Typer:
    app = typer.Typer(
        name="edgecls",
        help="Train CIFAR-style image classifiers, export them with proven parity, run them without PyTorch.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in names:
        module, function = COMMANDS[name]
        app.command(name)(getattr(import_module(f"{__name__}.{module}"), function))
    app.callback()(root)
    return app


def __getattr__(name: str):
    """``edgecls.cli.app``: the whole command line, for embedding and tests."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    named = sys.argv[1] if len(sys.argv) > 1 else None
    app = build_app((named,) if named in COMMANDS else tuple(COMMANDS))
    try:
        app()
    except EdgeclsError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
