"""Reading one feature's files and validating them: shapes that agree, real finite numbers that fit
float32, the level (utterance or frame) from the folder's name or its data. Every error names a file
and how many others share the problem."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mer_ensemble.errors import DataError
from mer_ensemble.io import read_npy
from mer_ensemble.progress import progress_bar

if TYPE_CHECKING:
    from mer_ensemble.data.features import FeatureFiles

__all__ = ["FLOAT32_MAX", "feature_level_from_name", "read_feature_files"]

_SHOW = 3


def feature_level_from_name(feature: str) -> str | None:
    """``utt`` for ``*-UTT``/``*_UTT``, ``frame`` for ``*-FRA``/``*_FRA``, else None (detect from data)."""
    upper = feature.upper()
    if upper.endswith(("-UTT", "_UTT")):
        return "utt"
    if upper.endswith(("-FRA", "_FRA")):
        return "frame"
    return None


def _read_frame_dir(folder: Path, files: list[str] | None) -> np.ndarray:
    """A per-frame folder as ``(T, D)``: each file ``(D,)`` or ``(1, D)``, in file-name order."""
    if not files:
        raise DataError(f"{folder}: folder holds no per-frame .npy files")
    frames = []
    for file_name in files:
        path = folder / file_name
        arr = read_npy(path, DataError)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1:
            raise DataError(f"{path}: per-frame file has shape {arr.shape}; expected (D,) or (1, D)")
        frames.append(arr)
    dims = Counter(a.shape[0] for a in frames)
    if len(dims) > 1:
        common = dims.most_common(1)[0][0]
        odd = [folder / f for f, a in zip(files, frames, strict=True) if a.shape[0] != common]
        raise DataError(
            f"{odd[0]}: per-frame file has D={frames[files.index(odd[0].name)].shape[0]}, expected D={common} "
            f"like {dims[common]} of the {len(frames)} frames in {folder}"
        )
    return np.stack(frames)


def _signature(arr: np.ndarray, level: str) -> tuple:
    """What must agree across files: the shape (utterance level) or ``("T", D)`` (frame level)."""
    if level == "frame" and arr.ndim == 2:
        return ("T", int(arr.shape[1]))
    return tuple(int(s) for s in arr.shape)


def _shape_text(sig: tuple) -> str:
    if sig and sig[0] == "T":
        return f"(T, {sig[1]})"
    return str(tuple(sig))


def _normalise(arr: np.ndarray, level: str | None) -> np.ndarray:
    """Squeeze as the official reader does: ``(1, D)`` → ``(D,)`` at utterance level,
    ``(D,)`` → ``(1, D)`` (one frame) at frame level."""
    if level == "utt" and arr.ndim == 2 and arr.shape[0] == 1:
        return arr[0]
    if level == "frame" and arr.ndim == 1:
        return arr[None, :]
    return arr


#: the largest magnitude a feature value may have: features are stored and used as float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_values(arr: np.ndarray, path: Path) -> None:
    """Refuse what no feature can be: a dtype that is not a real number, no values, no frames."""
    if arr.dtype.kind not in "iuf":
        what = "is not real (features must be real numbers)" if arr.dtype.kind == "c" else "is not numeric"
        raise DataError(f"{path}: dtype {arr.dtype} {what}; expected float or integer values")
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise DataError(f"{path}: shape {arr.shape} holds no feature values")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise DataError(f"{path}: has 0 frames")


def _check_rank(arr: np.ndarray, raw: np.ndarray, level: str | None, path: Path) -> None:
    """An utterance-level file holds one vector, a frame-level file a ``(T, D)`` matrix."""
    allowed = {"utt": (1,), "frame": (2,)}.get(level or "", (1, 2))
    if arr.ndim not in allowed:
        expected = {"utt": "(D,) or (1, D) at utterance level", "frame": "(T, D) or (D,) at frame level"}.get(
            level or "", "(D,) or (T, D)")
        raise DataError(f"{path}: shape {tuple(raw.shape)}; a feature file holds {expected}")


def _bad_values(arr: np.ndarray) -> str | None:
    """Why ``arr``'s values cannot become finite float32 features (None when they can)."""
    if arr.dtype.kind != "f":
        return None
    finite = np.isfinite(arr)
    if not finite.all():
        return f"{int((~finite).sum())} NaN/inf value(s)"
    if arr.dtype.itemsize > 4:
        beyond = np.abs(arr) > FLOAT32_MAX
        if beyond.any():
            return (f"{int(beyond.sum())} value(s) beyond float32's range ±{FLOAT32_MAX:.3g} "
                    f"(largest magnitude {float(np.abs(arr).max()):.3g})")
    return None


