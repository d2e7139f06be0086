"""The prediction store: one record per model run, in ``<workdir>/store/``.

A record is two files written atomically: ``<key>.json`` (the manifest: model name
and params, features, targets, seeds, folds hash, data fingerprint, class order per
target, CV scores, time, pseudo-label round) and ``<key>.npz`` (the arrays).

Arrays, per target ``t`` with ``C`` classes:

- ``oof/<t>`` ``(m, C)``: out-of-fold probabilities of the labelled rows, in the order
  of ``rows`` (each row predicted by the fold model that did not train on it,
  averaged over seeds);
- ``test/<t>`` ``(n_test, C)``: mean over fold models and seeds, rows ``test_rows``;
- ``pool/<t>`` ``(n_pool, C)``: same for the unlabelled pool, rows ``pool_rows``;
- ``pool_by_fold/<t>`` ``(K, n_pool, C)``: the pool as seen by each fold's models
  (mean over seeds), for leak-free per-fold pseudo-labels;
- ``extra/test_by_fold/<t>`` ``(K, n_test, C)``: the test rows as seen by each fold's models;
- ``rows``, ``fold``, ``test_rows``, ``pool_rows``: dataset row indices and fold ids.

Read every record with one call: ``load_runs(workdir)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import StoreError
from mer_ensemble.io import atomic_save_npz, atomic_write_json, read_json, read_npz

#: manifest keys every reader relies on
REQUIRED_KEYS = ("key", "targets", "classes")

__all__ = [
    "RunRecord",
    "list_run_keys",
    "load_run",
    "load_runs",
    "no_runs_error",
    "require_runs",
    "save_run",
    "store_dir",
]


@dataclass
class RunRecord:
    """One model run: manifest plus prediction arrays (see the module doc for shapes)."""

    manifest: dict[str, Any]
    oof: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    pool: dict[str, np.ndarray]
    pool_by_fold: dict[str, np.ndarray]
    rows: np.ndarray
    fold: np.ndarray
    test_rows: np.ndarray
    pool_rows: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def targets(self) -> list[str]:
        return list(self.manifest["targets"])

    def classes(self, target: str) -> list[str]:
        return list(self.manifest["classes"][target])


def store_dir(workdir: Path) -> Path:
    return Path(workdir) / "store"


def save_run(workdir: Path, record: RunRecord) -> Path:
    """Write a record's arrays, then its manifest (a manifest marks a complete record)."""
    folder = store_dir(workdir)
    arrays: dict[str, np.ndarray] = {
        "rows": record.rows,
        "fold": record.fold,
        "test_rows": record.test_rows,
        "pool_rows": record.pool_rows,
    }
    for kind in ("oof", "test", "pool", "pool_by_fold"):
        for target, arr in getattr(record, kind).items():
            arrays[f"{kind}/{target}"] = np.asarray(arr, dtype=np.float32)
    for name, arr in record.extra.items():
        arrays[f"extra/{name}"] = arr
    atomic_save_npz(folder / f"{record.key}.npz", **arrays)
    return atomic_write_json(folder / f"{record.key}.json", record.manifest)


def list_run_keys(workdir: Path) -> list[str]:
    """Keys of the complete records, sorted."""
    folder = store_dir(workdir)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.npz").is_file())


def no_runs_error(workdir: Path) -> StoreError:
    """The error of a command that needs stored runs where ``workdir`` has none."""
    return StoreError(f"no stored runs in {store_dir(workdir)}; run mer-ensemble train-all first")


def require_runs(workdir: Path) -> list[str]:
    """Keys of the complete records, sorted; :func:`no_runs_error` when there is none."""
    keys = list_run_keys(workdir)
    if not keys:
        raise no_runs_error(workdir)
    return keys


