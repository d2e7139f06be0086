"""The k-fold runner: plan model × fold × seed jobs, run them, store one record per run.

Resumable: every job writes its own file atomically and is skipped when the file
exists, so a killed ``train-all`` run again finishes only the missing jobs, and
the records equal an uninterrupted run's (jobs are deterministic for a seed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.data.folds import Folds
from mer_ensemble.errors import StoreError
from mer_ensemble.experiment import Experiment
from mer_ensemble.io import open_npz
from mer_ensemble.metrics import combine_scores
from mer_ensemble.progress import progress_bar
from mer_ensemble.store import RunRecord, save_run
from mer_ensemble.training.jobs import JobSpec, run_job
from mer_ensemble.training.plan import JobBuilder, RunPlan, select_specs

__all__ = ["RunPlan", "aggregate", "run_jobs", "select_specs", "train_all"]


def run_jobs(jobs: list[JobSpec], *, n_jobs: int = 1, backend: str = "local", scheduler: str | None = None,
             progress: bool = True) -> None:
    """Run the jobs whose output is missing, with a progress bar (done / total, time left)."""
    todo = [j for j in jobs if not Path(j.out).is_file()]
    with progress_bar(len(jobs), "training", enabled=None if progress else False) as advance:
        advance(len(jobs) - len(todo))
        if not todo:
            return
        if backend == "dask":
            from mer_ensemble.training.cluster import run_on_dask

            run_on_dask(todo, scheduler, advance)
        elif n_jobs == 1:
            for job in todo:
                run_job(job)
                advance(1)
        else:
            from joblib import Parallel, delayed

            parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
            for _ in parallel(delayed(run_job)(job) for job in todo):
                advance(1)


def aggregate(plan: RunPlan, ds: Dataset, folds: Folds, cfg: Config, wall_seconds: float) -> RunRecord:
    """Combine a run's job files into one record: OOF per row, test and pool as fold/seed means."""
    m = len(folds.rows)
    pos = np.full(ds.n_rows, -1, dtype=np.int64)
    pos[folds.rows] = np.arange(m)
    test_rows, pool_rows = ds.test_rows, ds.pool_rows
    k_folds = folds.n_folds
    oof = {t: np.zeros((m, ds.task.target(t).n_classes)) for t in plan.targets}
    seen = np.zeros(m, dtype=np.int64)
    test = {t: np.zeros((len(test_rows), ds.task.target(t).n_classes)) for t in plan.targets}
    pool_by_fold = {t: np.zeros((k_folds, len(pool_rows), ds.task.target(t).n_classes)) for t in plan.targets}
    test_by_fold = {t: np.zeros((k_folds, len(test_rows), ds.task.target(t).n_classes)) for t in plan.targets}
    fold_scores = np.zeros((len(plan.seeds), k_folds, len(plan.targets)))
    fit_seconds = 0.0
    selected: dict[str, dict] = {}
    for job in plan.jobs:
        if not Path(job.out).is_file():
            raise StoreError(f"run {plan.key}: job result {job.out} is missing")
        s = plan.seeds.index(job.seed)
        with open_npz(job.out, StoreError, what=f"run {plan.key}") as res:
            idx = pos[res["valid_rows"]]
            if (folds.fold[idx] != job.fold).any():
                raise StoreError(f"run {plan.key}: {job.out} predicts rows outside fold {job.fold}")
            seen[idx] += 1
            for t in plan.targets:
                oof[t][idx] += res[f"valid/{t}"]
                test[t] += res[f"test/{t}"]
                test_by_fold[t][job.fold] += res[f"test/{t}"]
                pool_by_fold[t][job.fold] += res[f"pool/{t}"]
            fold_scores[s, job.fold] = res["scores"]
            if "selected" in res.files:
                selected[f"fold{job.fold}-seed{job.seed}"] = json.loads(str(res["selected"]))
            fit_seconds += float(res["fit_seconds"])
    n_seeds = len(plan.seeds)
    if (seen != n_seeds).any():
        raise StoreError(f"run {plan.key}: {int((seen != n_seeds).sum())} labelled rows lack an out-of-fold prediction")
    n_models = n_seeds * k_folds
    oof = {t: (v / n_seeds).astype(np.float32) for t, v in oof.items()}
    test = {t: (v / n_models).astype(np.float32) for t, v in test.items()}
    pool_by_fold = {t: (v / n_seeds).astype(np.float32) for t, v in pool_by_fold.items()}
    pool = {t: v.mean(axis=0) for t, v in pool_by_fold.items()}
    extra = {f"test_by_fold/{t}": (v / n_seeds).astype(np.float32) for t, v in test_by_fold.items()}
    manifest = _manifest(plan, ds, folds, cfg, oof, fold_scores, fit_seconds, wall_seconds)
    manifest["selected"] = selected
    return RunRecord(manifest=manifest, oof=oof, test=test, pool=pool, pool_by_fold=pool_by_fold,
                     rows=folds.rows, fold=folds.fold, test_rows=test_rows, pool_rows=pool_rows, extra=extra)


def _manifest(plan: RunPlan, ds: Dataset, folds: Folds, cfg: Config, oof: dict[str, np.ndarray],
              fold_scores: np.ndarray, fit_seconds: float, wall_seconds: float) -> dict:
    task = ds.task
    per_seed_fold = fold_scores.mean(axis=0)  # (K, n_targets)
    cv = {}
    for j, t in enumerate(plan.targets):
        y = ds.labels[t][folds.rows]
        cv[t] = {
            "metric": task.target(t).metric,
            "mean": float(per_seed_fold[:, j].mean()),
            "sd": float(per_seed_fold[:, j].std(ddof=1)) if folds.n_folds > 1 else 0.0,
            "folds": per_seed_fold[:, j].round(6).tolist(),
            "oof": float(task.target(t).score(y, oof[t].argmax(1))),
        }
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
        "modalities": sorted({ds.features[f].modality for f in plan.features}),
        "targets": plan.targets,
        "classes": {t: list(task.target(t).classes) for t in plan.targets},
        "task": task.name,
        "combine": task.combine,
        "seeds": plan.seeds,
        "n_folds": folds.n_folds,
        "folds_hash": folds.hash,
        "data_fingerprint": ds.fingerprint,
        "spec_hash": plan.hash,
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


def train_all(
    exp: Experiment,
    *,
    run_ids: Iterable[str] | None = None,
    n_jobs: int | None = None,
    round_: int = 0,
    pseudo_file: str | None = None,
    key_suffix: str = "",
    progress: bool = True,
) -> list[RunRecord]:
    """Train every selected run of ``exp`` across folds and seeds; returns the stored records."""
    cfg = exp.config
    n_jobs = n_jobs or cfg.train.jobs
    builder = JobBuilder(exp, n_jobs=n_jobs)
    plans = [builder.plan(spec, round_=round_, pseudo_file=pseudo_file, key_suffix=key_suffix)
             for spec in select_specs(cfg, run_ids)]
    start = time.perf_counter()
    run_jobs([j for p in plans for j in p.jobs], n_jobs=n_jobs, backend=cfg.train.backend,
             scheduler=cfg.train.scheduler, progress=progress)
    wall = time.perf_counter() - start
    records = []
    for plan in plans:
        record = aggregate(plan, exp.dataset, exp.folds, cfg, wall / max(len(plans), 1))
        save_run(exp.workdir, record)
        records.append(record)
    return records
