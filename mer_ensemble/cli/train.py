"""Training commands: ``train-all``, ``leaderboard``, ``models``."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import ConfigOpt, SetOpt, WorkdirOpt, open_experiment


@app.command("train-all")
@friendly_errors
def train_all_cli(
    config: Path = ConfigOpt,
    set_: list[str] | None = SetOpt,
    workdir: Path | None = WorkdirOpt,
    models: str | None = typer.Option(None, "--models", help="Comma-separated run ids to train (default: all)."),
    jobs: str | None = typer.Option(None, "--jobs", "-j",
                                    help="Parallel jobs, a number or auto [default: train.jobs, auto]."),
    time_limit: str | None = typer.Option(
        None, "--time-limit",
        help="Budget for the whole command, e.g. 20m, 1h30m, 900 (seconds) [default: train.time_limit]: "
             "runs are ordered by expected value per second, only what fits is started."),
    backend: str | None = typer.Option(None, "--backend", help="local (joblib) or dask."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (with --backend dask)."),
) -> None:
    """Train every model of the config across folds and seeds; store OOF, test and pool predictions."""
    import time

    from mer_ensemble.config import parse_duration
    from mer_ensemble.report.leaderboard import render_leaderboard
    from mer_ensemble.training.runner import load_status, render_status, train_all

    started = time.monotonic()
    limit = parse_duration(time_limit, "--time-limit") if time_limit else None
    n_jobs = _parse_jobs(jobs) if jobs else None
    extra = list(set_ or [])
    if backend:
        extra.append(f"train.backend={backend}")
    if scheduler:
        extra.append(f"train.scheduler={scheduler}")
    exp = open_experiment(config, extra, workdir)
    run_ids = models.split(",") if models else None
    limit = limit or exp.config.train.time_limit
    records = train_all(exp, run_ids=run_ids, n_jobs=n_jobs, time_limit=limit, started=started)
    if records:
        typer.echo(render_leaderboard(records))
    for line in cut_inputs(records):
        typer.echo(line)
    notes = render_status(load_status(exp.workdir))
    if notes:
        typer.echo(notes)
    typer.echo(f"stored {len(records)} run(s) in {exp.workdir / 'store'}")


#: counts a fold model records in ``selected_`` when it cut raw inputs to its limits
CUT_COUNTS = {"truncated_texts": "training texts truncated", "truncated_predicted": "predicted texts truncated",
              "cropped_clips": "training clips cut", "cropped_predicted": "predicted clips cut"}


def cut_inputs(records: list) -> list[str]:  # noqa: ANN001 - RunRecord
    """One line per run whose fold models cut raw inputs to the model's limits (texts beyond its
    token limit, clips beyond its seconds), summed over its fold jobs; nothing when none did."""
    lines = []
    for record in records:
        totals = {key: 0 for key in CUT_COUNTS}
        for chosen in (record.manifest.get("selected") or {}).values():
            for key in totals:
                value = chosen.get(key) if isinstance(chosen, dict) else None
                totals[key] += int(value) if isinstance(value, (int, float)) else 0
        parts = [f"{n} {CUT_COUNTS[key]}" for key, n in totals.items() if n]
        if parts:
            lines.append(f"note: {record.key}: {', '.join(parts)} (summed over its fold jobs; see max_tokens / "
                         "max_seconds)")
    return lines


def _parse_jobs(text: str) -> int | str:
    from mer_ensemble.errors import ConfigError

    value = text.strip().lower()
    if value == "auto":
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ConfigError(f"--jobs: {text!r} is not a number >= 1 or auto")


@app.command("leaderboard")
@friendly_errors
def leaderboard_cli(
    workdir: Path = typer.Option(..., "--workdir", help="The workdir of a train-all."),
) -> None:
    """Print the leaderboard of the runs stored in a workdir."""
    from mer_ensemble.experiment import check_workdir
    from mer_ensemble.report.leaderboard import render_leaderboard
    from mer_ensemble.store import load_runs, require_runs
    from mer_ensemble.training.runner import load_status, render_status

    check_workdir(workdir)
    records = load_runs(workdir, require_runs(workdir))
    typer.echo(render_leaderboard(records))
    notes = render_status(load_status(workdir))
    if notes:
        typer.echo(notes)


@app.command("models")
@friendly_errors
def models_cli() -> None:
    """List the registered model families and their default parameters."""
    from mer_ensemble.models import list_models, model_defaults

    for name in list_models():
        params = ", ".join(f"{k}={v!r}" for k, v in model_defaults(name).items())
        typer.echo(f"{name}: {params}")
