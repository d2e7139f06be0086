"""``mer-ensemble features -c CONFIG``: every feature folder of the config's ``media:`` section,
made from the organisers' videos in one command.

1. ``prepare`` the videos of ``media.videos`` into ``media.work`` (videos done before are skipped);
2. per extractor, where asked: ``denoise`` the audio (``work/audio-<method>/``), ``transcribe``
   it (``work/transcripts/<checkpoint>[-<method>].csv``);
3. ``extract`` into ``<feature root>/<feature>`` (the first of ``data.feature_root``, default
   ``<data.root>/features``): audio from the wavs, text from the transcripts (or ``input``),
   vision from prepare's face folders as they are. Folders resume, so complete ones cost only
   a listing.

A video without input for a modality (no audio track, no face, an empty transcript, not
decodable) gets a zero vector there with ``missing: zeros`` (the default), so that every
video of the competition has a row; the names are in the folder's ``manifest.json``
(``filled_with_zeros``). ``missing: skip`` leaves them out.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.config import Config, ExtractorSpec
from mer_ensemble.errors import ConfigError, DataError, ExtractError

__all__ = ["FeatureResult", "build_features", "media_paths", "missing_feature_folders"]

#: extract options a config may not set (the pipeline sets them)
_RESERVED = {"modality", "model", "inputs", "out", "progress", "log", "names"}


@dataclass
class FeatureResult:
    """One feature folder: the extraction report and the names given zeros."""

    feature: str
    report: Any
    filled: list[str] = field(default_factory=list)


def _under(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def media_paths(cfg: Config) -> tuple[Path, Path, Path]:
    """``(videos, work, feature root)`` of a config with a ``media:`` section."""
    from mer_ensemble.experiment import feature_roots

    if cfg.media is None:
        raise ConfigError(f"{cfg.source}: no media: section; add one (videos, work, extractors) to make features "
                          "from the videos, see docs/media.md")
    root = cfg.resolve_path(cfg.data.root)
    return _under(root, cfg.media.videos), _under(root, cfg.media.work), feature_roots(cfg)[0]


def missing_feature_folders(cfg: Config) -> list[str]:
    """The features of ``data.features`` that no feature root holds a folder for."""
    from mer_ensemble.experiment import feature_roots

    roots = feature_roots(cfg)
    return [f for names in cfg.data.features.values() for f in names if not any((r / f).is_dir() for r in roots)]


def missing_folders_message(cfg: Config, missing: list[str]) -> str:
    """The error for feature folders that do not exist, saying how to make them."""
    from mer_ensemble.experiment import feature_roots

    roots = feature_roots(cfg)
    where = ", ".join(str(r) for r in roots)
    absent = [r for r in roots if not r.is_dir()]
    if absent and cfg.data.feature_root:
        where += (f"; data.feature_root {', '.join(str(r) for r in absent)} does not exist (relative paths are "
                  "resolved from data.root)")
    made = [f for f in missing if cfg.media is not None and f in cfg.media.extractors]
    if made and len(made) == len(missing):
        how = f"`mer-ensemble features -c {cfg.source}` makes {'it' if len(made) == 1 else 'them'} from the videos"
    elif cfg.media is not None:
        others = [f for f in missing if f not in made]
        how = f"add {', '.join(others)} to media.extractors so that `mer-ensemble features -c CONFIG` makes them"
    else:
        how = ("add a media: section (videos, extractors) and run `mer-ensemble features -c CONFIG` to make them "
               "from the videos, or extract them with `mer-ensemble extract`")
    return f"feature folder(s) {', '.join(missing)} not found (looked in {where}); {how}"


def _extract_kwargs(feature: str, spec: ExtractorSpec) -> dict[str, Any]:
    from mer_ensemble.extract import extract_features

    allowed = set(inspect.signature(extract_features).parameters) - _RESERVED
    unknown = sorted(set(spec.options) - allowed)
    if unknown:
        raise ConfigError(f"media.extractors.{feature}.options: unknown option(s) {unknown}; "
                          f"expected some of {sorted(allowed)}")
    return dict(spec.options)


def _model(cfg: Config, value: str) -> str:
    from mer_ensemble.extract.opensmile import is_opensmile

    return value if is_opensmile(value) else str(cfg.resolve_path(value))


def build_features(
    cfg: Config,
    *,
    jobs: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[FeatureResult]:
    """Prepare, denoise, transcribe and extract every ``media.extractors`` folder (module docstring)."""
    from mer_ensemble.media.prepare import PrepareOptions, prepare_videos

    videos, work, feature_root = media_paths(cfg)
    media = cfg.media
    assert media is not None
    if not media.extractors:
        raise ConfigError(f"{cfg.source}: media.extractors is empty; name the feature folders to make")
    for feature, spec in media.extractors.items():
        _extract_kwargs(feature, spec)
    try:
        options = PrepareOptions(**media.prepare)
    except TypeError:
        known = sorted(inspect.signature(PrepareOptions).parameters)
        raise ConfigError(f"media.prepare: unknown option(s) {sorted(set(media.prepare) - set(known))}; "
                          f"expected some of {known}") from None
    prepared = prepare_videos(videos, work, options, jobs=jobs or media.jobs or os.cpu_count() or 1,
                              progress=progress, log=log)
    from mer_ensemble.names import name_problem

    names = [row["name"] for row in prepared.rows if name_problem(row["name"]) is None
             and not row["error"].startswith(("duplicate name", "invalid name"))]
    results = []
    for feature, spec in media.extractors.items():
        inputs, have = _inputs(cfg, spec, work, names, progress, log)
        from mer_ensemble.extract import extract_features

        kwargs = _extract_kwargs(feature, spec)
        if spec.transcribe:  # prepare's transcripts are name,sentence like MEIJU's transcription.csv
            kwargs = {"name_column": "name", "text_column": "sentence", **kwargs}
        report = extract_features(spec.modality, _model(cfg, spec.model), inputs, feature_root / feature,
                                  names=have, progress=progress, log=log, **kwargs)
        filled = _fill_zeros(feature_root / feature, names) if spec.missing == "zeros" else []
        results.append(FeatureResult(feature, report, filled))
    return results


def _inputs(cfg: Config, spec: ExtractorSpec, work: Path, names: list[str], progress: bool,
            log: Callable[[str], None] | None) -> tuple[Path, list[str]]:
    """The extractor's input (folder or CSV) and the names that have input there."""
    if spec.modality == "vision":
        faces = work / "faces"
        have = [n for n in names if (faces / n).is_dir() and any((faces / n).glob("*.jpg"))]
        return faces, have
    audio = work / "audio"
    tag = ""
    if spec.denoise:
        audio, tag = _denoised(cfg, spec.denoise, work, progress, log)
    if spec.modality == "audio":
        return audio, [n for n in names if (audio / f"{n}.wav").is_file()]
    if spec.input:
        table = cfg.resolve_path(cfg.data.root) / spec.input if not Path(spec.input).is_absolute() else Path(
            spec.input)
        return table, names
    from mer_ensemble.media.transcribe import read_transcripts, transcribe_folder

    checkpoint = cfg.resolve_path(str(spec.transcribe))
    csv_path = work / "transcripts" / f"{checkpoint.name}{'-' + tag if tag else ''}.csv"
    if any(audio.glob("*.wav")):
        report = transcribe_folder(audio, checkpoint, csv_path, language=spec.language, progress=progress, log=log)
        if not report.ok:
            raise ExtractError(f"transcribing {audio} failed for {len(report.failures)} file(s); "
                               f"see {report.errors_path}")
    texts = read_transcripts(csv_path)
    return csv_path, [n for n in names if texts.get(n, "").strip()]


