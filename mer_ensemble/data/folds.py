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
from mer_ensemble.io import atomic_write_text, read_json

__all__ = ["Folds", "load_or_make_folds", "make_folds", "read_folds"]


@dataclass(frozen=True)
class Folds:
    """Fold assignment of the labelled rows.

    ``rows`` ``(m,)`` dataset row indices of the labelled rows; ``fold`` ``(m,)`` fold id
    of each; ``hash`` identifies the assignment (names + fold ids); ``path`` the
    ``folds.csv`` it was read from or written to ("" when it lives in memory only).
    """

    rows: np.ndarray
    fold: np.ndarray
    n_folds: int
    hash: str
    path: str = ""

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


#: what to do about a folds file that cannot be used
_REMAKE = "delete folds.csv and folds.json to make new folds (stored runs then train again) or use another --workdir"


def _read_table(path: Path) -> pd.DataFrame:
    """``folds.csv`` as strings, with one-line errors for an empty, undecodable or unparsable file."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the folds file is empty; {_REMAKE}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a folds file (name,fold) ({reason}); {_REMAKE}") from None
    if list(table.columns) != ["name", "fold"]:
        raise DataError(f"{path}: header is {','.join(map(str, table.columns))!r}, expected 'name,fold'; {_REMAKE}")
    if table.empty:
        raise DataError(f"{path}: has a header but no rows (the file is truncated?); {_REMAKE}")
    return table


def _fold_ids(path: Path, table: pd.DataFrame) -> np.ndarray:
    """The ``fold`` column as integers ``0..K-1`` with no fold empty, or an error naming the line."""
    text = table["fold"].str.strip()
    ok = text.str.fullmatch(r"\d{1,6}")
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        value = table["fold"].iat[i]
        what = "no fold id (the file is truncated?)" if value == "" else f"fold {value!r} is not a fold id 0, 1, ..."
        raise DataError(f"{path}, line {i + 2} ({table['name'].iat[i]!r}): {what}; {_REMAKE}")
    fold = text.astype(np.int64).to_numpy()
    empty = sorted(set(range(int(fold.max()) + 1)) - set(fold.tolist()))
    if empty:
        raise DataError(f"{path}: fold {empty[0]} has no row (folds are numbered 0..{int(fold.max())}); {_REMAKE}")
    return fold


def read_folds(path: Path, dataset: Dataset, *, expected_hash: str | None = None) -> Folds:
    """Read a ``folds.csv`` (``name,fold``) for ``dataset``; it must cover exactly the labelled rows,
    each once, with fold ids ``0..K-1`` (errors name the file and the line).

    With ``expected_hash`` the file must still hold the assignment of that hash (a job
    checks the folds it was planned with this way instead of re-deriving them).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: folds file not found; run mer-ensemble check or train-all to make it")
    table = _read_table(path)
    fold = _fold_ids(path, table)
    repeated = table["name"].duplicated()
    if repeated.any():
        i = int(np.flatnonzero(repeated.to_numpy())[0])
        raise DataError(f"{path}, line {i + 2}: name {table['name'].iat[i]!r} is listed twice; {_REMAKE}")
    labelled = set(dataset.names[dataset.labelled_rows])
    names = set(table["name"])
    if names != labelled:
        extra = sorted(names - labelled)
        if extra:
            raise DataError(
                f"{path}: folds were made for a different labelled set ({len(table)} rows vs {len(labelled)} now; "
                f"e.g. {extra[0]!r} is not a labelled name); delete it or use another --workdir"
            )
        missing = sorted(labelled - names)
        raise DataError(f"{path}: lacks {len(missing)} of the {len(labelled)} labelled names (e.g. {missing[0]!r}): "
                        f"damaged, truncated or made for fewer rows; {_REMAKE}")
    index = pd.Series(np.arange(dataset.n_rows), index=dataset.names)
    rows = index[table["name"]].to_numpy(np.int64)
    folds = Folds(rows, fold, int(fold.max()) + 1, _hash(table["name"].to_numpy(), fold), str(path))
    if expected_hash is not None and folds.hash != expected_hash:
        raise DataError(
            f"{path}: holds folds {folds.hash}, but the job was planned with folds {expected_hash}; "
            "the folds changed under a running train-all (start it again)"
        )
    return folds


def _read_meta(meta_path: Path, path: Path) -> dict:
    """``folds.json``: an object with the hash of ``folds.csv``; anything else (missing, damaged,
    ``{}``) would switch the check of hand edits off, so it is refused."""
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing, so {path.name} cannot be checked against its hash; {_REMAKE}")
    try:
        meta = read_json(meta_path, DataError)
    except DataError as exc:
        raise DataError(f"{exc}; {_REMAKE}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("hash"), str):
        raise DataError(f"{meta_path}: expected a JSON object with the hash of {path.name}, got "
                        f"{json.dumps(meta)[:40]}; {_REMAKE}")
    return meta


def _settings(dataset: Dataset, n_folds: int, seed: int) -> dict:
    """What decides a fold assignment besides the data: checked against ``folds.json`` on reuse."""
    return {
        "n_folds": n_folds,
        "seed": seed,
        "grouped": dataset.groups is not None,
        "stratified_on": dataset.task.targets[0].name,
    }


def load_or_make_folds(dataset: Dataset, workdir: Path, n_folds: int = 5, seed: int = 0) -> Folds:
    """Read ``workdir/folds.csv`` if present, else make and write it (with ``folds.json``).

    A stored assignment is reused only when it fits the data, still has the hash recorded in
    ``folds.json`` and was made with the same settings (``cv.folds``, ``cv.fold_seed``,
    grouping, stratification target); otherwise the error says what differs.
    """
    path = Path(workdir) / "folds.csv"
    meta_path = Path(workdir) / "folds.json"
    wanted = _settings(dataset, n_folds, seed)
    if path.is_file():
        folds = read_folds(path, dataset)
        meta = _read_meta(meta_path, path)
        if meta["hash"] != folds.hash:
            raise DataError(
                f"{path}: the file was edited since it was written (hash {folds.hash}, {meta_path.name} "
                f"records {meta['hash']}); delete both or use another --workdir"
            )
        if folds.n_folds != n_folds:
            raise DataError(
                f"{path}: folds file has {folds.n_folds} folds but cv.folds is {n_folds}; "
                "delete it or use another --workdir"
            )
        stored = {k: meta.get(k, v) for k, v in wanted.items()}
        changed = [k for k in wanted if stored[k] != wanted[k]]
        if changed:
            keys = {"n_folds": "cv.folds", "seed": "cv.fold_seed", "grouped": "grouping (data.group_by)",
                    "stratified_on": "the first target"}
            detail = ", ".join(f"{keys[k]} {stored[k]!r} then, {wanted[k]!r} now" for k in changed)
            raise DataError(f"{path}: folds were made with other settings ({detail}); "
                            "delete it or use another --workdir")
        return folds
    folds = make_folds(dataset, n_folds, seed)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"name": dataset.names[folds.rows], "fold": folds.fold})
    meta = {"hash": folds.hash, **wanted, "n_rows": int(len(folds.rows))}
    # folds.json first: a write killed in between leaves no folds.csv, and the next call makes both again
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    atomic_write_text(path, frame.to_csv(index=False))
    return Folds(folds.rows, folds.fold, folds.n_folds, folds.hash, str(path))
