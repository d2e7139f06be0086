"""Options every command shares: ``-c/--config``, ``--set key=value`` and ``--workdir``;
:func:`dataclass_options`, which turns a settings dataclass into a command's flags; and
:func:`exit_if_items_failed`, how a command over many items ends when some failed."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from mer_ensemble.config import Config
    from mer_ensemble.experiment import Experiment

ConfigOpt = typer.Option(..., "-c", "--config", help="Experiment config (YAML).", exists=False)
SetOpt = typer.Option(
    None, "--set", help="Override a config key, e.g. --set cv.folds=10 (repeatable; value parsed as YAML)."
)
WorkdirOpt = typer.Option(None, "--workdir", help="Where runs, folds and cache live [default: runs/<config stem>].")

#: exit status when the run finished but some items failed (a fatal error exits with 1)
EXIT_ITEMS_FAILED = 2


def exit_if_items_failed(failed: int, message: str) -> None:
    """End a command over many items (its summary printed): when ``failed`` > 0, print
    ``error: <message>`` on stderr and exit with :data:`EXIT_ITEMS_FAILED`."""
    if failed:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_ITEMS_FAILED)


def load(config: Path, overrides: list[str] | None, workdir: Path | None) -> tuple[Config, Path]:
    """Read the config with overrides and pick the workdir (option > config > runs/<stem>)."""
    from mer_ensemble.config import load_config

    cfg = load_config(config, overrides or [])
    return cfg, Path(workdir) if workdir else cfg.default_workdir()


def open_experiment(config: Path, overrides: list[str] | None, workdir: Path | None) -> Experiment:
    """The config's :class:`~mer_ensemble.experiment.Experiment` (data loaded, folds read or made)."""
    from mer_ensemble.errors import DataError
    from mer_ensemble.experiment import Experiment
    from mer_ensemble.media.features import missing_feature_folders, missing_folders_message

    cfg, wd = load(config, overrides, workdir)
    missing = missing_feature_folders(cfg)
    if missing:  # say how to make them (features -c) before the dataset reader stops at the first
        raise DataError(missing_folders_message(cfg, missing))
    return Experiment.open(cfg, wd)


def dataclass_options(cls: type, into: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one flag per field of the dataclass ``cls`` whose metadata has ``flags``
    (and ``help``, optionally ``cli_type``: the type on the command line), and pass the values
    to it as one ``cls`` instance in its parameter ``into``: the fields are defined once, in
    ``cls``. Flags left unset (None) keep the field's default."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(func)
        field_hints = typing.get_type_hints(cls)
        options = [f for f in dataclasses.fields(cls) if "flags" in f.metadata]
        signature = inspect.signature(func)
        params = [p.replace(annotation=hints.get(p.name, p.annotation))
                  for p in signature.parameters.values() if p.name != into]
        for f in options:
            default = None if isinstance(f.default, tuple) else f.default
            params.append(inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, annotation=f.metadata.get("cli_type") or field_hints[f.name],
                default=typer.Option(default, *f.metadata["flags"], help=f.metadata["help"])))

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in options}
            return func(**kwargs, **{into: cls(**{k: v for k, v in values.items() if v is not None})})

        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
