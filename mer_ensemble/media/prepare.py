"""``prepare``: from the organisers' videos to the inputs of the feature extractors.

For every video under ``inputs`` (``.mp4``, ``.avi``, ``.mkv``, ``.webm``, ...; searched
recursively, the name is the file stem) it writes, under ``out``:

* ``audio/<name>.wav``: the whole audio track, 16 kHz mono 16-bit PCM;
* ``faces/<name>/<frame>.jpg``: one square face crop (``face_size`` pixels, the largest face
  with a margin) per sampled frame that holds a face, and ``faces/<name>/boxes.csv``
  (``frame,x1,y1,x2,y2,score``: ``frame`` indexes the decoded source frames, coordinates are
  source pixels) -- the folder layout ``extract -m vision`` reads;
* optionally ``frames/<name>/<frame>.jpg``: every ``scene_every``-th frame (MEIJU's
  baseline feeds every 10th frame to ResNet-50);
* ``prepare-manifest.csv``: ``name,status,duration,frames,faces,error`` for every video;
  ``status`` is ``ok``, ``failed`` (not decodable: nothing written) or the problems found,
  joined by ``+``: ``no_audio`` (no audio stream), ``silent`` (the track peaks under
  -60 dBFS), ``no_face`` (no face in any sampled frame);
* ``prepare.json``: the settings, detector and counts.

A bad video is a row, never a stop. Each video's outputs are written under temporary names
and renamed, then its record ``.prepare/<name>.json``: a rerun skips every video whose
record matches the file's size and modification time (failed ones included), so an
interrupted run resumes; a changed file is done again. Videos run in ``jobs`` processes.

This module is the run over a folder (which videos, resuming, processes, the manifest); what
happens to one video is :mod:`mer_ensemble.media.prepare_video`.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mer_ensemble.errors import DataError, ExtractError
from mer_ensemble.io import atomic_write_json, atomic_write_text, read_json
from mer_ensemble.media.prepare_video import (
    RECORDS,
    init_worker,
    manifest_row,
    prepare_one,
    record_path,
    source_stat,
)
from mer_ensemble.names import name_problem

__all__ = ["MANIFEST", "PrepareOptions", "PrepareReport", "list_videos", "prepare_videos", "read_manifest"]

MANIFEST = "prepare-manifest.csv"
SETTINGS = "prepare.json"
COLUMNS = ("name", "status", "duration", "frames", "faces", "error")


@dataclass(frozen=True)
class PrepareOptions:
    """How videos are prepared.

    ``fps``: face-detection samples per second (``0``: every frame); ``face_size``: side of the
    square crops; ``margin``: added around the face box on each side, as a fraction of its
    longer side; ``detector`` / ``min_face`` / ``threshold``: see :mod:`mer_ensemble.media.faces`;
    ``max_side``: frames whose longer side exceeds it are scaled down for detection (boxes are
    mapped back, crops come from the full frame); ``scene_every``: keep every N-th frame under
    ``frames/`` (0: none); ``faces``: detect faces at all; ``rate``: audio sample rate.
    """

    fps: float = 5.0
    face_size: int = 112
    margin: float = 0.2
    detector: str = "dlib+haar"
    min_face: int = 40
    threshold: float | None = None
    max_side: int = 640
    scene_every: int = 0
    faces: bool = True
    rate: int = 16000
    jpeg_quality: int = 95

    def check(self) -> None:
        """Raise :class:`ExtractError` naming the first bad option."""
        from mer_ensemble.media.faces import DETECTORS

        if self.fps < 0:
            raise ExtractError(f"--fps {self.fps}: expected 0 (every frame) or a positive number of frames per second")
        if not 16 <= self.face_size <= 1024:
            raise ExtractError(f"--face-size {self.face_size}: expected 16..1024 pixels")
        if not 0 <= self.margin <= 1:
            raise ExtractError(f"--margin {self.margin}: expected a fraction of the face box between 0 and 1")
        if self.detector not in DETECTORS:
            raise ExtractError(f"--detector {self.detector!r}: expected one of {', '.join(DETECTORS)}")
        if self.min_face < 8:
            raise ExtractError(f"--min-face {self.min_face}: expected 8 pixels or more")
        if self.max_side < 64:
            raise ExtractError(f"--max-side {self.max_side}: expected 64 pixels or more")
        if self.scene_every < 0:
            raise ExtractError(f"--scene-every {self.scene_every}: expected 0 (no scene frames) or N >= 1")
        if not 8000 <= self.rate <= 96000:
            raise ExtractError(f"audio rate {self.rate}: expected 8000..96000 Hz")


@dataclass
class PrepareReport:
    """What a run did: ``rows`` (one manifest row per video, as dicts), counts and paths."""

    out: Path
    rows: list[dict[str, Any]]
    n_done: int
    n_skipped: int
    seconds: float
    manifest: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return sum(row["status"] == "failed" for row in self.rows)


def list_videos(inputs: str | Path, out: Path | None = None) -> list[Path]:
    """Every video file under ``inputs`` (recursive, hidden files and ``out`` skipped), sorted by path."""
    from mer_ensemble.media.video import VIDEO_EXTENSIONS

    inputs = Path(inputs)
    if inputs.is_file():
        return [inputs]
    if not inputs.is_dir():
        raise DataError(f"--input {inputs}: no such folder")
    skip = out.resolve() if out is not None else None
    found = []
    for path in sorted(inputs.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(inputs).parts)
        if path.suffix.lower() not in VIDEO_EXTENSIONS or hidden:
            continue
        if skip is not None and (skip == path.resolve() or skip in path.resolve().parents):
            continue
        if path.is_file():
            found.append(path)
    if not found:
        raise DataError(f"--input {inputs}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    return found


def _settings(options: PrepareOptions) -> dict[str, Any]:
    settings = asdict(options)
    settings.pop("jpeg_quality")
    return settings


def prepare_videos(
    inputs: str | Path,
    out: str | Path,
    options: PrepareOptions | None = None,
    *,
    jobs: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> PrepareReport:
    """Prepare every video under ``inputs`` into ``out`` (see the module docstring)."""
    started = time.perf_counter()
    options = options or PrepareOptions()
    options.check()
    out = Path(out)
    if out.resolve() == Path(inputs).resolve():
        raise DataError(f"--out {out} is the input folder; prepare writes into a folder of its own")
    videos = list_videos(inputs, out)
    settings = _settings(options)
    previous = None if overwrite else _read_settings(out)
    if previous is not None and previous.get("settings") != settings:
        changed = sorted(k for k in settings if previous["settings"].get(k) != settings[k])
        raise ExtractError(
            f"{out} was prepared with other settings ({', '.join(changed)}); prepare into a new folder, "
            "or pass --overwrite to redo every video"
        )
    names, rows, todo = _plan(videos, out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORDS).mkdir(exist_ok=True)
    detector = _detector_description(options)
    atomic_write_json(out / SETTINGS, {"settings": settings, "detector": detector, "complete": False})
    if log:
        log(f"preparing {len(todo)} of {len(videos)} videos with {max(1, min(jobs, len(todo) or 1))} job(s); "
            f"{len(rows)} already recorded")
    for name, record in _run(todo, out, options, jobs, progress):
        rows[name] = record
    ordered = [rows[name] for name in names if name in rows]
    manifest = _write_manifest(out, ordered)
    counts = _counts(ordered)
    atomic_write_json(out / SETTINGS, {"settings": settings, "detector": detector, "complete": True,
                                       "counts": counts, "videos": len(ordered)})
    return PrepareReport(out, ordered, len(todo), len(videos) - len(todo), time.perf_counter() - started,
                         manifest, counts)


def _detector_description(options: PrepareOptions) -> dict[str, Any]:
    if not options.faces:
        return {"detector": None}
    from mer_ensemble.media.faces import make_detector

    return make_detector(options.detector, min_face=options.min_face, threshold=options.threshold).describe()


def _read_settings(out: Path) -> dict[str, Any] | None:
    path = out / SETTINGS
    return read_json(path, ExtractError) if path.is_file() else None


def _plan(
    videos: list[Path], out: Path, overwrite: bool
) -> tuple[list[str], dict[str, dict[str, Any]], list[tuple[str, Path]]]:
    """Names in order, rows already known (finished, or a name that cannot be used), videos to do."""
    names: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, Path]] = []
    seen: dict[str, Path] = {}
    for path in videos:
        name = path.stem
        problem = name_problem(name) or ("is hidden (starts with '.')" if name.startswith(".") else None)
        if name in seen:
            key = f"{name} ({path.name})"
            names.append(key)
            rows[key] = manifest_row(key, "failed", error=f"duplicate name: {path} and {seen[name]} are both {name!r}")
            continue
        seen[name] = path
        names.append(name)
        if problem:
            rows[name] = manifest_row(name, "failed", error=f"invalid name: {problem}")
            continue
        record = None if overwrite else _read_record(out, name)
        if record is not None and record.get("source") == source_stat(path):
            rows[name] = record["row"]
        else:
            todo.append((name, path))
    return names, rows, todo


def _read_record(out: Path, name: str) -> dict[str, Any] | None:
    path = record_path(out, name)
    if not path.is_file():
        return None
    try:
        return read_json(path, ExtractError)
    except ExtractError:
        return None  # a damaged record: the video is done again


def _run(todo: list[tuple[str, Path]], out: Path, options: PrepareOptions, jobs: int, progress: bool):  # noqa: ANN202
    """Yield ``(name, row)`` as videos finish, in ``jobs`` processes (in this one for 1 job)."""
    from mer_ensemble.progress import progress_bar

    jobs = max(1, min(int(jobs), len(todo) or 1))
    with progress_bar(len(todo), "prepare", enabled=None if progress else False) as advance:
        if jobs == 1:
            init_worker(options)
            for name, path in todo:
                yield name, prepare_one(name, str(path), str(out))
                advance(1)
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=init_worker, initargs=(options,)) as pool:
            futures = {pool.submit(prepare_one, name, str(path), str(out)): name for name, path in todo}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
                    advance(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


# --- the manifest -----------------------------------------------------------------------------------


def _write_manifest(out: Path, rows: list[dict[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(out / MANIFEST, buffer.getvalue())


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {"videos": len(rows), "ok": 0, "failed": 0, "no_audio": 0, "silent": 0, "no_face": 0}
    for row in rows:
        for status in row["status"].split("+"):
            counts[status] = counts.get(status, 0) + 1
    counts["faces"] = sum(int(r["faces"]) for r in rows)
    counts["frames"] = sum(int(r["frames"]) for r in rows)
    return counts


def read_manifest(out: str | Path) -> list[dict[str, str]]:
    """The rows of ``out/prepare-manifest.csv`` as dicts of strings."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} not found; run mer-ensemble prepare first")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
