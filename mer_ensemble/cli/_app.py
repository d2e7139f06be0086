"""The typer application and the error handling shared by every command."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

app = typer.Typer(
    name="mer-ensemble",
    help="Train, blend, pseudo-label and submit for multimodal emotion/intent competitions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Print a known error as one line on stderr and exit 1 (traceback with MER_DEBUG=1)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mer_ensemble.errors import MerError

        try:
            return func(*args, **kwargs)
        except (MerError, FileNotFoundError, KeyError, ValueError) as exc:
            if os.environ.get("MER_DEBUG"):
                raise
            msg = str(exc).strip().replace("\n", " ") or exc.__class__.__name__
            if isinstance(exc, KeyError) and msg.startswith(("'", '"')):
                msg = msg[1:-1]
            typer.echo(f"error: {msg}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from mer_ensemble import __version__

        typer.echo(f"mer-ensemble {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Train, blend, pseudo-label and submit for multimodal emotion/intent competitions.

    Errors are printed as one line; set MER_DEBUG=1 for the traceback.
    """