def _denoised(cfg: Config, method: str, work: Path, progress: bool,
              log: Callable[[str], None] | None) -> tuple[Path, str]:
    """The denoised copy of ``work/audio`` (made when missing or incomplete) and its tag."""
    from mer_ensemble.media.denoise import denoise_folder

    model = None if method == "spectral" else cfg.resolve_path(method)
    tag = "spectral" if model is None else model.name
    out = work / f"audio-{tag}"
    if any((work / "audio").glob("*.wav")):
        report = denoise_folder(work / "audio", out, method="spectral", model=model, progress=progress, log=log)
        if not report.ok:
            raise ExtractError(f"denoising {work / 'audio'} failed for {len(report.failures)} file(s); "
                               f"see {report.errors_path}")
    return out, tag


def _fill_zeros(out: Path, names: list[str]) -> list[str]:
    """Write a zero ``(D,)`` (``-UTT``) or ``(1, D)`` (``-FRA``) array for every name without a file;
    the names are added to the manifest's ``filled_with_zeros``."""
    from mer_ensemble.extract._store import read_manifest, save_npy_atomic, write_manifest

    manifest = read_manifest(out) if out.is_dir() else None
    missing = [n for n in names if not (out / f"{n}.npy").exists()]
    if not missing:
        return []
    if manifest is None or not manifest.get("dim"):
        raise DataError(f"{out}: no item could be extracted, so its dimension is unknown and the {len(missing)} "
                        "video(s) without input cannot be given zeros")
    dim = int(manifest["dim"])
    shape = (dim,) if manifest.get("level") == "utt" else (1, dim)
    for name in missing:
        save_npy_atomic(out / f"{name}.npy", np.zeros(shape, dtype=np.float32))
    manifest["filled_with_zeros"] = sorted(set(manifest.get("filled_with_zeros") or []) | set(missing))
    write_manifest(out, manifest)
    return missing
