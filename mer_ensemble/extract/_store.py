"""The output folder: atomic ``.npy`` writes, ``manifest.json`` and the ``errors.csv`` report.

Layout (MER2024): ``<out>/<name>.npy`` float32, ``(D,)`` for ``-UTT`` and ``(T, D)`` for ``-FRA``;
``<out>/manifest.json``; ``<out>/errors.csv`` only when some item failed in the last run.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import ExtractError

__all__ = [
    "ERRORS_FILE",
    "MANIFEST_FILE",
    "check_manifest",
    "read_manifest",
    "save_npy_atomic",
    "write_errors",
    "write_manifest",
]

MANIFEST_FILE = "manifest.json"
ERRORS_FILE = "errors.csv"
#: manifest keys that must agree for a run to resume into an existing folder
_SETUP_KEYS = ("modality", "level", "checkpoint", "settings")


def _write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary name in the same folder, then rename it onto ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` at ``path`` atomically (never a half-written file under the final name)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    _write_bytes_atomic(path, buffer.getvalue())


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The folder's manifest, or ``None`` when it has none."""
    path = out / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ExtractError(f"unreadable manifest {path}: {exc}; remove it or use --overwrite") from exc


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically; returns its path."""
    path = out / MANIFEST_FILE
    _write_bytes_atomic(path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def check_manifest(out: Path, existing: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse to resume into ``out`` when its features were made with another setup.

    Mixing checkpoints, layers or pooling in one feature folder would silently corrupt it.
    """
    if existing is None:
        return
    for key in _SETUP_KEYS:
        old, new = existing.get(key), current.get(key)
        if key == "checkpoint" and isinstance(old, dict) and isinstance(new, dict):
            old, new = old.get("config_sha256"), new.get("config_sha256")
        if old != new:
            raise ExtractError(
                f"{out} already holds features made with another {key} ({_short(old)} vs now {_short(new)}); "
                "extract into a new folder, or pass --overwrite to redo every item"
            )


def write_errors(out: Path, failures: Iterable[tuple[str, str, str]], file_name: str = ERRORS_FILE) -> Path | None:
    """Write ``out/errors.csv`` (columns name, source, error); remove a stale one when nothing failed."""
    rows = list(failures)
    path = out / file_name
    if not rows:
        if path.exists():
            path.unlink()
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "source", "error"])
    writer.writerows(rows)
    _write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))
    return path


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
