"""Options every command shares: ``-c/--config``, ``--set key=value`` and ``--workdir``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mer_ensemble.config import Config
    from mer_ensemble.experiment import Experiment

ConfigOpt = typer.Option(..., "-c", "--config", help="Experiment config (YAML).", exists=False)
SetOpt = typer.Option(
    None, "--set", help="Override a config key, e.g. --set cv.folds=10 (repeatable; value parsed as YAML)."
)
WorkdirOpt = typer.Option(None, "--workdir", help="Where runs, folds and cache live [default: runs/<config stem>].")


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
