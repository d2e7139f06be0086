"""The ``extract`` command: feature folders from local checkpoints (a thin layer over :mod:`mer_ensemble.extract`).

Its extraction flags are the fields of :class:`~mer_ensemble.extract.ExtractOptions`, defined there once.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import dataclass_options, exit_if_items_failed
from mer_ensemble.extract._common import ExtractOptions


@app.command("extract")
@friendly_errors
@dataclass_options(ExtractOptions, into="options")
def extract_cli(
    modality: str = typer.Option(..., "--modality", "-m", help="audio, text or vision."),
    model: Path = typer.Option(..., "--model", help="Local checkpoint folder (transformers save_pretrained layout)."),
    inputs: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help="Audio: folder of wav/flac. Text: CSV with name + text. Vision: folder/<name>/frames.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Feature folder, e.g. ROOT/features/<model>-UTT (or -FRA)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every item instead of skipping finished ones."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
    options: ExtractOptions | None = None,
) -> None:
    """Extract a feature folder (<name>.npy per item + manifest.json) from a local checkpoint.

    Items that fail are listed in <out>/errors.csv; the run goes on and then exits with status 2.
    """
    from mer_ensemble.extract import extract_features

    report = extract_features(modality, model, inputs, out, options, overwrite=overwrite, progress=progress,
                              log=lambda line: typer.echo(line, err=True))
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items() if v not in (None, [], ""))
    typer.echo(
        f"{report.out}: {report.n_written} written, {report.n_skipped} skipped, {report.n_failed} failed "
        f"of {report.n_items} ({report.modality}, {report.level}; {settings}; defaults: {report.defaults_from})"
    )
    exit_if_items_failed(report.n_failed,
                         f"{report.n_failed} of {report.n_items} items failed; see {report.errors_path}")