def _values_error(feature: str, bad: list[tuple[str, str]], n: int) -> DataError:
    """One error for every file whose values are not finite float32 numbers: the count and the first few."""
    first, why = bad[0]
    others = ", ".join(f"{Path(p).name} ({w})" for p, w in bad[1:_SHOW])
    more = f" (+{len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""
    listed = f": also {others}{more}" if others else ""
    return DataError(f"{first}: {why}; {len(bad)} of the {n} files of {feature} hold values that are not finite "
                     f"float32 numbers{listed}; features must be finite")


def _mismatch_error(files: FeatureFiles, sigs: list[tuple], shapes: list[tuple]) -> DataError:
    """The error for files whose shape differs from the one most files share."""
    counts = Counter(sigs)
    common, n_common = counts.most_common(1)[0]
    odd = [i for i, s in enumerate(sigs) if s != common]
    first = odd[0]
    listed = ", ".join(Path(files.paths[i]).name for i in odd[:_SHOW])
    more = f" (+{len(odd) - _SHOW} more)" if len(odd) > _SHOW else ""
    return DataError(
        f"{files.paths[first]}: shape {shapes[first]}, expected {_shape_text(common)} like {n_common} of the "
        f"{len(sigs)} files of {files.feature}; {len(odd)} file(s) differ: {listed}{more}"
    )


def read_feature_files(files: FeatureFiles) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and validate every file of ``files``; returns ``(values, offsets)``: ``(N, D)`` float32
    values (all frames of all names, in name order, at frame level) and ``(n + 1,)`` frame offsets
    (None at utterance level). Raises :class:`DataError` naming the first bad file and how many."""
    names, feature = files.names, files.feature
    missing = [n for n, p in zip(names, files.paths, strict=True) if p is None]
    if missing:
        raise DataError(
            f"feature {feature}: {len(missing)} of {len(names)} names have no file in {files.where()} "
            f"(first: {missing[0]!r}; looked for {missing[0]}.npy or a folder {missing[0]}/)"
        )
    declared = feature_level_from_name(feature)
    n = len(names)
    sigs: list[tuple] = []
    shapes: list[tuple] = []
    values: np.ndarray | None = None  # utterance level: filled in place, (n, D)
    items: list[np.ndarray] = []  # frame level or level not declared: one array per name
    bad: list[tuple[str, str]] = []  # files whose values are not finite float32 numbers
    with progress_bar(n, f"reading {feature}", enabled=None if n > 2000 else False) as advance:
        for i, item in enumerate(files.paths):
            path, frame_files = Path(item), files.frames[i]
            raw = _read_frame_dir(path, frame_files) if frame_files is not None else read_npy(path, DataError)
            level = "frame" if frame_files is not None else declared
            arr = _normalise(raw, level)
            _check_values(arr, path)
            _check_rank(arr, raw, level, path)
            why = _bad_values(arr)
            if why is not None:
                bad.append((str(path), why))
            shapes.append(tuple(int(s) for s in raw.shape))
            if declared == "utt":
                sigs.append(_signature(arr, "utt"))
                if values is None:
                    values = np.empty((n, arr.shape[-1]), dtype=np.float32)
                if arr.shape == values.shape[1:] and why is None:
                    values[i] = arr
            else:
                items.append(arr)
            advance(1)
    if bad:
        raise _values_error(feature, bad, n)
    if declared == "utt":
        if len(set(sigs)) > 1:
            raise _mismatch_error(files, sigs, shapes)
        return values, None
    level = declared or ("utt" if all(a.ndim == 1 for a in items) else "frame")
    items = [_normalise(a, level) for a in items]
    sigs = [_signature(a, level) for a in items]
    if len(set(sigs)) > 1 or (level == "frame" and any(a.ndim != 2 for a in items)):
        raise _mismatch_error(files, sigs, shapes)
    if level == "utt":
        return np.stack(items).astype(np.float32, copy=False), None
    lengths = np.array([a.shape[0] for a in items], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.concatenate(items).astype(np.float32, copy=False), offsets
