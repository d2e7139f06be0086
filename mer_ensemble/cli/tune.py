"""``tune``: search a run's hyper-parameters with Optuna against its CV score."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import ConfigOpt, SetOpt, WorkdirOpt, open_experiment

#: the first words of a config ``tune --write-config`` wrote (how it recognises one it may replace)
TUNED_MARK = "# written by mer-ensemble tune"


def _read_space(path: Path) -> dict:
    import yaml

    from mer_ensemble.tune import TuneError

    if not path.is_file():
        raise TuneError(f"--space {path}: file not found")
    try:
        space = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TuneError(f"--space {path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(space, dict):
        raise TuneError(f"--space {path}: expected a mapping parameter -> distribution")
    return space


def _format_params(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


@app.command("tune")
@friendly_errors
def tune_cli(
    model_id: str = typer.Argument(..., help="Run id of a models: entry (its name when it has no id)."),
    config: Path = ConfigOpt,
    set_: list[str] | None = SetOpt,
    workdir: Path | None = WorkdirOpt,
    trials: int = typer.Option(20, "--trials", "-n", min=0, help="Trials this process runs (workers add up; "
                               "0 only reports the study, e.g. with --write-config)."),
    storage: str | None = typer.Option(
        None, "--storage", help="Optuna storage URL [default: sqlite:///<workdir>/tune.db]; "
        "postgresql://... to tune from several machines, or journal:PATH."),
    study: str | None = typer.Option(None, "--study", help="Study name [default: <config>-<run id>-<digest>]."),
    space: Path | None = typer.Option(None, "--space", help="YAML search space: param -> {type, low, high, log} "
                                         "or a list of choices [default: the family's]."),
    pruner: str = typer.Option("median", "--pruner", help="median (prune trials below the median after a fold) "
                               "or none."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
    seed: int | None = typer.Option(None, "--seed", help="Sampler seed (leave unset when workers share a study)."),
    write_config: Path | None = typer.Option(
        None, "--write-config", help="Write a copy of the config with a models: entry <id>_tuned (best params); "
        "refused inside the workdir's own files or over a file tune did not write, unless --force."),
    force: bool = typer.Option(False, "--force", help="Write --write-config even where it is refused."),
) -> None:
    """Tune one run's hyper-parameters with Optuna against its CV score; several processes may share a study."""
    from mer_ensemble.outputs import check_output, starts_with
    from mer_ensemble.tune import TuneError, tune_model, tuned_entry, write_tuned_config

    exp = open_experiment(config, set_, workdir)
    cfg = exp.config
    if write_config is not None:  # before any trial: a refused path costs nothing
        check_output("--write-config", [write_config], workdir=exp.workdir, ours=starts_with(TUNED_MARK),
                     force=force, what="a config mer-ensemble tune wrote",
                     data_root=cfg.resolve_path(cfg.data.root))
    result = tune_model(exp, model_id, n_trials=trials, storage=storage, study_name=study,
                        space=_read_space(space) if space else None, pruner=pruner, timeout=timeout, seed=seed)
    typer.echo(f"study {result.study_name} in {result.storage}")
    typer.echo(f"trials: {result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed, "
               f"{result.n_running} running (all workers); this process {result.seconds:.0f}s")
    if result.best_trial is None:
        if write_config:
            raise TuneError(f"--write-config {write_config}: study {result.study_name} has no complete trial yet")
        typer.echo("no complete trial yet")
        return
    for row in result.top:
        sd = f" ± {row['sd']:.4f}" if row["sd"] is not None else ""
        mark = " (config params)" if row["baseline"] else ""
        typer.echo(f"  trial {row['trial']:>4}: CV {row['value']:.4f}{sd}{mark}  {_format_params(row['params'])}")
    typer.echo(f"best: trial {result.best_trial}, CV {result.best_value:.4f} (mean over validation folds); "
               f"params {_format_params(result.best_params)}")
    if write_config:
        spec = next(m for m in cfg.models if m.run_id == model_id)
        entry = tuned_entry(spec, result.best_params)
        header = (f"{TUNED_MARK} {model_id}: study {result.study_name}, best trial "
                  f"{result.best_trial}, CV {result.best_value:.4f}")
        out = write_tuned_config(cfg, write_config, entry, overrides=set_, header=header)
        typer.echo(f"wrote {out} with models entry {entry['id']}")
