"""Helpers every model family shares: label checks, class weights, parameter checks,
constant predictions for targets a model cannot learn, atomic saving, and the model file
format of the non-torch families (arrays + JSON in one ``.npz``, never pickled)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError, ModelError

__all__ = [
    "CLASS_WEIGHTS",
    "atomic_save",
    "balanced_class_weights",
    "check_choice",
    "check_fitted",
    "check_labels",
    "check_number",
    "class_weights_for",
    "constant_proba",
    "from_payload",
    "init_args",
    "inner_folds",
    "inner_split",
    "load_arrays",
    "save_arrays",
]

CLASS_WEIGHTS = (None, "balanced")


def check_labels(y: Mapping[str, Any], targets: Mapping[str, int], n: int, model: str) -> dict[str, np.ndarray]:
    """Labels of every target as ``(n,)`` int64, checked to lie in ``[-1, n_classes)``."""
    out: dict[str, np.ndarray] = {}
    for target, n_classes in targets.items():
        if target not in y:
            raise DataError(f"model {model!r}: labels lack target {target!r}; given: {sorted(y)}")
        arr = np.asarray(y[target])
        if arr.shape != (n,):
            raise DataError(f"model {model!r}: labels of {target!r} have shape {arr.shape}, expected ({n},)")
        if arr.dtype.kind not in "iu":
            raise DataError(f"model {model!r}: labels of {target!r} must be integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < -1 or arr.max() >= n_classes):
            raise DataError(
                f"model {model!r}: labels of {target!r} must lie in [-1, {n_classes - 1}], "
                f"got [{arr.min()}, {arr.max()}]"
            )
        out[target] = arr.astype(np.int64)
    return out


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``(n_classes,)`` like scikit-learn's ``"balanced"``:
    ``n_known / (n_present_classes * count[c])``; 1.0 for classes absent from ``y``."""
    known = y[y >= 0]
    counts = np.bincount(known, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes, dtype=np.float64)
    if present.any():
        weights[present] = len(known) / (present.sum() * counts[present])
    return weights


def class_weights_for(
    y: Mapping[str, np.ndarray], targets: Mapping[str, int], class_weight: str | None
) -> dict[str, np.ndarray] | None:
    """Per-target class weights for the ``class_weight`` option (None: unweighted)."""
    if class_weight is None:
        return None
    return {t: balanced_class_weights(y[t], c) for t, c in targets.items()}


