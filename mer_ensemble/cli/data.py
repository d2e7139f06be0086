"""Data commands: ``check``."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import ConfigOpt, SetOpt, WorkdirOpt, open_experiment


@app.command("check")
@friendly_errors
def check_cli(
    config: Path = ConfigOpt,
    set_: list[str] | None = SetOpt,
    workdir: Path | None = WorkdirOpt,
) -> None:
    """Validate the config and the data as train-all, blend and pseudo-label will; print a
    summary, write the folds."""
    from mer_ensemble.checks import check_experiment
    from mer_ensemble.data.summary import dataset_problems, summarise
    from mer_ensemble.training.plan import models_summary

    exp = open_experiment(config, set_, workdir)
    typer.echo(summarise(exp.dataset, exp.folds))
    typer.echo(models_summary(exp))
    for line in check_experiment(exp):
        typer.echo(line)
    problems = dataset_problems(exp.dataset, exp.folds)
    for p in problems:
        typer.echo(f"warning: {p}")
    typer.echo(f"ok: config {config} and data are valid ({len(problems)} warning(s)); workdir {exp.workdir}")
