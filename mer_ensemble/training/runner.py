"""The k-fold runner: plan model × fold × seed jobs, run them, store one record per run.

Resumable: every job writes its own file atomically and is skipped when the file
exists, so a killed ``train-all`` run again finishes only the missing jobs, and
the records equal an uninterrupted run's (jobs are deterministic for a seed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_ensemble import __version__
from mer_ensemble.config import Config, ModelSpec
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.data.folds import Folds, load_or_make_folds
from mer_ensemble.errors import ConfigError, StoreError
from mer_ensemble.metrics import combine_scores
from mer_ensemble.progress import progress_bar
from mer_ensemble.store import RunRecord, save_run
from mer_ensemble.training.jobs import JobSpec, resolve_features, resolve_targets, run_job, spec_hash

__all__ = ["RunPlan", "plan_runs", "run_jobs", "train_all", "select_specs"]


@dataclass
class RunPlan:
    """The jobs of one run (a ``models:`` entry, possibly in a pseudo-label round)."""

    key: str
    spec: ModelSpec
    features: list[str]
    targets: list[str]
    seeds: list[int]
    jobs: list[JobSpec]
    hash: str
    round: int = 0
    pseudo_file: str | None = None


def select_specs(cfg: Config, run_ids: Iterable[str] | None) -> list[ModelSpec]:
    """The ``models:`` entries to train (all, or those named), erroring on unknown ids."""
    if not cfg.models:
        raise ConfigError(f"{cfg.source}: models: the config lists no model to train")
    if run_ids is None:
        return list(cfg.models)
    by_id = {m.run_id: m for m in cfg.models}
    wanted = [r.strip() for r in run_ids if r.strip()]
    unknown = [r for r in wanted if r not in by_id]
    if unknown:
        raise ConfigError(f"--models: unknown run id(s) {unknown}; the config has {', '.join(by_id)}")
    return [by_id[r] for r in wanted]


def _threads(cfg: Config, n_jobs: int) -> int:
    if cfg.train.threads:
        return cfg.train.threads
    return max(1, (os.cpu_count() or 1) // n_jobs)


def plan_runs(
    cfg: Config,
    ds: Dataset,
    folds: Folds,
    workdir: Path,
    specs: list[ModelSpec],
    *,
    n_jobs: int = 1,
    round_: int = 0,
    pseudo_file: str | None = None,
    key_suffix: str = "",
) -> list[RunPlan]:
    """One :class:`RunPlan` per spec; job output paths encode the spec, folds, data and pseudo file."""
    from mer_ensemble.models import get_model_class, model_defaults

    plans = []
    raw = cfg.model_dump(mode="json")
    pseudo_digest = _file_digest(pseudo_file) if pseudo_file else None
    for spec in specs:
        try:
            get_model_class(spec.name)
        except Exception as exc:  # noqa: BLE001 - re-raised with the run id
            raise ConfigError(f"models[{spec.run_id}].name: {exc}") from None
        unknown = sorted(set(spec.params) - set(model_defaults(spec.name)))
        if unknown:
            raise ConfigError(
                f"models[{spec.run_id}].params: unknown parameter(s) {unknown} for {spec.name}; "
                f"allowed: {sorted(model_defaults(spec.name))}"
            )
        features = resolve_features(spec, cfg)
        targets = resolve_targets(spec, ds.task.target_names)
        seeds = spec.seeds or cfg.cv.seeds
        key = spec.run_id + key_suffix
        digest = spec_hash(spec.name, spec.params, features, targets, folds.hash, ds.fingerprint, pseudo_digest,
                           cfg.data.max_frames, __version__)
        folder = workdir / "jobs" / key / digest
        jobs = [
            JobSpec(
                config=raw,
                config_source=cfg.source or "config",
                workdir=str(workdir),
                run_key=key,
                model={"name": spec.name, "params": dict(spec.params)},
                features=tuple(features),
                targets=tuple(targets),
                fold=k,
                seed=seed,
                out=str(folder / f"fold{k}-seed{seed}.npz"),
                threads=_threads(cfg, n_jobs),
                pseudo_file=pseudo_file,
                device=cfg.train.device,
            )
            for seed in seeds
            for k in range(folds.n_folds)
        ]
        plans.append(RunPlan(key, spec, features, targets, list(seeds), jobs, digest, round_, pseudo_file))
    return plans


def _file_digest(path: str) -> str:
    import hashlib

    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


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
    for job in plan.jobs:
        if not Path(job.out).is_file():
            raise StoreError(f"run {plan.key}: job result {job.out} is missing")
        s = plan.seeds.index(job.seed)
        with np.load(job.out) as res:
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
        with np.load(plan.pseudo_file) as pseudo:
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
    cfg: Config,
    workdir: Path,
    *,
    run_ids: Iterable[str] | None = None,
    n_jobs: int | None = None,
    dataset: Dataset | None = None,
    round_: int = 0,
    pseudo_file: str | None = None,
    key_suffix: str = "",
    progress: bool = True,
) -> list[RunRecord]:
    """Train every selected run across folds and seeds; returns the stored records."""
    from mer_ensemble.data import load_dataset

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ds = dataset if dataset is not None else load_dataset(cfg, workdir)
    folds = load_or_make_folds(ds, workdir, cfg.cv.folds, cfg.cv.fold_seed)
    n_jobs = n_jobs or cfg.train.jobs
    specs = select_specs(cfg, run_ids)
    plans = plan_runs(cfg, ds, folds, workdir, specs, n_jobs=n_jobs, round_=round_, pseudo_file=pseudo_file,
                      key_suffix=key_suffix)
    start = time.perf_counter()
    run_jobs([j for p in plans for j in p.jobs], n_jobs=n_jobs, backend=cfg.train.backend,
             scheduler=cfg.train.scheduler, progress=progress)
    wall = time.perf_counter() - start
    records = []
    for plan in plans:
        record = aggregate(plan, ds, folds, cfg, wall / max(len(plans), 1))
        save_run(workdir, record)
        records.append(record)
    return records
