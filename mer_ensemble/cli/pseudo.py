"""``pseudo-label``: grow the training set with agreed predictions, round after round."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import ConfigOpt, SetOpt, WorkdirOpt, open_experiment


@app.command("pseudo-label")
@friendly_errors
def pseudo_label_cli(
    config: Path = ConfigOpt,
    set_: list[str] | None = SetOpt,
    workdir: Path | None = WorkdirOpt,
    rounds: int | None = typer.Option(None, "--rounds", min=1, help="Rounds [default: pseudo.rounds]."),
    threshold: float | None = typer.Option(None, "--threshold", help="Min blended probability [pseudo.threshold]."),
    use_test: bool = typer.Option(False, "--use-test-as-pool", help="Also pseudo-label test rows (off by default)."),
) -> None:
    """Pseudo-label the pool from agreeing runs (per fold, leak-free), retrain, report per round; a round is
    kept when its CV gain over the last kept round exceeds its standard error, and blend uses the last kept."""
    from mer_ensemble.pseudo import load_choice, run_pseudo_rounds

    extra = list(set_ or [])
    if threshold is not None:
        extra.append(f"pseudo.threshold={threshold}")
    if use_test:
        extra.append("pseudo.use_test=true")
    exp = open_experiment(config, extra, workdir)
    wd = exp.workdir
    run_pseudo_rounds(exp, rounds=rounds, echo=typer.echo)
    choice = load_choice(wd)
    if choice is not None:
        keys = ", ".join(entry["key"] for entry in choice.runs.values())
        typer.echo(f"blend will use {choice.text()}: runs {keys} ({choice.rule})")
    typer.echo(f"round curves: {wd / 'pseudo' / 'rounds.png'}; history: {wd / 'pseudo' / 'history.json'}")