def check_choice(model: str, param: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise :class:`ModelError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ModelError(f"model {model!r}: {param}={value!r} is not allowed; expected one of {list(allowed)}")


def check_number(
    model: str,
    param: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
    open_low: bool = False,
    allow_none: bool = False,
) -> None:
    """Raise :class:`ModelError` unless ``value`` is a number in the given range."""
    if value is None and allow_none:
        return
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, np.integer) if integer else (int, float, np.integer, np.floating))
    ok = ok and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bounds = f"{'>' if open_low else '>='} {low}" if low is not None else ""
        if high is not None:
            bounds += f"{' and ' if bounds else ''}<= {high}"
        none = " or None" if allow_none else ""
        raise ModelError(f"model {model!r}: {param}={value!r} must be {kind} {bounds}{none}".rstrip())


def check_fitted(model: Any, attribute: str) -> None:
    """Raise :class:`ModelError` unless ``model`` has its fitted ``attribute``."""
    if not hasattr(model, attribute):
        raise ModelError(f"model {model.name!r} is not fitted; call fit() or load() first")


def constant_proba(y: np.ndarray, n_classes: int, n_rows: int) -> np.ndarray:
    """Predictions for a target with fewer than two known classes, ``(n_rows, n_classes)``:
    the class frequencies of ``y`` (uniform when no label is known)."""
    known = y[y >= 0]
    prior = np.bincount(known, minlength=n_classes).astype(np.float64)
    prior = prior / prior.sum() if prior.sum() else np.full(n_classes, 1.0 / n_classes)
    return np.tile(prior, (n_rows, 1))


def atomic_save(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it to
    ``path``; nothing half-written is left behind when ``write`` fails."""
    from mer_ensemble.io import follow_umask, temp_prefix, writing

    target = Path(path)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent)
        follow_umask(fd)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def init_args(model: Any) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model`` (saved next to its fitted state)."""
    return {
        "targets": dict(model.targets),
        "feature_dims": dict(model.feature_dims),
        "modalities": dict(model.modalities),
        "seed": model.seed,
        "device": model.device,
        "params": dict(model.params),
    }


def from_payload(cls: type, payload: Mapping[str, Any], path: str | os.PathLike) -> Any:
    """A new unfitted ``cls`` from a saved payload; :class:`ModelError` when the file
    holds another model family or is not a saved model."""
    if not isinstance(payload, Mapping) or "init" not in payload or "model" not in payload:
        raise ModelError(f"{path}: not a model file written by mer-ensemble")
    if cls.name and payload["model"] != cls.name:
        raise ModelError(f"{path}: holds a {payload['model']!r} model, not {cls.name!r}")
    args = dict(payload["init"])
    params = args.pop("params")
    return cls(**args, **params)


def inner_folds(
    y: np.ndarray,
    *,
    n_splits: int,
    seed: int,
    groups: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner K-fold splits of a fold's training rows, for choices made inside the fold.

    ``y`` ``(n,)`` labels of the first target (-1 unknown, its own stratum); ``groups`` ``(n,)``
    keep a group on one side (speakers, dialogues); ``candidates`` ``(n,)`` bool: rows allowed on
    the validation side (e.g. not pseudo-labelled rows; the others always train). Stratified on
    ``y``, at most ``n_splits`` splits (fewer when a class or the groups are too few). Returns
    ``(train_idx, val_idx)`` index arrays into the rows per split (the validation parts are the
    candidate rows' folds; a training part lists its candidate rows first, then the other rows);
    empty when there are too few rows, classes or groups to split.
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    rows = np.arange(len(y)) if candidates is None else np.flatnonzero(candidates)
    always_train = np.setdiff1d(np.arange(len(y)), rows)
    strata = np.asarray(y)[rows].copy()
    strata[strata < 0] = strata.max() + 1
    k = min(n_splits, int(np.bincount(strata).max()))  # stratified splits need k rows of some class
    if k < 2:
        return []
    if groups is not None:
        row_groups = np.asarray(groups)[rows]
        k = min(k, len(set(row_groups.tolist())))
        if k < 2:
            return []
        parts = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(len(rows)), strata, row_groups)
    else:
        if len(rows) < 2 * k:
            return []
        parts = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(rows)), strata)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return [(np.concatenate([rows[tr], always_train]), rows[va]) for tr, va in parts]


def inner_split(y: np.ndarray, *, fraction: float, seed: int, groups: np.ndarray | None = None,
                candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a fold's training rows into an inner training part and an inner validation part.

    Model selection inside a fold (early stopping, a hyper-parameter choice) uses the inner
    validation part only, so the fold's own validation rows are never looked at. About
    ``fraction`` of the candidate rows go to validation: the first split of
    :func:`inner_folds` with ``round(1 / fraction)`` splits (same arguments). Returns sorted
    ``(train_idx, val_idx)`` index arrays into the rows; ``val_idx`` is empty when there are
    too few rows or groups.
    """
    n = len(y)
    n_splits = max(2, int(round(1.0 / fraction)))
    pool = np.flatnonzero(candidates) if candidates is not None else np.arange(n)
    if len(pool) < 2 * n_splits:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    splits = inner_folds(y, n_splits=n_splits, seed=seed, groups=groups, candidates=candidates)
    if not splits:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    val_idx = np.sort(splits[0][1])
    train_mask = np.ones(n, dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx


def save_arrays(path: str | os.PathLike, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write a model file: ``meta`` as JSON plus plain numeric ``arrays`` in one ``.npz``
    (no object arrays, so :func:`load_arrays` never needs to unpickle anything)."""
    text = json.dumps(dict(meta), sort_keys=True)
    payload = {"meta.json": np.array(text)}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ModelError(f"model file array {name!r} holds Python objects; only numbers can be saved")
        payload[name] = arr

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **payload)

    atomic_save(path, write)


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a file written by :func:`save_arrays`; :class:`ModelError` naming
    the file when it is not one (nothing is unpickled)."""
    from mer_ensemble.io import read_npz

    arrays = read_npz(path, ModelError)
    if "meta.json" not in arrays:
        raise ModelError(f"{path}: not a model file written by mer-ensemble (no meta.json entry)")
    try:
        meta = json.loads(str(arrays.pop("meta.json")))
    except json.JSONDecodeError:
        raise ModelError(f"{path}: the model file's meta.json entry is not valid JSON") from None
    return meta, arrays
