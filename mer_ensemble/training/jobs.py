"""One job = one model × fold × seed: fit on the fold's training rows, predict the rest.

A job is a plain, picklable :class:`JobSpec`; :func:`run_job` can run in this
process, a joblib worker or a Dask worker, reading the dataset from the
workdir's feature cache and writing its result atomically to ``spec.out``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.config import Config, parse_config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import StoreError
from mer_ensemble.io import atomic_save_npz, open_npz

__all__ = ["JobSpec", "build_inputs", "run_job", "share_dataset"]

PREDICT_CHUNK = 4096


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to run one job (made by :class:`~mer_ensemble.training.plan.JobBuilder`).

    ``config`` (a dump of the validated config) tells the worker how to read the dataset
    from the workdir's cache; ``folds_path``/``folds_hash`` name the folds it was planned
    with, which the worker verifies.
    """

    config: dict[str, Any]
    config_source: str
    workdir: str
    folds_path: str
    folds_hash: str
    run_key: str
    model: dict[str, Any]
    features: tuple[str, ...]
    targets: tuple[str, ...]
    fold: int
    seed: int
    out: str
    threads: int = 1
    pseudo_file: str | None = None
    device: str = "auto"


def build_inputs(ds: Dataset, features: list[str], rows: np.ndarray, level: str, max_frames: int) -> dict[str, Any]:
    """Model inputs for ``rows``: ``(n, D)`` arrays, or Frames for frame-level features when ``level == "frame"``."""
    out: dict[str, Any] = {}
    for f in features:
        block = ds.features[f]
        if level == "frame" and block.level == "frame":
            out[f] = block.frames(rows, max_len=max_frames)
        else:
            out[f] = np.ascontiguousarray(block.pooled()[rows], dtype=np.float32)
    return out


_DATASETS: dict[tuple[str, str], tuple[Config, Dataset]] = {}


def _dataset_key(config: dict[str, Any], source: str) -> tuple[str, str]:
    return source, json.dumps(config, sort_keys=True, default=str)


def share_dataset(job: JobSpec, cfg: Config, ds: Dataset) -> None:
    """Let jobs like ``job`` that run in this process use the already loaded ``ds``."""
    _DATASETS.clear()
    _DATASETS[_dataset_key(job.config, job.config_source)] = (cfg, ds)


def _dataset_for(spec: JobSpec) -> tuple[Config, Dataset]:
    from mer_ensemble.data import load_dataset

    key = _dataset_key(spec.config, spec.config_source)
    if key not in _DATASETS:
        cfg = parse_config(dict(spec.config), spec.config_source)
        _DATASETS.clear()
        _DATASETS[key] = (cfg, load_dataset(cfg, Path(spec.workdir)))
    return _DATASETS[key]


def _row_groups(ds: Dataset, rows: np.ndarray) -> np.ndarray | None:
    """Groups of ``rows`` for inner splits (``data.group_by``); rows without a group are their own."""
    if ds.groups is None:
        return None
    groups = ds.groups[rows]
    return np.array([g if isinstance(g, str) and g else f"row{r}" for g, r in zip(groups, rows, strict=True)],
                    dtype=object)


def _predict(model: Any, ds: Dataset, features: list[str], rows: np.ndarray, level: str, max_frames: int,
             targets: list[str]) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {t: [] for t in targets}
    for start in range(0, len(rows), PREDICT_CHUNK):
        chunk = rows[start : start + PREDICT_CHUNK]
        proba = model.predict_proba(build_inputs(ds, features, chunk, level, max_frames))
        for t in targets:
            parts[t].append(np.asarray(proba[t], dtype=np.float32))
    return {
        t: (np.concatenate(parts[t]) if parts[t] else np.zeros((0, ds.task.target(t).n_classes), np.float32))
        for t in targets
    }


