"""One job = one model × fold × seed: fit on the fold's training rows, predict the rest.

A job is a plain, picklable :class:`JobSpec`; :func:`run_job` can run in this
process, a joblib worker or a Dask worker, reading the dataset from the
workdir's feature cache and writing its result atomically to ``spec.out``. A family
that keeps its fitted model (``keeps_model``) has it saved beside that result
(:func:`model_path`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.config import Config, parse_config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.data.raw import raw_key
from mer_ensemble.errors import StoreError
from mer_ensemble.io import atomic_save_npz, open_npz
from mer_ensemble.metrics import combine_scores
from mer_ensemble.tasks import TaskSpec

__all__ = ["JobSpec", "build_inputs", "job_seconds", "model_path", "run_job", "share_dataset"]

PREDICT_CHUNK = 4096


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to run one job (made by :class:`~mer_ensemble.training.plan.JobBuilder`).

    ``config`` (a dump of the validated config) tells the worker how to read the dataset
    from the workdir's cache; ``folds_path``/``folds_hash`` name the folds it was planned
    with, which the worker verifies. ``raw`` the raw inputs the model reads (``"text"``,
    ``"audio"``); ``model_ref`` where the family's class lives (``module:QualName``), so a
    worker process registers a family that was registered outside the package (e.g. by a
    test module) by importing that module.
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
    raw: tuple[str, ...] = ()
    model_ref: str = ""


def build_inputs(ds: Dataset, features: list[str], rows: np.ndarray, level: str, max_frames: int,
                 raw: Sequence[str] = ()) -> dict[str, Any]:
    """Model inputs for ``rows``: ``(n, D)`` arrays, or Frames for frame-level features when
    ``level == "frame"``, and each raw input of ``raw`` under ``raw:<kind>`` as an ``(n,)`` object array."""
    out: dict[str, Any] = {}
    for f in features:
        block = ds.features[f]
        if level == "frame" and block.level == "frame":
            out[f] = block.frames(rows, max_len=max_frames)
        else:
            out[f] = np.ascontiguousarray(block.pooled()[rows], dtype=np.float32)
    for kind in raw:
        out[raw_key(kind)] = ds.raw[kind][rows]
    return out


def model_path(job: JobSpec) -> Path:
    """Where a job keeps its fitted model when the family asks (``keeps_model``): beside its
    result, ``fold<k>-seed<s>.model``; read it back with the family's ``load``."""
    return Path(job.out).with_suffix(".model")


def job_seconds(job: JobSpec) -> float:
    """Seconds a finished job took (read from its file; fit + predict for files of older versions)."""
    with np.load(job.out) as res:
        if "job_seconds" in res.files:
            return float(res["job_seconds"])
        return float(res["fit_seconds"]) + float(res["predict_seconds"])


_DATASETS: dict[tuple[str, str], tuple[Config, Dataset]] = {}


def _dataset_key(config: dict[str, Any], source: str) -> tuple[str, str]:
    return source, json.dumps(config, sort_keys=True, default=str)


def share_dataset(job: JobSpec, cfg: Config, ds: Dataset) -> None:
    """Let jobs like ``job`` that run in this process use the already loaded ``ds``."""
    _DATASETS.clear()
    _DATASETS[_dataset_key(job.config, job.config_source)] = (cfg, ds)


def _dataset_for(spec: JobSpec) -> tuple[Config, Dataset]:
    from mer_ensemble.data import load_dataset
    from mer_ensemble.experiment import data_settings

    key = _dataset_key(spec.config, spec.config_source)
    if key not in _DATASETS:
        cfg = parse_config(dict(spec.config), spec.config_source)
        _DATASETS.clear()
        _DATASETS[key] = (cfg, load_dataset(data_settings(cfg), Path(spec.workdir)))
    return _DATASETS[key]


def _row_groups(ds: Dataset, rows: np.ndarray) -> np.ndarray | None:
    """Groups of ``rows`` for inner splits (``data.group_by``); rows without a group are their own."""
    if ds.groups is None:
        return None
    groups = ds.groups[rows]
    return np.array([g if isinstance(g, str) and g else f"row{r}" for g, r in zip(groups, rows, strict=True)],
                    dtype=object)


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
    """Read the fold's rows, fit the model on the training part (plus any pseudo-labelled
    rows), predict the validation, test and pool rows, write the result file."""
    from mer_ensemble.data.folds import read_folds
    from mer_ensemble.models import resolve_model

    cfg, ds = _dataset_for(spec)
    job_start = time.perf_counter()
    folds = read_folds(Path(spec.folds_path), ds, expected_hash=spec.folds_hash)
    train_rows, valid_rows = folds.split(spec.fold)
    n_labelled = len(train_rows)
    train_rows, y_train = _training_rows(spec, ds, train_rows, valid_rows)
    cls = resolve_model(spec.model["name"], spec.model_ref or None)
    inputs = partial(build_inputs, ds, list(spec.features), level=cls.input_level, max_frames=cfg.data.max_frames,
                     raw=spec.raw)
    model = _create(spec, ds)
    start = time.perf_counter()
    # the fold's validation rows never reach fit: early stopping and any choice a model makes
    # use an inner split of the training rows (grouped like the folds, original labels only)
    model.fit(inputs(train_rows), y_train, score_fn=_score_fn(ds.task, list(spec.targets)),
              groups=_row_groups(ds, train_rows), val_candidates=np.arange(len(train_rows)) < n_labelled,
              **_extra_fit_inputs(model, ds, spec, train_rows, cls.input_level, cfg.data.max_frames, inputs))
    fit_seconds = time.perf_counter() - start
    if model.keeps_model:  # before the result: a result file on disk means its model file is there too
        model.save(str(model_path(spec)))
    parts = {part: _predict(model, inputs, rows, ds.task, list(spec.targets))
             for part, rows in (("valid", valid_rows), ("test", ds.test_rows), ("pool", ds.pool_rows))}
    arrays = _result_arrays(spec, ds, model, valid_rows, parts, n_train=len(train_rows), fit_seconds=fit_seconds,
                            predict_seconds=time.perf_counter() - start - fit_seconds)
    arrays["job_seconds"] = np.array(time.perf_counter() - job_start)
    atomic_save_npz(Path(spec.out), **arrays)
    return spec.out


