"""Media commands: ``prepare`` (videos -> audio, face crops, scene frames), ``transcribe``,
``denoise`` and ``features`` (a thin layer over :mod:`mer_ensemble.media`)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors
from mer_ensemble.cli._common import exit_if_items_failed


def _finish(report, verb: str) -> None:  # noqa: ANN001 - a FolderReport
    """Print a folder command's summary; exit with status 2 when some file failed."""
    typer.echo(report.summary(verb))
    exit_if_items_failed(len(report.failures), f"{len(report.failures)} file(s) failed; see {report.errors_path}")


@app.command("prepare")
@friendly_errors
def prepare_cli(
    inputs: Path = typer.Option(..., "--input", "-i", help="Folder of videos (mp4, avi, mkv, webm, ...; recursive)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: audio/, faces/, frames/, prepare-manifest.csv."),
    fps: float = typer.Option(5.0, "--fps", help="Frames per second searched for a face (0: every frame)."),
    jobs: int = typer.Option(os.cpu_count() or 1, "--jobs", "-j", help="Videos prepared in parallel processes."),
    face_size: int = typer.Option(112, "--face-size", help="Side of the square face crops in pixels."),
    margin: float = typer.Option(0.2, "--margin", help="Margin around the face box, a fraction of its side."),
    detector: str = typer.Option("dlib+haar", "--detector", help="Face detector: dlib+haar, dlib or haar."),
    min_face: int = typer.Option(40, "--min-face", help="Smallest face searched, in pixels (of the detection frame)."),
    max_side: int = typer.Option(640, "--max-side", help="Frames larger than this are scaled down for detection."),
    scene_every: int = typer.Option(0, "--scene-every", help="Also keep every N-th frame in frames/ (0: none)."),
    faces: bool = typer.Option(True, "--faces/--no-faces", help="Detect and crop faces."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every video instead of skipping finished ones."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Decode every video into a 16 kHz mono wav, face crops (+ boxes.csv) and optional scene frames.

    A video that cannot be decoded, has no audio or no face is a row of prepare-manifest.csv,
    never a stop; a rerun skips the videos already done. Exits with status 2 when some failed.
    """
    from mer_ensemble.media import PrepareOptions, prepare_videos

    options = PrepareOptions(fps=fps, face_size=face_size, margin=margin, detector=detector, min_face=min_face,
                             max_side=max_side, scene_every=scene_every, faces=faces)
    report = prepare_videos(inputs, out, options, jobs=jobs, overwrite=overwrite, progress=progress,
                            log=lambda line: typer.echo(line, err=True))
    counts = report.counts
    typer.echo(
        f"{report.out}: {counts['videos']} videos ({report.n_done} prepared now, {report.n_skipped} skipped): "
        f"{counts['ok']} ok, {counts['no_audio']} without audio, {counts['silent']} silent, "
        f"{counts['no_face']} without a face, {counts['failed']} failed; {counts['faces']} face crops "
        f"in {report.seconds:.1f}s; manifest {report.manifest}"
    )
    exit_if_items_failed(report.n_failed, f"{report.n_failed} video(s) failed; see {report.manifest}")


@app.command("transcribe")
@friendly_errors
def transcribe_cli(
    inputs: Path = typer.Option(..., "--input", "-i", help="Folder of audio files (e.g. prepare's audio/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Transcript CSV to write (name,sentence)."),
    model: Path = typer.Option(..., "--model", help="Local Whisper checkpoint folder (model + processor)."),
    language: str | None = typer.Option(None, "--language", help="Spoken language, e.g. en, zh, de (default: detect)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="30 s chunks per generate call."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:<index>."),
    fp16: bool | None = typer.Option(None, "--fp16/--no-fp16", help="Half precision (default: on with CUDA)."),
    max_new_tokens: int = typer.Option(440, "--max-new-tokens", help="Tokens generated per 30 s chunk at most."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every file instead of skipping transcribed ones."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Speech recognition with a local Whisper checkpoint into a name,sentence CSV (MEIJU's transcription.csv).

    Long audio is transcribed in 30 s chunks; a rerun skips the names the CSV holds.
    Files that fail are listed in <out stem>-errors.csv and the command exits with status 2.
    """
    from mer_ensemble.media.transcribe import transcribe_folder

    report = transcribe_folder(inputs, model, out, language=language, batch_size=batch_size, device=device,
                               fp16=fp16, max_new_tokens=max_new_tokens, overwrite=overwrite, progress=progress,
                               log=lambda line: typer.echo(line, err=True))
    _finish(report, "transcribed")


@app.command("denoise")
@friendly_errors
def denoise_cli(
    inputs: Path = typer.Option(..., "--input", "-i", help="Folder of audio files (e.g. prepare's audio/)."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the enhanced files (same names)."),
    method: str = typer.Option("spectral", "--method", help="spectral: noisereduce spectral gating (no weights)."),
    model: Path | None = typer.Option(None, "--model", help="Enhancement checkpoint folder (enhancer.json + model)."),
    strength: float = typer.Option(1.0, "--strength", help="spectral: fraction of the estimated noise removed."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:<index> (checkpoints)."),
    fp16: bool | None = typer.Option(None, "--fp16/--no-fp16", help="float16 autocast (default: on with CUDA)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every file instead of skipping finished ones."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Speech enhancement before extraction: same names, length, rate and format out as in.

    --method spectral needs no weights; --model reads a local enhancement checkpoint folder
    (enhancer.json + a TorchScript or torch.export model; see docs/media.md).
    """
    from mer_ensemble.media.denoise import denoise_folder

    report = denoise_folder(inputs, out, method=method, model=model, strength=strength, device=device, fp16=fp16,
                            overwrite=overwrite, progress=progress, log=lambda line: typer.echo(line, err=True))
    _finish(report, "denoised")


@app.command("features")
@friendly_errors
def features_cli(
    config: Path = typer.Option(..., "-c", "--config", help="Experiment config (YAML) with a media: section."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a config key (repeatable)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Videos prepared in parallel [default: media.jobs]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars on stderr."),
) -> None:
    """Make every feature folder of media.extractors from the videos: prepare, denoise and
    transcribe where asked, extract; folders already complete are skipped.

    Exits with status 2 when some item failed in an extractor (see its errors.csv).
    """
    from mer_ensemble.config import load_config
    from mer_ensemble.media.features import build_features

    cfg = load_config(config, set_ or [])
    results = build_features(cfg, jobs=jobs, progress=progress, log=lambda line: typer.echo(line, err=True))
    failed = 0
    for result in results:
        report = result.report
        failed += report.n_failed
        typer.echo(f"{result.feature}: {report.n_written} written, {report.n_skipped} skipped, {report.n_failed} "
                   f"failed, {len(result.filled)} filled with zeros ({report.out})")
    exit_if_items_failed(failed, f"{failed} item(s) failed; see the errors.csv of the folders above")
