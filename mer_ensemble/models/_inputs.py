"""Checking and arranging model inputs: utterance arrays, frame sequences, modality groups.

A model input ``X`` maps a feature name to an ``(n, D)`` array (utterance level) or a
:class:`~mer_ensemble.data.dataset.Frames` (frame level: ``x`` ``(n, T, D)``,
``lengths`` ``(n,)``). The helpers here validate ``X`` against the dimensions a model
was created with and build the arrays a model family reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mer_ensemble.data.dataset import Frames
from mer_ensemble.errors import DataError, ModelError

__all__ = [
    "VARIANT_MARK",
    "as_frames",
    "check_inputs",
    "coerce_levels",
    "concat_frames",
    "concat_pooled",
    "group_by_modality",
    "input_levels",
    "lengths_key",
    "pooled",
    "subset_rows",
    "variant_key",
]

#: reserved input keys ``<input>@variant<j>``: a noisy variant of input ``<input>`` for the same rows
VARIANT_MARK = "@variant"


def lengths_key(name: str) -> str:
    """The input key holding the ``(n,)`` lengths of the sequence input ``name``."""
    return f"{name}:lengths"


def variant_key(key: str, index: int) -> str:
    """The reserved input key of noisy variant ``index`` of input ``key``."""
    return f"{key}{VARIANT_MARK}{index}"


def subset_rows(value: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of one input value: an ``(n, D)`` array or :class:`Frames`."""
    if isinstance(value, Frames):
        return Frames(np.asarray(value.x)[index], np.asarray(value.lengths)[index])
    return np.asarray(value)[index]


def _shape_of(feature: str, value: Any) -> tuple[int, int]:
    """``(n, D)`` of one input value; raises :class:`DataError` on a bad shape."""
    if isinstance(value, Frames):
        x, lengths = np.asarray(value.x), np.asarray(value.lengths)
        if x.ndim != 3 or lengths.shape != (x.shape[0],):
            raise DataError(
                f"feature {feature!r}: Frames must hold x (n, T, D) and lengths (n,); "
                f"got x {x.shape} and lengths {lengths.shape}"
            )
        if x.shape[0] and (lengths.min() < 1 or lengths.max() > x.shape[1]):
            raise DataError(f"feature {feature!r}: frame lengths must lie in [1, {x.shape[1]}]")
        return int(x.shape[0]), int(x.shape[2])
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise DataError(f"feature {feature!r}: expected an (n, D) array or Frames, got shape {arr.shape}")
    return int(arr.shape[0]), int(arr.shape[1])


def check_inputs(X: Mapping[str, Any], feature_dims: Mapping[str, int], model: str,
                 raw: Sequence[str] = ()) -> int:
    """Check that ``X`` holds every feature of ``feature_dims`` with its dimension and every raw
    input key of ``raw`` (``raw:text``...) as an ``(n,)`` array, all with the same number of rows;
    returns that number ``n``."""
    missing = [f for f in [*feature_dims, *raw] if f not in X]
    if missing:
        raise DataError(f"model {model!r}: inputs lack {missing}; given: {sorted(X)}")
    rows: dict[str, int] = {}
    for feature, dim in feature_dims.items():
        n, d = _shape_of(feature, X[feature])
        if d != dim:
            raise DataError(f"model {model!r}: feature {feature!r} has dimension {d}, the model was created with {dim}")
        rows[feature] = n
    for key in raw:
        values = np.asarray(X[key], dtype=object)
        if values.ndim != 1:
            raise DataError(f"model {model!r}: raw input {key!r} must be an (n,) array, got shape {values.shape}")
        rows[key] = len(values)
    if not rows:
        raise DataError(f"model {model!r}: the model reads no feature and no raw input")
    if len(set(rows.values())) > 1:
        raise DataError(f"model {model!r}: inputs disagree on the number of rows: {rows}")
    return next(iter(rows.values()))


def input_levels(X: Mapping[str, Any], features: Sequence[str]) -> dict[str, str]:
    """``"frame"`` for features given as Frames, ``"utt"`` for arrays."""
    return {f: "frame" if isinstance(X[f], Frames) else "utt" for f in features}


def as_frames(value: Any) -> Frames:
    """Frames of one feature; an ``(n, D)`` array becomes sequences of length 1."""
    if isinstance(value, Frames):
        return Frames(np.asarray(value.x, dtype=np.float32), np.asarray(value.lengths, dtype=np.int64))
    arr = np.asarray(value, dtype=np.float32)
    return Frames(arr[:, None, :], np.ones(arr.shape[0], dtype=np.int64))


def pooled(value: Any) -> np.ndarray:
    """``(n, D)`` float32 of one feature; Frames are averaged over their real frames."""
    if isinstance(value, Frames):
        return as_frames(value).pooled()
    return np.asarray(value, dtype=np.float32)


def coerce_levels(X: Mapping[str, Any], levels: Mapping[str, str]) -> dict[str, Any]:
    """Bring ``X`` to the levels a model was fitted with: Frames are pooled for an
    utterance-level feature, arrays become length-1 Frames for a frame-level one."""
    return {f: as_frames(X[f]) if level == "frame" else pooled(X[f]) for f, level in levels.items()}


def concat_pooled(X: Mapping[str, Any], features: Sequence[str]) -> np.ndarray:
    """The features side by side, ``(n, sum of D)`` float32 (Frames mean-pooled)."""
    return np.concatenate([pooled(X[f]) for f in features], axis=1)


def concat_frames(X: Mapping[str, Any], features: Sequence[str]) -> Frames:
    """The features side by side per frame, ``x`` ``(n, T, sum of D)``.

    Sequences of different lengths are aligned in time to the longest one of each row by
    nearest-frame resampling (an utterance-level feature is repeated over every frame);
    frames past a row's length are zero.
    """
    frames = [as_frames(X[f]) for f in features]
    if len(frames) == 1:
        return frames[0]
    same_time = len({fr.x.shape[1] for fr in frames}) == 1
    if same_time and all(np.array_equal(fr.lengths, frames[0].lengths) for fr in frames):
        return Frames(np.concatenate([fr.x for fr in frames], axis=2), frames[0].lengths)
    ref = np.max(np.stack([fr.lengths for fr in frames]), axis=0)
    steps = np.arange(int(ref.max()))[None, :]
    parts = []
    for fr in frames:
        own = fr.lengths[:, None]
        index = np.minimum(steps * own // ref[:, None], own - 1)
        parts.append(np.take_along_axis(fr.x, index[:, :, None], axis=1))
    x = np.concatenate(parts, axis=2)
    x[steps >= ref[:, None]] = 0.0
    return Frames(x, ref.astype(np.int64))


def group_by_modality(feature_dims: Mapping[str, int], modalities: Mapping[str, str]) -> dict[str, list[str]]:
    """Modality -> its features, both in the order of ``feature_dims``.

    Raises :class:`ModelError` naming features without a modality.
    """
    missing = [f for f in feature_dims if f not in modalities]
    if missing:
        raise ModelError(f"no modality given for feature(s) {missing}; modalities has {sorted(modalities)}")
    groups: dict[str, list[str]] = {}
    for feature in feature_dims:
        groups.setdefault(modalities[feature], []).append(feature)
    return groups