def _training_rows(spec: JobSpec, ds: Dataset, train_rows: np.ndarray,
                   valid_rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The fold's training rows and their labels per target, with the round's pseudo-labelled
    rows of this fold appended (never one of the fold's validation rows)."""
    y_train = {t: ds.labels[t][train_rows] for t in spec.targets}
    if not spec.pseudo_file:
        return train_rows, y_train
    with open_npz(spec.pseudo_file, StoreError) as pseudo:
        extra_rows = pseudo[f"rows_{spec.fold}"]
        if len(set(extra_rows) & set(valid_rows)):
            raise RuntimeError("pseudo-labelled rows overlap the fold's validation rows")
        for t in spec.targets:
            y_train[t] = np.concatenate([y_train[t], pseudo[f"label_{spec.fold}/{t}"]])
    return np.concatenate([train_rows, extra_rows]), y_train


def _create(spec: JobSpec, ds: Dataset) -> Any:
    """The job's model, built for the dataset's targets and feature widths."""
    from mer_ensemble.models import create_model

    task = ds.task
    return create_model(
        spec.model["name"],
        targets={t: task.target(t).n_classes for t in spec.targets},
        feature_dims={f: ds.features[f].dim for f in spec.features},
        modalities={f: ds.features[f].modality for f in spec.features},
        seed=spec.seed * 1000 + spec.fold,
        device=spec.device,
        **spec.model.get("params", {}),
    )


def _score_fn(task: TaskSpec, targets: list[str]) -> Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], float]:
    """The task's combined score over the targets given (one target: its own metric)."""

    def score(y_true: dict[str, np.ndarray], proba: dict[str, np.ndarray]) -> float:
        scored = [t for t in targets if t in y_true and t in proba]
        return combine_scores([task.target(t).score(y_true[t], np.asarray(proba[t]).argmax(1)) for t in scored],
                              task.combine)

    return score


def _extra_fit_inputs(model: Any, ds: Dataset, spec: JobSpec, train_rows: np.ndarray, level: str, max_frames: int,
                      inputs: Callable[[np.ndarray], dict[str, Any]]) -> dict[str, Any]:
    """``X_unlabeled`` (the pool rows) for a model that ``uses_unlabeled`` and ``X_variants`` (noisy
    variants of the training rows only, never validation, test or pool rows) for one that ``uses_variants``."""
    extra: dict[str, Any] = {"X_unlabeled": None}
    if model.uses_unlabeled and len(ds.pool_rows):
        extra["X_unlabeled"] = inputs(ds.pool_rows)
    if model.uses_variants:
        variants = {
            f: [
                v.frames(train_rows, max_len=max_frames) if level == "frame" and v.level == "frame"
                else np.ascontiguousarray(v.pooled()[train_rows], dtype=np.float32)
                for v in ds.variants[f]
            ]
            for f in spec.features
            if ds.variants.get(f)
        }
        if variants:
            extra["X_variants"] = variants
    return extra


def _predict(model: Any, inputs: Callable[[np.ndarray], dict[str, Any]], rows: np.ndarray, task: TaskSpec,
             targets: list[str]) -> dict[str, np.ndarray]:
    """Probabilities per target ``(len(rows), C)`` float32, predicted :data:`PREDICT_CHUNK` rows at a time."""
    parts: dict[str, list[np.ndarray]] = {t: [] for t in targets}
    for start in range(0, len(rows), PREDICT_CHUNK):
        proba = model.predict_proba(inputs(rows[start : start + PREDICT_CHUNK]))
        for t in targets:
            parts[t].append(np.asarray(proba[t], dtype=np.float32))
    return {
        t: (np.concatenate(parts[t]) if parts[t] else np.zeros((0, task.target(t).n_classes), np.float32))
        for t in targets
    }


def _result_arrays(spec: JobSpec, ds: Dataset, model: Any, valid_rows: np.ndarray,
                   parts: dict[str, dict[str, np.ndarray]], *, n_train: int, fit_seconds: float,
                   predict_seconds: float) -> dict[str, np.ndarray]:
    """What a job file holds: the validation rows and scores, the predictions per part and
    target, timings, what the model chose inside the fold and its network's size."""
    targets = list(spec.targets)
    scores = np.array([ds.task.target(t).score(ds.labels[t][valid_rows], parts["valid"][t].argmax(1))
                       for t in targets])
    arrays = {"valid_rows": valid_rows, "scores": scores, "fit_seconds": np.array(fit_seconds),
              "predict_seconds": np.array(predict_seconds), "n_train": np.array(n_train)}
    arrays["selected"] = np.array(json.dumps(getattr(model, "selected_", {}), sort_keys=True, default=str))
    module = getattr(model, "module_", None)
    if module is not None and getattr(model, "fit_result_", None) is not None:
        arrays["epochs_run"] = np.array(model.fit_result_.epochs_run)
        arrays["n_params"] = np.array(sum(p.numel() for p in module.parameters()))
    arrays["threads"] = np.array(spec.threads)
    for t in targets:
        for part in ("valid", "test", "pool"):
            arrays[f"{part}/{t}"] = parts[part][t]
    return arrays
