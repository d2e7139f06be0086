"""The ``extract`` command: feature folders from local checkpoints (a thin layer over :mod:`mer_ensemble.extract`)."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors

#: exit status when the run finished but some items failed (a fatal error exits with 1)
EXIT_ITEMS_FAILED = 2


@app.command("extract")
@friendly_errors
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
    level: str | None = typer.Option(None, "--level", help="utt or frame (default: from the -UTT/-FRA suffix)."),
    layers: str | None = typer.Option(
        None, "--layers", help="Hidden states to sum: last, last4 or -4,-3,-2,-1 (default: last4; see docs/extract.md)."
    ),
    pooling: str | None = typer.Option(None, "--pooling", help="Text -UTT pooling: mean, cls or last (default: mean)."),
    normalize: bool | None = typer.Option(
        None, "--normalize/--no-normalize", help="L2-normalise each stored vector (default: off)."
    ),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Items (audio chunks, texts, frames) per forward."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:<index>."),
    fp16: bool | None = typer.Option(None, "--fp16/--no-fp16", help="Half precision (default: on with CUDA)."),
    chunk_seconds: float = typer.Option(30.0, "--chunk-seconds", help="Audio longer than this is cut into chunks."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Text token limit (default: the model's, ≤ 512)."),
    name_column: str = typer.Option("name", "--name-column", help="CSV column with the item names (text)."),
    text_column: str = typer.Option("text", "--text-column", help="CSV column with the texts (text)."),
    text_replace: list[str] | None = typer.Option(
        None, "--text-replace", help="OLD=NEW applied to every text before tokenizing (repeatable)."
    ),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow the checkpoint's own code."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every item instead of skipping finished ones."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Extract a feature folder (<name>.npy per item + manifest.json) from a local checkpoint.

    Items that fail are listed in <out>/errors.csv; the run goes on and then exits with status 2.
    """
    from mer_ensemble.extract import extract_features

    report = extract_features(
        modality,
        model,
        inputs,
        out,
        level=level,
        layers=layers,
        pooling=pooling,
        normalize=normalize,
        batch_size=batch_size,
        device=device,
        fp16=fp16,
        chunk_seconds=chunk_seconds,
        max_tokens=max_tokens,
        name_column=name_column,
        text_column=text_column,
        text_replace=[_parse_replace(spec) for spec in text_replace or []],
        trust_remote_code=trust_remote_code,
        overwrite=overwrite,
        progress=progress,
        log=lambda line: typer.echo(line, err=True),
    )
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items() if v not in (None, [], ""))
    typer.echo(
        f"{report.out}: {report.n_written} written, {report.n_skipped} skipped, {report.n_failed} failed "
        f"of {report.n_items} ({report.modality}, {report.level}; {settings}; defaults: {report.defaults_from})"
    )
    if not report.ok:
        typer.echo(f"error: {report.n_failed} of {report.n_items} items failed; see {report.errors_path}", err=True)
        raise typer.Exit(EXIT_ITEMS_FAILED)


def _parse_replace(spec: str) -> tuple[str, str]:
    """``"OLD=NEW"`` → ``("OLD", "NEW")`` (split at the first ``=``)."""
    from mer_ensemble.errors import ExtractError

    old, sep, new = spec.partition("=")
    if not sep or not old:
        raise ExtractError(f'--text-replace {spec!r} must look like OLD=NEW, e.g. --text-replace "’=\'"')
    return old, new
