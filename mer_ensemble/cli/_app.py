"""The typer application and the error handling shared by every command."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

#: the exit status after Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is a click ``name`` (typer ships click under its own name in some versions)."""
    return any(c.__name__ == name for c in type(exc).__mro__)


class _OneLineErrors(TyperGroup):
    """The command group, with usage errors (an option value out of range, a missing option, an
    unknown command) printed as one ``error:`` line like every other error, exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ANN001,ANN003,ANN201
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            status = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Exception as exc:
            if _is(exc, "NoArgsIsHelpError"):
                exc.show()
            elif _is(exc, "ClickException"):
                ctx = getattr(exc, "ctx", None)
                hint = f" (see {ctx.command_path} --help)" if _is(exc, "UsageError") and ctx is not None else ""
                message = " ".join(exc.format_message().split())
                typer.echo(f"error: {message}{hint}", err=True)
            elif _is(exc, "Abort"):
                typer.echo(f"error: {INTERRUPTED}", err=True)
                sys.exit(EXIT_INTERRUPTED)
            else:
                raise
            sys.exit(exc.exit_code)
        sys.exit(status if isinstance(status, int) else 0)


app = typer.Typer(
    name="mer-ensemble",
    help="Train, blend, pseudo-label and submit for multimodal emotion/intent competitions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OneLineErrors,
)

#: what Ctrl-C leaves behind, whatever the command was doing
INTERRUPTED = ("interrupted (Ctrl-C): finished work is kept (trained jobs, stored runs, the feature cache, written "
               "files) and nothing half-written is left; running the same command again continues from it")

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
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return func(*args, **kwargs)
        except (MerError, OSError) as exc:
            if os.environ.get("MER_DEBUG"):
                raise
            typer.echo(f"error: {error_line(exc)}", err=True)
            sys.exit(1)
        except EOFError as exc:
            raise RuntimeError(f"unexpected end of file: {exc}") from exc
        except KeyboardInterrupt:
            if os.environ.get("MER_DEBUG"):
                raise
            typer.echo(f"\nerror: {INTERRUPTED}", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """A :class:`~mer_ensemble.errors.MerWarning` as one ``warning:`` line on stderr; others as Python shows them."""
    from mer_ensemble.errors import MerWarning

    if issubclass(category, MerWarning):
        typer.echo(f"warning: {str(message).strip()}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


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
