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
    """Print a known error as one line on stderr and exit 1 (traceback with MER_DEBUG=1).

    Known errors are the project's own (:class:`~mer_ensemble.errors.MerError`) and
    ``OSError`` (a missing file, no permission, a read-only or full disk), which is
    reported with the path it concerns. Anything else is a bug and keeps its traceback;
    that includes an ``EOFError`` (a file read past its end where no reader expected it),
    which click would otherwise swallow into a bare "Aborted.".
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mer_ensemble.errors import MerError

        try:
            return func(*args, **kwargs)
        except (MerError, OSError) as exc:
            if os.environ.get("MER_DEBUG"):
                raise
            typer.echo(f"error: {error_line(exc)}", err=True)
            sys.exit(1)
        except EOFError as exc:
            raise RuntimeError(f"unexpected end of file: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def error_line(exc: BaseException) -> str:
    """One line describing ``exc``: an ``OSError`` as ``<path>: <reason>``, anything else by its message."""
    if isinstance(exc, OSError) and (exc.filename or exc.strerror):
        reason = exc.strerror or type(exc).__name__
        paths = [str(p) for p in (exc.filename, exc.filename2) if p]
        return f"{' -> '.join(paths)}: {reason}" if paths else reason
    return str(exc).strip().replace("\n", " ") or type(exc).__name__


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
