"""Raw inputs beside the features: per-row text and audio file paths.

A family that reads raw inputs (``MerModel.raw_inputs``) receives them in the same ``X``
mapping as the feature blocks, under the reserved keys :data:`RAW_TEXT` and
:data:`RAW_AUDIO`, each an ``(n,)`` object array (str, None where the row has none).
The dataset keeps them in ``Dataset.raw`` (``"text"``, ``"audio"``: only the kinds the data
has). Where they come from (see :func:`read_text_file`, :func:`find_audio`):

- text: the generic layout's text column (``data.text_column``, default ``text``), MEIJU's
  ``sentence`` column in its CSV lists (a transcription CSV as well), or ``data.text_file``
  (a CSV with a name column and a text column, e.g. a MER2024 transcript ``name,english,chinese``);
- audio: ``data.audio_dir``, a folder holding ``<name>.wav`` (or another of
  :data:`AUDIO_EXTENSIONS`) per name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mer_ensemble.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from mer_ensemble.data.settings import DataSettings

__all__ = [
    "AUDIO_EXTENSIONS",
    "RAW_AUDIO",
    "RAW_KINDS",
    "RAW_PREFIX",
    "RAW_TEXT",
    "TEXT_COLUMNS",
    "describe_missing",
    "describe_unreadable",
    "find_audio",
    "load_raw",
    "missing_rows",
    "raw_digest",
    "raw_key",
    "raw_kind",
    "text_values",
]

#: the prefix of a raw input's key in ``X`` and in a run's ``features:`` list
RAW_PREFIX = "raw:"
#: the raw inputs a family may read besides feature blocks
RAW_KINDS = ("text", "audio")
RAW_TEXT = "raw:text"
RAW_AUDIO = "raw:audio"
#: audio files looked for in ``data.audio_dir``, in this order of preference
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
#: text columns looked for in a transcript CSV when ``data.text_column`` is not set, in order
TEXT_COLUMNS = ("text", "sentence", "english", "chinese")


def raw_key(kind: str) -> str:
    """``"text"`` -> ``"raw:text"``: the input key of a raw input."""
    return f"{RAW_PREFIX}{kind}"


def raw_kind(item: str) -> str | None:
    """``"raw:text"`` -> ``"text"``; None for anything that is not a raw input's key."""
    return item[len(RAW_PREFIX):] if item.startswith(RAW_PREFIX) else None


def text_values(values: Sequence[object]) -> np.ndarray:
    """``(n,)`` object array of stripped texts; blank cells, NaN and None become None."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        text = None if value is None or (isinstance(value, float) and value != value) else str(value).strip()
        out[i] = text or None
    return out


def missing_rows(values: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the rows a raw input lacks (None)."""
    return np.array([v is None for v in values], dtype=bool)


def find_audio(folder: Path, names: Sequence[str]) -> np.ndarray:
    """``(n,)`` object array: the absolute path of ``<name><ext>`` in ``folder`` per name (the first
    of :data:`AUDIO_EXTENSIONS` present), None where there is none. One directory listing."""
    if not folder.is_dir():
        raise DataError(f"data.audio_dir: {folder} is not a folder; expected one holding <name>.wav per name")
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}
    found: dict[str, tuple[int, str]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in rank and entry.is_file():
                best = found.get(stem)
                if best is None or rank[ext.lower()] < best[0]:
                    found[stem] = (rank[ext.lower()], entry.name)
    root = folder.resolve()
    out = np.empty(len(names), dtype=object)
    for i, name in enumerate(names):
        hit = found.get(str(name))
        out[i] = str(root / hit[1]) if hit else None
    return out


def raw_digest(kind: str, values: np.ndarray) -> str:
    """A hash of one raw input for the run digest of the runs that read it: the texts, or each
    audio file's path, size and modification time (one ``stat`` per file, no contents read)."""
    h = hashlib.sha1(kind.encode())
    for value in values:
        if value is None:
            h.update(b"\x00")
        elif kind == "audio":
            st = os.stat(value)
            h.update(f"{value}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        else:
            h.update(str(value).encode() + b"\x1f")
    return h.hexdigest()[:16]


def load_raw(settings: DataSettings, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The raw inputs of the rows of ``table`` (the layout's table, its text in the :data:`RAW_TEXT`
    column where the lists carry one): ``"text"`` from ``data.text_file`` when set, else from the
    lists; ``"audio"`` from ``data.audio_dir``. Only the kinds the data has."""
    from mer_ensemble.data.layouts import read_text_file

    names = table["name"].tolist()
    raw: dict[str, np.ndarray] = {}
    if settings.text_file:
        texts = read_text_file([settings.root / f for f in settings.text_file], settings.text_column)
        raw["text"] = text_values([texts.get(n) for n in names])
    elif RAW_TEXT in table.columns:
        raw["text"] = text_values(table[RAW_TEXT].tolist())
    elif settings.text_column:
        raise DataError(f"data.text_column: no list of the {settings.layout} layout in {settings.root} has a column "
                        f"{settings.text_column!r}; set data.text_file to a CSV with a name column and that column")
    if settings.audio_dir:
        raw["audio"] = find_audio(settings.root / settings.audio_dir, names)
    return raw


def describe_missing(kind: str, values: np.ndarray, names: np.ndarray, *, first: int = 3) -> str | None:
    """``"raw text: 12 of 400 rows lack it (first: a, b, c)"``; None when no row lacks it."""
    lacking = missing_rows(values)
    if not lacking.any():
        return None
    shown = ", ".join(str(n) for n in names[lacking][:first])
    return f"raw {kind}: {int(lacking.sum())} of {len(values)} rows lack it (first: {shown})"


def describe_unreadable(values: np.ndarray, names: np.ndarray, *, first: int = 3) -> str | None:
    """``"raw audio: 2 of 400 files cannot be read (first: a: <path>: <reason>, ...)"``, from each
    file's header (no samples read; rows without a file are not counted here); None when every
    file reads and holds samples."""
    import soundfile as sf

    bad: list[str] = []
    count = 0
    for name, path in zip(names, values, strict=True):
        if path is None:
            continue
        try:
            reason = "empty (0 samples)" if sf.info(str(path)).frames == 0 else None
        except Exception as exc:  # noqa: BLE001 - soundfile raises LibsndfileError, RuntimeError or TypeError
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if reason is not None:
            count += 1
            if len(bad) < first:
                bad.append(f"{name}: {path}: {reason}")
    if not count:
        return None
    return f"raw audio: {count} of {len(values)} files cannot be read (first: {'; '.join(bad)})"
