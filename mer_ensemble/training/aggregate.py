"""A run's job files combined into one store record (:class:`~mer_ensemble.store.RunRecord`).

Every labelled row's out-of-fold prediction comes from the fold model that did not train on
it (averaged over seeds); test predictions are the mean over fold models and seeds; the pool
is kept per fold (``pool_by_fold``), as each fold's models see it, for pseudo-labelling.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.data.folds import Folds
from mer_ensemble.errors import StoreError
from mer_ensemble.io import open_npz
from mer_ensemble.metrics import combine_scores
from mer_ensemble.store import RunRecord
from mer_ensemble.training.plan import RunPlan

__all__ = ["aggregate"]


@dataclass
class _Sums:
    """Job results summed per part and target: ``parts["oof"][t]`` ``(m, C)``, ``parts["test"][t]``
    ``(n_test, C)``, ``parts["test_by_fold"][t]`` and ``parts["pool_by_fold"][t]`` ``(K, n, C)``; how
    often each labelled row was predicted; scores per seed and fold; fit seconds; choices per job."""

    parts: dict[str, dict[str, np.ndarray]]
    seen: np.ndarray
    fold_scores: np.ndarray
    fit_seconds: float = 0.0
    selected: dict[str, Any] = field(default_factory=dict)


def _sum_jobs(plan: RunPlan, ds: Dataset, folds: Folds) -> _Sums:
    """Read every job file of ``plan``, checking each predicts only its own fold's rows."""
    m, k_folds = len(folds.rows), folds.n_folds
    pos = np.full(ds.n_rows, -1, dtype=np.int64)
    pos[folds.rows] = np.arange(m)
    shapes = {"oof": (m,), "test": (len(ds.test_rows),), "test_by_fold": (k_folds, len(ds.test_rows)),
              "pool_by_fold": (k_folds, len(ds.pool_rows))}
    sums = _Sums(parts={part: {t: np.zeros((*shape, ds.task.target(t).n_classes)) for t in plan.targets}
                        for part, shape in shapes.items()},
                 seen=np.zeros(m, dtype=np.int64), fold_scores=np.zeros((len(plan.seeds), k_folds, len(plan.targets))))
    oof, test, test_by_fold, pool_by_fold = (sums.parts[p] for p in shapes)
    for job in plan.jobs:
        if not Path(job.out).is_file():
            raise StoreError(f"run {plan.key}: job result {job.out} is missing")
        with open_npz(job.out, StoreError, what=f"run {plan.key}") as res:
            idx = pos[res["valid_rows"]]
            if (folds.fold[idx] != job.fold).any():
                raise StoreError(f"run {plan.key}: {job.out} predicts rows outside fold {job.fold}")
            sums.seen[idx] += 1
            for t in plan.targets:
                oof[t][idx] += res[f"valid/{t}"]
                test[t] += res[f"test/{t}"]
                test_by_fold[t][job.fold] += res[f"test/{t}"]
                pool_by_fold[t][job.fold] += res[f"pool/{t}"]
            sums.fold_scores[plan.seeds.index(job.seed), job.fold] = res["scores"]
            if "selected" in res.files:
                sums.selected[f"fold{job.fold}-seed{job.seed}"] = json.loads(str(res["selected"]))
            sums.fit_seconds += float(res["fit_seconds"])
    return sums


