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

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import StoreError
from mer_ensemble.io import atomic_save_npz, atomic_write_json

__all__ = ["RunRecord", "list_run_keys", "load_run", "load_runs", "save_run", "store_dir"]


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


def load_run(workdir: Path, key: str) -> RunRecord:
    folder = store_dir(workdir)
    meta_path = folder / f"{key}.json"
    if not meta_path.is_file():
        known = list_run_keys(workdir)
        raise StoreError(f"no run {key!r} in {folder}; stored runs: {', '.join(known) or 'none'}")
    manifest = json.loads(meta_path.read_text())
    parts: dict[str, dict[str, np.ndarray]] = {"oof": {}, "test": {}, "pool": {}, "pool_by_fold": {}, "extra": {}}
    with np.load(folder / f"{key}.npz") as npz:
        plain = {k: npz[k] for k in ("rows", "fold", "test_rows", "pool_rows")}
        for name in npz.files:
            if "/" in name:
                kind, target = name.split("/", 1)
                parts[kind][target] = npz[name]
    return RunRecord(manifest=manifest, **{k: v for k, v in parts.items() if k != "extra"}, extra=parts["extra"],
                     **plain)


def load_runs(workdir: Path, keys: list[str] | None = None) -> list[RunRecord]:
    """Every complete record in the workdir (or those named in ``keys``, in that order)."""
    keys = list_run_keys(workdir) if keys is None else keys
    return [load_run(workdir, k) for k in keys]