def run_job(spec: JobSpec) -> str:
    """Fit one fold model and write ``spec.out`` (skipped when it exists); returns the path."""
    out = Path(spec.out)
    if out.is_file():
        return str(out)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(spec.threads):
        try:
            import torch

            torch.set_num_threads(spec.threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        return _run_job(spec)


def _run_job(spec: JobSpec) -> str:
    from mer_ensemble.data.folds import read_folds
    from mer_ensemble.models import create_model, get_model_class

    cfg, ds = _dataset_for(spec)
    job_start = time.perf_counter()
    folds = read_folds(Path(spec.folds_path), ds, expected_hash=spec.folds_hash)
    train_rows, valid_rows = folds.split(spec.fold)
    n_labelled = len(train_rows)
    features, targets = list(spec.features), list(spec.targets)
    y_train = {t: ds.labels[t][train_rows] for t in targets}
    if spec.pseudo_file:
        with open_npz(spec.pseudo_file, StoreError) as pseudo:
            extra_rows = pseudo[f"rows_{spec.fold}"]
            if len(set(extra_rows) & set(valid_rows)):
                raise RuntimeError("pseudo-labelled rows overlap the fold's validation rows")
            train_rows = np.concatenate([train_rows, extra_rows])
            for t in targets:
                y_train[t] = np.concatenate([y_train[t], pseudo[f"label_{spec.fold}/{t}"]])
    y_valid = {t: ds.labels[t][valid_rows] for t in targets}
    cls = get_model_class(spec.model["name"])
    level = getattr(cls, "input_level", "utt")
    max_frames = cfg.data.max_frames
    task = ds.task

    def score_fn(y_true: dict[str, np.ndarray], proba: dict[str, np.ndarray]) -> float:
        """The task's combined score over the targets given (one target: its own metric)."""
        from mer_ensemble.metrics import combine_scores

        scored = [t for t in targets if t in y_true and t in proba]
        return combine_scores([task.target(t).score(y_true[t], np.asarray(proba[t]).argmax(1)) for t in scored],
                              task.combine)

    model = create_model(
        spec.model["name"],
        targets={t: task.target(t).n_classes for t in targets},
        feature_dims={f: ds.features[f].dim for f in features},
        modalities={f: ds.features[f].modality for f in features},
        seed=spec.seed * 1000 + spec.fold,
        device=spec.device,
        **spec.model.get("params", {}),
    )
    unlabeled = None
    if getattr(model, "uses_unlabeled", False) and len(ds.pool_rows):
        unlabeled = build_inputs(ds, features, ds.pool_rows, level, max_frames)
    extra: dict[str, Any] = {}
    if getattr(model, "uses_variants", False):
        # noisy variants of the training rows only (never validation, test or pool rows)
        variants = {
            f: [
                v.frames(train_rows, max_len=max_frames) if level == "frame" and v.level == "frame"
                else np.ascontiguousarray(v.pooled()[train_rows], dtype=np.float32)
                for v in ds.variants[f]
            ]
            for f in features
            if ds.variants.get(f)
        }
        if variants:
            extra["X_variants"] = variants
    start = time.perf_counter()
    # the fold's validation rows never reach fit: early stopping and any choice a model makes
    # use an inner split of the training rows (grouped like the folds, original labels only)
    model.fit(
        build_inputs(ds, features, train_rows, level, max_frames),
        y_train,
        score_fn=score_fn,
        X_unlabeled=unlabeled,
        groups=_row_groups(ds, train_rows),
        val_candidates=np.arange(len(train_rows)) < n_labelled,
        **extra,
    )
    fit_seconds = time.perf_counter() - start
    valid = _predict(model, ds, features, valid_rows, level, max_frames, targets)
    test = _predict(model, ds, features, ds.test_rows, level, max_frames, targets)
    pool = _predict(model, ds, features, ds.pool_rows, level, max_frames, targets)
    scores = np.array([task.target(t).score(y_valid[t], valid[t].argmax(1)) for t in targets])
    arrays = {"valid_rows": valid_rows, "scores": scores, "fit_seconds": np.array(fit_seconds),
              "predict_seconds": np.array(time.perf_counter() - start - fit_seconds),
              "n_train": np.array(len(train_rows))}
    arrays["selected"] = np.array(json.dumps(getattr(model, "selected_", {}), sort_keys=True, default=str))
    module = getattr(model, "module_", None)
    if module is not None and getattr(model, "fit_result_", None) is not None:
        arrays["epochs_run"] = np.array(model.fit_result_.epochs_run)
        arrays["n_params"] = np.array(sum(p.numel() for p in module.parameters()))
    arrays["threads"] = np.array(spec.threads)
    arrays["job_seconds"] = np.array(time.perf_counter() - job_start)
    for t in targets:
        arrays[f"valid/{t}"] = valid[t]
        arrays[f"test/{t}"] = test[t]
        arrays[f"pool/{t}"] = pool[t]
    atomic_save_npz(Path(spec.out), **arrays)
    return spec.out
