"""``report``: one self-contained HTML page about a workdir."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import SetOpt, WorkdirOpt, open_experiment


@app.command("report")
@friendly_errors
def report_cli(
    workdir: Path | None = WorkdirOpt,
    config: Path | None = typer.Option(
        None, "-c", "--config", help="Experiment config (optional: gives the labels for the diversity heatmaps "
        "and the default workdir)."),
    set_: list[str] | None = SetOpt,
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML path [default: <workdir>/report.html]; refused "
                                    "inside the workdir's own files or over a file that is not a report, unless "
                                    "--force."),
    force: bool = typer.Option(False, "--force", help="Write --out even where it is refused (see --out)."),
) -> None:
    """Write <workdir>/report.html: leaderboard, blend, confusion matrices, per-class F1, diversity, pseudo rounds."""
    from mer_ensemble.errors import ConfigError
    from mer_ensemble.experiment import check_workdir
    from mer_ensemble.outputs import check_output, starts_with
    from mer_ensemble.report.html import write_report

    exp = None
    if config is not None:
        exp = open_experiment(config, set_, workdir)
        workdir = exp.workdir
    elif workdir is None:
        raise ConfigError("report: pass --workdir DIR (or -c CONFIG to use its workdir)")
    assert workdir is not None
    check_workdir(workdir)
    if out is not None:
        check_output("--out", [out], workdir=workdir, ours=starts_with("<title>mer-ensemble report"), force=force,
                     what="a report mer-ensemble wrote")
    path = write_report(workdir, exp, out)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
