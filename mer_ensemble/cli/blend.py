"""Blending and submission commands: ``blend``, ``validate-submission``, ``score``."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import ConfigOpt, SetOpt, WorkdirOpt, load, open_experiment


def _weights_text(desc: dict, limit: int = 4) -> str:
    runs = desc.get("runs", [])
    weights = desc.get("weights")
    if desc.get("members"):
        return "mean of " + ", ".join(desc["members"])
    if not weights:
        return {"stacking": "meta-model", "vote": "equal votes"}.get(desc.get("blender"), "—")
    pairs = sorted(zip(runs, weights, strict=False), key=lambda p: -p[1])
    shown = [f"{r} {w:.2f}" for r, w in pairs if w > 0][:limit]
    rest = sum(1 for _, w in pairs if w > 0) - len(shown)
    return ", ".join(shown) + (f", +{rest} more" if rest > 0 else "")


def render_blend_table(result) -> str:  # noqa: ANN001 - BlendResult
    """The blend table: every method's in-sample and nested score per target, the chosen one marked."""
    from io import StringIO

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from mer_ensemble.ensemble import BLENDERS

    table = Table(
        title="blends (in-sample: fitted and scored on the same OOF rows; nested: fitted on K-1 folds, "
        "scored on the held-out fold)"
    )
    for col in ("target", "method", "in-sample", "nested", "nested fold sd", "weights", "chosen"):
        table.add_column(col, justify="right" if col in ("in-sample", "nested", "nested fold sd") else "left")
    for target, tb in result.targets.items():
        for m in tb.methods:
            table.add_row(
                target,
                BLENDERS[m.method].label if m.method in BLENDERS else {"ties": "blend of ties"}.get(m.method, m.method),
                f"{m.in_sample:.4f}",
                f"{m.nested:.4f}",
                f"{np.std(m.nested_folds, ddof=1):.4f}",
                _weights_text(m.description),
                "◀" if m.method == tb.chosen else "",
            )
    buf = StringIO()
    Console(file=buf, width=220, force_terminal=False).print(table)
    return buf.getvalue().rstrip()


@app.command("blend")
@friendly_errors
def blend_cli(
    config: Path = ConfigOpt,
    set_: list[str] | None = SetOpt,
    workdir: Path | None = WorkdirOpt,
    method: str | None = typer.Option(
        None, "--method",
        help="A blender to use, or a choice rule (auto, ties, simplest, highest) [default: blend.choose].",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Submission path [default: submissions/<config>-<method>-<time>.csv]. Refused inside "
        "the workdir's own files and over a file that is not a submission mer-ensemble wrote, unless --force."
    ),
    zip_: bool = typer.Option(
        False, "--zip", help="Also write <stem>.zip holding the CSV as submission.csv [default: blend.zip]."
    ),
    force: bool = typer.Option(False, "--force", help="Write --out even where it is refused (see --out)."),
    require_all: bool = typer.Option(
        False, "--require-all", help="Refuse to blend while a configured run is missing from the store or "
        "stored with fewer seeds than configured (without it, a warning names them)."),
) -> None:
    """Blend the stored runs per target, report honest scores, write a validated submission."""
    from mer_ensemble.blend import blend_runs, check_out, save_blend, unfinished_runs
    from mer_ensemble.errors import BlendError
    from mer_ensemble.experiment import check_workdir
    from mer_ensemble.pseudo import round_records
    from mer_ensemble.store import load_runs, require_runs

    set_ = [*(set_ or []), *(["blend.zip=true"] if zip_ else [])]
    wd = load(config, set_, workdir)[1]
    check_workdir(wd)
    require_runs(wd)
    exp = open_experiment(config, set_, workdir)
    if out is not None:
        check_out(exp, out, force=force)  # before any work: a refused path costs nothing
    records = load_runs(exp.workdir)
    unfinished = unfinished_runs(exp, records)
    if unfinished:
        listed = ", ".join(unfinished)
        if require_all:
            raise BlendError(f"--require-all: {len(unfinished)} configured run(s) missing or partial: {listed}; "
                             "run train-all to finish them")
        typer.echo(f"warning: {len(unfinished)} configured run(s) missing or partial, blending the "
                   f"{len(records)} stored: {listed}; run train-all to finish them", err=True)
    if exp.config.blend.runs is None:  # the runs of the pseudo-label round kept, else those without pseudo-labels
        records, which = round_records(exp.workdir, records)
        if which:
            typer.echo(f"runs: {which}")
    result = blend_runs(exp, records, choose=method)
    typer.echo(render_blend_table(result))
    for target, tb in result.targets.items():
        for method, why in tb.skipped.items():
            reason = why if why.startswith(f"{method}:") else f"{method}: {why}"
            typer.echo(f"skipped ({target}): {reason}")
        if tb.choice is not None:
            typer.echo(f"rule ({target}): {tb.choice.text()}")
    chosen = {t: tb.chosen for t, tb in result.targets.items()}
    typer.echo(
        f"chosen: {', '.join(f'{t} {m}' for t, m in chosen.items())}; combined score estimate "
        f"{result.combined_nested:.4f} (nested CV over the {exp.folds.n_folds} folds; "
        f"in-sample {result.combined_in_sample:.4f})"
    )
    typer.echo(str(save_blend(exp, result, out, force=force)))


@app.command("validate-submission")
@friendly_errors
def validate_submission_cli(
    file: Path = typer.Argument(..., help="Submission CSV to check."),
    config: Path = ConfigOpt,
    set_: list[str] | None = SetOpt,
    workdir: Path | None = WorkdirOpt,
) -> None:
    """Check a submission CSV against the config's task format and test set."""
    task, frame = _validated(file, config, set_, workdir)
    typer.echo(f"ok: {file} is a valid {task.name} submission ({len(frame)} rows)")


def _validated(file: Path, config: Path, set_: list[str] | None, workdir: Path | None):  # noqa: ANN202
    """The config's task and the submission ``file`` checked against it and the test names
    (read from the label files alone, no features)."""
    from mer_ensemble.data.load import load_table, resolve_data_task
    from mer_ensemble.experiment import data_settings
    from mer_ensemble.submission import validate_submission

    settings = data_settings(load(config, set_, workdir)[0])
    table = load_table(settings)
    task = resolve_data_task(settings, table)
    return task, validate_submission(file, task, table.loc[table["split"] == "test", "name"].tolist())


@app.command("score")
@friendly_errors
def score_cli(
    file: Path = typer.Argument(..., help="Submission CSV to score."),
    truth: Path = typer.Option(..., "--truth", help="Truth CSV (name + target columns); for scoring only."),
    config: Path = ConfigOpt,
    set_: list[str] | None = SetOpt,
    workdir: Path | None = WorkdirOpt,
) -> None:
    """Score a submission against a truth file (never used by training)."""
    from mer_ensemble.submission import score_submission

    task, _ = _validated(file, config, set_, workdir)
    scores = score_submission(file, truth, task)
    for key, value in scores.items():
        typer.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
