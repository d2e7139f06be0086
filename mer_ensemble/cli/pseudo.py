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
    """Pseudo-label the pool from agreeing runs (per fold, leak-free), retrain, report per round."""
    from mer_ensemble.pseudo import run_pseudo_rounds

    extra = list(set_ or [])
    if threshold is not None:
        extra.append(f"pseudo.threshold={threshold}")
    if use_test:
        extra.append("pseudo.use_test=true")
    exp = open_experiment(config, extra, workdir)
    wd = exp.workdir
    history = run_pseudo_rounds(exp, rounds=rounds, echo=typer.echo)
    best = max(history, key=lambda s: s.cv_score)
    typer.echo(f"best round {best.round}: CV {best.cv_score:.4f}; runs {', '.join(best.runs)}")
    typer.echo(f"round curves: {wd / 'pseudo' / 'rounds.png'}; history: {wd / 'pseudo' / 'history.json'}")
