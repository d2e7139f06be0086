"""Writing a submission: class indices → the validated CSV, its JSON sidecar and (zipped tasks)
its zip, all or nothing; and telling whether files at a path are ones written here, unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer_ensemble.errors import SubmissionError
from mer_ensemble.submission.archive import zip_bytes, zip_holds, zip_path
from mer_ensemble.submission.format import expected_header, label_text
from mer_ensemble.submission.validate import validate_submission
from mer_ensemble.tasks import TaskSpec

__all__ = ["output_paths", "sidecar_path", "write_submission", "written_here"]


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar written next to a submission: same folder and stem, ``.json``."""
    return Path(path).with_suffix(".json")


def output_paths(path: str | Path, task: TaskSpec) -> list[Path]:
    """Every file :func:`write_submission` writes for ``path``: the CSV (a folder gets
    ``task.submission_filename`` or ``submission.csv``), its sidecar and, for zipped tasks, the zip."""
    path = Path(path)
    if path.is_dir():
        path = path / (task.submission_filename or "submission.csv")
    if path.suffix.lower() != ".csv":
        raise SubmissionError(f"{path}: a submission path must end in .csv (its .json sidecar and .zip go beside it)")
    return [path, sidecar_path(path), *([zip_path(path)] if task.zip_submission else [])]


def _labels_frame(labels: Mapping[str, np.ndarray], names: Sequence[str], task: TaskSpec) -> pd.DataFrame:
    unknown = sorted(set(labels) - set(task.target_names))
    missing = [t for t in task.target_names if t not in labels]
    if unknown or missing:
        raise SubmissionError(
            f"labels are given for targets {sorted(labels)}; task {task.name} needs exactly {task.target_names}"
        )
    frame = pd.DataFrame({task.name_column: [str(n) for n in names]})
    for target in task.target_names:
        idx = np.asarray(labels[target])
        if idx.shape != (len(names),):
            raise SubmissionError(f"labels[{target!r}] has shape {idx.shape}; expected ({len(names)},), one per name")
        if not np.issubdtype(idx.dtype, np.integer):
            raise SubmissionError(f"labels[{target!r}] must hold class indices (integers); got dtype {idx.dtype}")
        text = label_text(task, target)
        bad = np.flatnonzero((idx < 0) | (idx >= len(text)))
        if bad.size:
            raise SubmissionError(
                f"labels[{target!r}] row {int(bad[0])} ({names[int(bad[0])]!r}) holds class index {int(idx[bad[0]])};"
                f" expected 0..{len(text) - 1}"
            )
        frame[task.column_for(target)] = np.asarray(text, dtype=object)[idx]
    return frame


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"sidecar value of type {type(obj).__name__} is not JSON serialisable")


def _write_all_atomically(payloads: Mapping[Path, bytes]) -> None:
    """Write every payload to a temporary file beside its target, then rename each into place."""
    from mer_ensemble.io import follow_umask, temp_prefix, writing

    temps: dict[Path, str] = {}
    try:
        for target, data in payloads.items():
            with writing(target):
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent)
                temps[target] = tmp
                follow_umask(fd)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
        for target, tmp in temps.items():
            with writing(target):
                os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def write_submission(
    labels: Mapping[str, np.ndarray],
    names: Sequence[str],
    task: TaskSpec,
    path: str | Path,
    *,
    sidecar: Mapping[str, Any] | None = None,
) -> Path:
    """Validate, then atomically write the submission CSV, its JSON sidecar and (zipped tasks) its zip.

    ``labels[target]`` ``(n,)`` class indices per row of ``names`` ``(n,)``. ``path`` is
    the CSV to write (a folder gets ``task.submission_filename`` or ``submission.csv``).
    The sidecar ``<stem>.json`` records the file, row count, header, SHA-256 and the
    zip, updated with ``sidecar``. For ``task.zip_submission`` the zip ``<stem>.zip``
    holds the CSV as ``submission.csv`` (or ``task.submission_filename``). Nothing is
    written when validation fails. Returns the CSV path.
    """
    path = output_paths(path, task)[0]
    frame = _labels_frame(labels, names, task)
    validate_submission(frame, task, [str(n) for n in names])
    csv_bytes = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    payloads: dict[Path, bytes] = {path: csv_bytes}
    record: dict[str, Any] = {
        "submission": path.name,
        "format": task.submission,
        "header": expected_header(task),
        "rows": len(frame),
        "sha256": hashlib.sha256(csv_bytes).hexdigest(),
        "zip": None,
    }
    if task.zip_submission:
        payloads[zip_path(path)] = zip_bytes(task.submission_filename or "submission.csv", csv_bytes)
        record["zip"] = zip_path(path).name
    record.update(sidecar or {})
    try:
        sidecar_bytes = (json.dumps(record, indent=1, default=_json_default) + "\n").encode("utf-8")
    except TypeError as exc:
        raise SubmissionError(f"{sidecar_path(path)}: {exc}") from None
    payloads[sidecar_path(path)] = sidecar_bytes
    _write_all_atomically(payloads)
    return path


def written_here(path: str | Path) -> bool:
    """Whether the submission files of ``path`` (the CSV, its sidecar, its zip, those that exist)
    are ones :func:`write_submission` wrote and nobody changed since.

    The sidecar ``<stem>.json`` is the mark: a JSON object naming ``path``'s file in
    ``submission`` with its format and SHA-256; the CSV must still have that SHA-256 and a zip
    must be the one the sidecar names, holding the same bytes. Without such a sidecar (the
    labels of the data, a store record, a hand-edited submission) the answer is no.
    """
    path = Path(path)
    try:
        record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("submission") != path.name or "format" not in record:
        return False
    digest = record.get("sha256")
    try:
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return False
        archive = zip_path(path)
        if archive.exists() and (record.get("zip") != archive.name or not zip_holds(archive, digest)):
            return False
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError):
        return False
    return True