def load_run(workdir: Path, key: str) -> RunRecord:
    """Read and check one record; every problem is a :class:`StoreError` naming the run and file."""
    folder = store_dir(workdir)
    meta_path = folder / f"{key}.json"
    if not meta_path.is_file():
        known = list_run_keys(workdir)
        raise StoreError(f"no run {key!r} in {folder}; stored runs: {', '.join(known) or 'none'}")
    what = f"run {key}"
    manifest = read_json(meta_path, StoreError, what=what)
    if not isinstance(manifest, dict):
        raise StoreError(f"{what}: {meta_path}: expected a JSON object (the run's manifest)")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise StoreError(f"{what}: {meta_path}: manifest lacks {missing}; the record is damaged (retrain the run)")
    problem = _manifest_problem(manifest, key)
    if problem:
        raise StoreError(f"{what}: {meta_path}: {problem}; the record is damaged (retrain the run)")
    npz_path = folder / f"{key}.npz"
    if not npz_path.is_file():
        raise StoreError(f"{what}: {npz_path} not found; the record is incomplete (retrain the run)")
    arrays = read_npz(npz_path, StoreError, what=what)
    parts: dict[str, dict[str, np.ndarray]] = {"oof": {}, "test": {}, "pool": {}, "pool_by_fold": {}, "extra": {}}
    for name, value in arrays.items():
        if "/" in name:
            kind, target = name.split("/", 1)
            if kind in parts:
                parts[kind][target] = value
    absent = [k for k in ("rows", "fold", "test_rows", "pool_rows") if k not in arrays]
    if absent:
        raise StoreError(f"{what}: {npz_path} lacks array(s) {absent}; the record is damaged (retrain the run)")
    plain = {k: arrays[k] for k in ("rows", "fold", "test_rows", "pool_rows")}
    record = RunRecord(manifest=manifest, **{k: v for k, v in parts.items() if k != "extra"}, extra=parts["extra"],
                       **plain)
    _check_record(record, npz_path)
    return record


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _manifest_problem(manifest: dict[str, Any], key: str) -> str | None:
    """What is wrong with the types of a manifest's keys (None when nothing is)."""
    if manifest["key"] != key:
        return f"the manifest names run {manifest['key']!r}, but the file is {key}.json"
    targets, classes = manifest["targets"], manifest["classes"]
    if not _is_names(targets) or not targets:
        return f"targets is {targets!r}, expected a list of target names"
    if not isinstance(classes, dict) or any(not _is_names(classes.get(t)) or len(classes[t]) < 2 for t in targets):
        return f"classes is {str(classes)[:60]!r}, expected a list of at least 2 class names per target"
    seeds = manifest.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and all(type(s) is int for s in seeds)):
        return f"seeds is {seeds!r}, expected a list of whole numbers"
    for name in ("run_id", "folds_hash", "data_fingerprint"):
        if name in manifest and not isinstance(manifest[name], str):
            return f"{name} is {manifest[name]!r}, expected text"
    raw = manifest.get("raw_inputs")
    if raw is not None and not (isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values())):
        return f"raw_inputs is {str(raw)[:60]!r}, expected a mapping of input kinds to digests"
    return None


def _check_record(record: RunRecord, path: Path) -> None:
    """Shapes agree with the manifest's targets and classes; probabilities are finite."""
    what = f"run {record.manifest['key']}: {path}"
    m, n_test, n_pool = len(record.rows), len(record.test_rows), len(record.pool_rows)
    if record.fold.shape != record.rows.shape:
        raise StoreError(f"{what}: fold has shape {record.fold.shape}, rows {record.rows.shape}; expected the same")
    try:
        classes = {t: len(record.classes(t)) for t in record.targets}
    except (KeyError, TypeError):
        raise StoreError(f"{what}: the manifest's classes do not cover its targets {record.targets}") from None
    for target, n_classes in classes.items():
        expected = {"oof": (m, n_classes), "test": (n_test, n_classes), "pool": (n_pool, n_classes)}
        for kind, shape in expected.items():
            arr = getattr(record, kind).get(target)
            if arr is None:
                raise StoreError(f"{what}: no {kind}/{target} array; the record is damaged (retrain the run)")
            if arr.shape != shape:
                lacks = f"run {record.manifest['key']} has no test predictions for {target}; " if kind == "test" else ""
                raise StoreError(f"{lacks}{what}: {kind}/{target} has shape {arr.shape}, expected {shape}")
        by_fold = record.pool_by_fold.get(target)
        if by_fold is not None and (by_fold.ndim != 3 or by_fold.shape[1:] != (n_pool, n_classes)):
            raise StoreError(f"{what}: pool_by_fold/{target} has shape {by_fold.shape}, expected (K, {n_pool}, "
                             f"{n_classes})")
        for kind in ("oof", "test", "pool", "pool_by_fold"):
            arr = getattr(record, kind).get(target)
            if arr is not None and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise StoreError(f"{what}: {kind}/{target} holds {bad} NaN/inf value(s); retrain the run")


def load_runs(workdir: Path, keys: list[str] | None = None) -> list[RunRecord]:
    """Every complete record in the workdir (or those named in ``keys``, in that order)."""
    keys = list_run_keys(workdir) if keys is None else keys
    return [load_run(workdir, k) for k in keys]
