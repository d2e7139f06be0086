"""Fixed folds: computed once per dataset, written to the workdir with a hash, read by every step.

Stratified on the first target (rows whose first target is unknown form their own
stratum), grouped when ``data.group_by`` is set (a group never spans two folds).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import DataError
from mer_ensemble.io import atomic_write_text

__all__ = ["Folds", "load_or_make_folds", "make_folds"]


@dataclass(frozen=True)
class Folds:
    """Fold assignment of the labelled rows.

    ``rows`` ``(m,)`` dataset row indices of the labelled rows; ``fold`` ``(m,)`` fold id
    of each; ``hash`` identifies the assignment (names + fold ids).
    """

    rows: np.ndarray
    fold: np.ndarray
    n_folds: int
    hash: str

    def split(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Dataset row indices ``(train_rows, valid_rows)`` of fold ``k``."""
        return self.rows[self.fold != k], self.rows[self.fold == k]

    def fold_of_rows(self, n_rows: int) -> np.ndarray:
        """``(n_rows,)`` fold id per dataset row, -1 for rows outside the folds."""
        out = np.full(n_rows, -1, dtype=np.int64)
        out[self.rows] = self.fold
        return out


def _hash(names: np.ndarray, fold: np.ndarray) -> str:
    h = hashlib.sha1()
    for name, k in zip(names, fold, strict=False):
        h.update(f"{name}\t{k}\n".encode())
    return h.hexdigest()[:16]


def make_folds(dataset: Dataset, n_folds: int = 5, seed: int = 0) -> Folds:
    """Assign the labelled rows to ``n_folds`` folds (stratified, grouped when groups exist)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    rows = dataset.labelled_rows
    if len(rows) < n_folds:
        raise DataError(f"cv.folds: {n_folds} folds need at least {n_folds} labelled rows; found {len(rows)}")
    first = dataset.task.targets[0].name
    strata = dataset.labels[first][rows].copy()
    strata[strata < 0] = strata.max() + 1
    fold = np.empty(len(rows), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        if dataset.groups is not None:
            groups = dataset.groups[rows]
            n_groups = len(set(groups))
            if n_groups < n_folds:
                raise DataError(
                    f"cv.folds: {n_folds} folds need at least {n_folds} groups in data.group_by; found {n_groups}"
                )
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            parts = splitter.split(np.zeros(len(rows)), strata, groups)
        else:
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            parts = splitter.split(np.zeros(len(rows)), strata)
        for k, (_, valid) in enumerate(parts):
            fold[valid] = k
    return Folds(rows, fold, n_folds, _hash(dataset.names[rows], fold))


def load_or_make_folds(dataset: Dataset, workdir: Path, n_folds: int = 5, seed: int = 0) -> Folds:
    """Read ``workdir/folds.csv`` if present (checking it fits the data), else make and write it."""
    path = workdir / "folds.csv"
    meta_path = workdir / "folds.json"
    if path.is_file():
        table = pd.read_csv(path, dtype={"name": str, "fold": np.int64})
        index = pd.Series(np.arange(dataset.n_rows), index=dataset.names)
        labelled = set(dataset.names[dataset.labelled_rows])
        if set(table["name"]) != labelled:
            raise DataError(
                f"{path}: folds were made for a different labelled set ({len(table)} rows vs {len(labelled)} now); "
                "delete it or use another --workdir"
            )
        k = int(table["fold"].max()) + 1
        if k != n_folds:
            raise DataError(
                f"{path}: folds file has {k} folds but cv.folds is {n_folds}; delete it or use another --workdir"
            )
        rows = index[table["name"]].to_numpy(np.int64)
        fold = table["fold"].to_numpy(np.int64)
        return Folds(rows, fold, k, _hash(table["name"].to_numpy(), fold))
    folds = make_folds(dataset, n_folds, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"name": dataset.names[folds.rows], "fold": folds.fold})
    atomic_write_text(path, frame.to_csv(index=False))
    meta = {
        "hash": folds.hash,
        "n_folds": n_folds,
        "seed": seed,
        "grouped": dataset.groups is not None,
        "stratified_on": dataset.task.targets[0].name,
        "n_rows": int(len(folds.rows)),
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return folds
