"""The ``corrupt`` command: noisy copies of raw media, as MER-NOISE's test set was made
(a thin layer over :mod:`mer_ensemble.corrupt`)."""

from __future__ import annotations

from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors


@app.command("corrupt")
@friendly_errors
def corrupt_cli(
    inputs: Path = typer.Option(
        ..., "--input", "-i",
        help="Folder of videos (mp4, avi, mkv, ...), audio files (wav/flac/ogg), images or frame folders.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the noisy copies (same names)."),
    noise_dir: Path | None = typer.Option(
        None, "--noise-dir", help="Folder of noise or speech files to mix in [default: other utterances of --input]."
    ),
    snr_min: float = typer.Option(5.0, "--snr-min", help="Lowest SNR in dB."),
    snr_max: float = typer.Option(10.0, "--snr-max", help="Highest SNR in dB."),
    snr_draw: str = typer.Option("integers", "--snr-draw",
                                 help="integers: a whole dB of min..max (the organisers'); uniform: any real."),
    blur: str = typer.Option("1,2,4", "--blur", help="Blur factors to draw from (down- then up-sample)."),
    blur_method: str = typer.Option("pyramid", "--blur-method",
                                    help="pyramid: cv2.pyrDown/pyrUp (the organisers'); resize: bilinear."),
    seed: int = typer.Option(0, "--seed", help="Seed of every draw (with each item's name)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Make noisy copies as MER-NOISE's test set was made: audio (and videos' audio tracks) mixed with
    other speech or noise at an SNR of 5..10 dB, images, frame folders and videos' frames blurred by
    cv2.pyrDown/pyrUp with a factor from {1, 2, 4}; seeded, recorded in <out>/corrupt-manifest.csv."""
    from mer_ensemble.corrupt import corrupt_media
    from mer_ensemble.errors import DataError

    try:
        factors = [int(f) for f in blur.split(",") if f.strip()]
    except ValueError:
        raise DataError(f"--blur {blur!r}: expected integers separated by commas, e.g. 1,2,4") from None
    report = corrupt_media(inputs, out, noise_dir=noise_dir, snr_range=(snr_min, snr_max), blur_factors=factors,
                           snr_draw=snr_draw, blur_method=blur_method, seed=seed, overwrite=overwrite,
                           progress=progress)
    counts = ", ".join(f"{n} {kind}" for kind, n in report.counts().items())
    typer.echo(f"{report.out}: {counts} written; manifest {report.manifest}")