def aggregate(plan: RunPlan, ds: Dataset, folds: Folds, cfg: Config, wall_seconds: float) -> RunRecord:
    """Combine a run's job files into one record: OOF per row, test and pool as fold/seed means."""
    sums = _sum_jobs(plan, ds, folds)
    n_seeds = len(plan.seeds)
    if (sums.seen != n_seeds).any():
        raise StoreError(f"run {plan.key}: {int((sums.seen != n_seeds).sum())} labelled rows lack an out-of-fold "
                         "prediction")
    n_models = n_seeds * folds.n_folds
    oof = {t: (v / n_seeds).astype(np.float32) for t, v in sums.parts["oof"].items()}
    test = {t: (v / n_models).astype(np.float32) for t, v in sums.parts["test"].items()}
    pool_by_fold = {t: (v / n_seeds).astype(np.float32) for t, v in sums.parts["pool_by_fold"].items()}
    pool = {t: v.mean(axis=0) for t, v in pool_by_fold.items()}
    extra = {f"test_by_fold/{t}": (v / n_seeds).astype(np.float32) for t, v in sums.parts["test_by_fold"].items()}
    manifest = _manifest(plan, ds, folds, cfg, oof, sums.fold_scores, sums.fit_seconds, wall_seconds)
    manifest["selected"] = sums.selected
    return RunRecord(manifest=manifest, oof=oof, test=test, pool=pool, pool_by_fold=pool_by_fold,
                     rows=folds.rows, fold=folds.fold, test_rows=ds.test_rows, pool_rows=ds.pool_rows, extra=extra)


def _cv_scores(plan: RunPlan, ds: Dataset, folds: Folds, oof: dict[str, np.ndarray],
               per_seed_fold: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per target: the metric, mean ± sd over the validation folds, the fold scores, the pooled OOF score."""
    cv = {}
    for j, t in enumerate(plan.targets):
        y = ds.labels[t][folds.rows]
        cv[t] = {
            "metric": ds.task.target(t).metric,
            "mean": float(per_seed_fold[:, j].mean()),
            "sd": float(per_seed_fold[:, j].std(ddof=1)) if folds.n_folds > 1 else 0.0,
            "folds": per_seed_fold[:, j].round(6).tolist(),
            "oof": float(ds.task.target(t).score(y, oof[t].argmax(1))),
        }
    return cv


def _manifest(plan: RunPlan, ds: Dataset, folds: Folds, cfg: Config, oof: dict[str, np.ndarray],
              fold_scores: np.ndarray, fit_seconds: float, wall_seconds: float) -> dict:
    task = ds.task
    per_seed_fold = fold_scores.mean(axis=0)  # (K, n_targets)
    cv = _cv_scores(plan, ds, folds, oof, per_seed_fold)
    combined_folds = [combine_scores(list(row), task.combine) for row in per_seed_fold]
    n_pseudo = 0
    if plan.pseudo_file:
        with open_npz(plan.pseudo_file, StoreError) as pseudo:
            n_pseudo = int(np.mean([len(pseudo[f"rows_{k}"]) for k in range(folds.n_folds)]))
    return {
        "key": plan.key,
        "run_id": plan.spec.run_id,
        "round": plan.round,
        "model": plan.spec.name,
        "params": plan.spec.params,
        "features": plan.features,
        "raw_inputs": {kind: ds.raw_digests[kind] for kind in plan.raw},
        "modalities": sorted({ds.features[f].modality for f in plan.features} | set(plan.raw)),  # raw text: text
        "targets": plan.targets,
        "classes": {t: list(task.target(t).classes) for t in plan.targets},
        "task": task.name,
        "combine": task.combine,
        "seeds": plan.seeds,
        "n_folds": folds.n_folds,
        "folds_hash": folds.hash,
        "data_fingerprint": ds.fingerprint,
        "spec_hash": plan.hash,
        "threads": plan.jobs[0].threads if plan.jobs else None,
        "cv": cv,
        "combined": {
            "mean": float(np.mean(combined_folds)),
            "sd": float(np.std(combined_folds, ddof=1)) if folds.n_folds > 1 else 0.0,
            "oof": combine_scores([cv[t]["oof"] for t in plan.targets], task.combine),
            "estimate": "mean ± sd over validation folds (each fold scored by the model that did not train on it)",
        },
        "fit_seconds": round(fit_seconds, 3),
        "wall_seconds": round(wall_seconds, 3),
        "n_pseudo_per_fold": n_pseudo,
        "pseudo_file": plan.pseudo_file,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": cfg.source,
    }
