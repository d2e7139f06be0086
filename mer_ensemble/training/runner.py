"""The k-fold runner: plan model × fold × seed jobs, run them, store one record per run.

Resumable: every job writes its own file atomically and is skipped when the file
exists, so a killed ``train-all`` run again finishes only the missing jobs, and
the records equal an uninterrupted run's (jobs are deterministic for a seed and a
thread count, and the thread count is part of the job key).

Jobs run through the :class:`~mer_ensemble.training.budget.Scheduler`: in this process or
in worker processes (``train.jobs``, ``auto`` by default), optionally within a time budget
(``time_limit``). What a budgeted call skipped or cut is written to
``workdir/train-status.json`` and shown under the leaderboard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.data.folds import Folds
from mer_ensemble.errors import ConfigError, StoreError
from mer_ensemble.experiment import Experiment
from mer_ensemble.io import atomic_write_json, open_npz
from mer_ensemble.metrics import combine_scores
from mer_ensemble.progress import progress_bar
from mer_ensemble.store import RunRecord, save_run
from mer_ensemble.training.budget import (
    DEFAULT_VALUE,
    EXTRA_SEED_VALUE,
    FAMILY_VALUE,
    CostModel,
    Scheduler,
    Unit,
    prior_seconds,
    reserve_seconds,
)
from mer_ensemble.training.jobs import JobSpec, run_job, share_dataset
from mer_ensemble.training.plan import JobBuilder, RunPlan, select_specs
from mer_ensemble.training.resources import Slots, auto_slots, job_memory_bytes, runs_on_cuda

__all__ = ["RunPlan", "aggregate", "load_status", "make_units", "run_jobs", "select_specs", "train_all"]

STATUS_FILE = "train-status.json"


# ---------------------------------------------------------------------------------------------
# executors


class InlineExecutor:
    """Runs each submitted job in this process when waited for."""

    def __init__(self) -> None:
        self._queue: list[JobSpec] = []

    def submit(self, job: JobSpec) -> None:
        self._queue.append(job)

    def wait(self, timeout: float | None) -> list[JobSpec]:
        job = self._queue.pop(0)
        run_job(job)
        return [job]

    def kill(self) -> None:  # pragma: no cover - nothing runs between calls
        self._queue.clear()

    def close(self) -> None:
        self._queue.clear()


class ProcessExecutor:
    """Runs jobs in ``workers`` worker processes (loky); :meth:`kill` stops them at once."""

    def __init__(self, workers: int) -> None:
        from joblib.externals.loky import get_reusable_executor

        self._pool = get_reusable_executor(max_workers=workers, timeout=60)
        self._futures: dict[Any, JobSpec] = {}

    def submit(self, job: JobSpec) -> None:
        self._futures[self._pool.submit(run_job, job)] = job

    def wait(self, timeout: float | None) -> list[JobSpec]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        finished = []
        for future in done:
            job = self._futures.pop(future)
            error = future.exception()
            if error is not None:
                self.kill()
                raise error
            finished.append(job)
        return finished

    def kill(self) -> None:
        self._pool.shutdown(wait=True, kill_workers=True)
        self._futures.clear()

    def close(self) -> None:
        self._futures.clear()


def job_seconds(job: JobSpec) -> float:
    """Seconds a finished job took (read from its file; fit + predict for files of older versions)."""
    with np.load(job.out) as res:
        if "job_seconds" in res.files:
            return float(res["job_seconds"])
        return float(res["fit_seconds"]) + float(res["predict_seconds"])


def run_jobs(jobs: list[JobSpec], *, n_jobs: int = 1, backend: str = "local", scheduler: str | None = None,
             progress: bool = True) -> None:
    """Run the jobs whose output is missing, with a progress bar (done / total, time left);
    ``n_jobs`` at a time (in this process when 1), or on a Dask cluster."""
    todo = [j for j in jobs if not Path(j.out).is_file()]
    with progress_bar(len(jobs), "training", enabled=None if progress else False) as advance:
        advance(len(jobs) - len(todo))
        if not todo:
            return
        if backend == "dask":
            from mer_ensemble.training.cluster import run_on_dask

            run_on_dask(todo, scheduler, advance)
            return
        executor = InlineExecutor() if n_jobs == 1 else ProcessExecutor(n_jobs)
        pending = list(todo)
        running = 0
        try:
            while pending or running:
                while pending and running < n_jobs:
                    executor.submit(pending.pop(0))
                    running += 1
                finished = executor.wait(None)
                running -= len(finished)
                advance(len(finished))
        finally:
            executor.close()


# ---------------------------------------------------------------------------------------------
# units, costs, slots


def _machine_gflops() -> float:
    """A quick single-thread float32 matmul rate (GFLOP/s), for cost priors only."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    try:
        with threadpool_limits(1):
            torch.set_num_threads(1)
            a = torch.randn(256, 256)
            a @ a
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(4):
                    a @ a
                best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 4 * 2 * 256**3 / max(best, 1e-9) / 1e9


def _n_weights(family: str, params: dict[str, Any], dims: list[int], n_modalities: int) -> int | None:
    """Approximate weight count of a torch family's network (None for other families)."""
    from mer_ensemble.models import get_model_class
    from mer_ensemble.models._torch import TorchModel

    if not issubclass(get_model_class(family), TorchModel):
        return None
    hidden = int(params.get("hidden", 128))
    square = {"mlp": int(params.get("layers", 2)) - 1, "attention_fusion": 3 * n_modalities + 3,
              "audio_text_fusion": 3}.get(family, 2)
    return sum(dims) * hidden + square * hidden * hidden


def make_units(plans: list[RunPlan], exp: Experiment, *, gflops: float | None = None) -> list[Unit]:
    """One :class:`Unit` per run and seed, with its prior cost per job and its value."""
    from mer_ensemble.models import get_model_class, model_defaults

    ds, folds = exp.dataset, exp.folds
    n_labelled = len(folds.rows)
    n_fit = int(n_labelled * (folds.n_folds - 1) / folds.n_folds)
    n_predict = n_labelled // folds.n_folds + len(ds.test_rows) + len(ds.pool_rows)
    rate = gflops if gflops is not None else _machine_gflops()
    units: list[Unit] = []
    for plan in plans:
        family = plan.spec.name
        params = {**model_defaults(family), **plan.spec.params}
        dims = [ds.features[f].dim for f in plan.features]
        n_outputs = sum(ds.task.target(t).n_classes for t in plan.targets)
        modalities = len({ds.features[f].modality for f in plan.features})
        uses_gpu = bool(getattr(get_model_class(family), "uses_gpu", False))
        prior = prior_seconds(family, params=params, n_fit=n_fit, n_predict=n_predict, dim=sum(dims),
                              n_outputs=n_outputs, n_weights=_n_weights(family, params, dims, modalities),
                              gflops=rate, n_modalities=modalities,
                              on_cuda=runs_on_cuda(uses_gpu, exp.config.train.device))
        value = FAMILY_VALUE.get(family, DEFAULT_VALUE)
        for rank, seed in enumerate(plan.seeds):
            jobs = sorted((j for j in plan.jobs if j.seed == seed), key=lambda j: j.fold)
            done = {k for k, j in enumerate(jobs) if Path(j.out).is_file()}
            units.append(Unit(order=len(units), run=plan.key, family=family, seed=seed, rank=rank, jobs=jobs,
                              prior=prior, value=value * (1.0 if rank == 0 else EXTRA_SEED_VALUE), done=done))
    return units


def measured_costs(units: list[Unit]) -> CostModel:
    """A cost model that already knows the seconds of the jobs finished on disk (a resumed call)."""
    cost = CostModel()
    for u in units:
        for k in sorted(u.done):
            try:
                cost.observe(u, job_seconds(u.jobs[k]))
            except (OSError, ValueError, KeyError):  # an unreadable job file is re-checked by aggregate
                pass
    return cost


def choose_slots(setting: int | str, units: list[Unit], exp: Experiment, cost: CostModel, *,
                 time_limit: float | None) -> Slots:
    """How many jobs run at once: the ``train.jobs``/``--jobs`` number, or ``auto``."""
    from mer_ensemble.models import get_model_class

    # units whose single fold is longer than the whole budget will be skipped: they do not count
    fits = [u for u in units if time_limit is None or cost.per_job(u)[0] <= time_limit]
    todo = [(u, j) for u in fits for k, j in enumerate(u.jobs) if k not in u.done]
    if setting != "auto":
        n = int(setting)
        # one job with a time limit still runs in a worker, which the deadline can stop
        return Slots(n, None, n == 1 and time_limit is None, "train.jobs / --jobs")
    ds = exp.dataset
    n_fit = int(len(exp.folds.rows) * (exp.folds.n_folds - 1) / exp.folds.n_folds)
    device = exp.config.train.device
    gpu = [runs_on_cuda(bool(getattr(get_model_class(u.family), "uses_gpu", False)), device) for u, _ in todo]
    memory = [job_memory_bytes(n_fit, sum(ds.features[f].dim for f in j.features)) for _, j in todo]
    return auto_slots(threads=[j.threads for _, j in todo], memory=memory,
                      work_seconds=sum(cost.per_job(u)[0] for u, _ in todo), gpu_jobs=sum(gpu), time_limit=time_limit)


# ---------------------------------------------------------------------------------------------
# status of a call


def _run_status(plan: RunPlan, units: list[Unit]) -> dict[str, Any]:
    mine = [u for u in units if u.run == plan.key]
    complete = [u.seed for u in mine if u.complete]
    folds_done = sum(len(u.done) for u in mine)
    if len(complete) == len(mine):
        state = "done"
    elif complete:
        state = "partial"
    elif folds_done:
        state = "cut"
    else:
        state = "skipped"
    reasons = {f"seed {u.seed}": f"{u.state if u.state != 'pending' else 'skipped'}: {u.reason}"
               for u in mine if not u.complete}
    return {"status": state, "model": plan.spec.name, "seeds_done": complete, "seeds": list(plan.seeds),
            "jobs_done": folds_done, "jobs": len(plan.jobs), "why": reasons, "threads": plan.jobs[0].threads}


def load_status(workdir: Path) -> dict[str, Any] | None:
    """The status of the last ``train-all`` in ``workdir`` (None when there is none)."""
    path = Path(workdir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable train status ({exc.__class__.__name__}); delete it") from None


def render_status(status: dict[str, Any] | None) -> str:
    """Lines about what the last ``train-all`` did not finish (empty when everything finished)."""
    if not status:
        return ""
    runs = status.get("runs", {})
    unfinished = {k: v for k, v in runs.items() if v["status"] != "done"}
    limit = status.get("time_limit")
    head = []
    if limit:
        done = sum(v["status"] == "done" for v in runs.values())
        head.append(f"time limit {limit:.0f}s: {done} of {len(runs)} run(s) finished in "
                    f"{status.get('elapsed', 0):.0f}s ({status.get('slots', '')})")
    if not unfinished:
        return "\n".join(head)
    head.append("not finished (a later train-all continues from the finished folds):")
    for key, v in unfinished.items():
        kept = f"; stored with seeds {v['seeds_done']}" if v["seeds_done"] else "; no record"
        why = "; ".join(f"{s} {r}" for s, r in v["why"].items())
        head.append(f"  {key} ({v['model']}): {v['status']}, {v['jobs_done']}/{v['jobs']} jobs{kept} — {why}")
    return "\n".join(head)


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


def train_all(
    exp: Experiment,
    *,
    run_ids: Iterable[str] | None = None,
    n_jobs: int | str | None = None,
    round_: int = 0,
    pseudo_file: str | None = None,
    key_suffix: str = "",
    progress: bool = True,
    time_limit: float | None = None,
    started: float | None = None,
) -> list[RunRecord]:
    """Train every selected run of ``exp`` across folds and seeds; returns the stored records.

    ``n_jobs``: parallel jobs (default ``train.jobs``; ``"auto"`` picks them). ``time_limit``:
    seconds for the whole call counted from ``started`` (a ``time.monotonic()`` value; default
    now): runs are ordered by expected value per second and only what fits is started (see
    :mod:`mer_ensemble.training.budget`); a run with at least one finished seed is stored with
    those seeds. Writes ``workdir/train-status.json`` (what finished, was cut or skipped, and why).
    """
    cfg = exp.config
    setting = n_jobs or cfg.train.jobs
    builder = JobBuilder(exp)
    plans = [builder.plan(spec, round_=round_, pseudo_file=pseudo_file, key_suffix=key_suffix)
             for spec in select_specs(cfg, run_ids)]
    start = time.monotonic() if started is None else started
    if cfg.train.backend == "dask":
        if time_limit:
            raise ConfigError("--time-limit / train.time_limit: supported with the local backend only")
        run_jobs([j for p in plans for j in p.jobs], backend="dask", scheduler=cfg.train.scheduler,
                 progress=progress)
        units = make_units(plans, exp, gflops=1.0)
        slots = Slots(0, None, False, "dask cluster")
    else:
        units = make_units(plans, exp)
        cost = measured_costs(units)
        slots = choose_slots(setting, units, exp, cost, time_limit=time_limit)
        _schedule(units, slots, cost, exp, time_limit, start, len(plans), progress)
    wall = time.monotonic() - start
    records = []
    for plan in plans:
        complete = [u.seed for u in units if u.run == plan.key and u.complete]
        if not complete:
            continue
        if len(complete) < len(plan.seeds):
            plan = replace(plan, seeds=complete, jobs=[j for j in plan.jobs if j.seed in complete])
        record = aggregate(plan, exp.dataset, exp.folds, cfg, wall / max(len(plans), 1))
        save_run(exp.workdir, record)
        records.append(record)
    status = {
        "time_limit": time_limit,
        "elapsed": round(time.monotonic() - start, 1),
        "slots": slots.describe(),
        "round": round_,
        "runs": {plan.key: _run_status(plan, units) for plan in plans},
    }
    atomic_write_json(exp.workdir / STATUS_FILE, status)
    return records


def _schedule(units: list[Unit], slots: Slots, cost: CostModel, exp: Experiment, time_limit: float | None,
              start: float, n_runs: int, progress: bool) -> None:
    """Run the units' missing jobs on the executor ``slots`` asks for."""
    n_jobs = sum(len(u.jobs) for u in units)
    n_done = sum(len(u.done) for u in units)
    reserve = reserve_seconds(time_limit, n_runs) if time_limit else 0.0
    scheduler = Scheduler(units, slots, time_limit=time_limit, start=start, reserve=reserve, cost=cost,
                          clock=time.monotonic)
    if slots.inline:
        first = next((j for u in units for j in u.jobs), None)
        if first is not None:
            share_dataset(first, exp.config, exp.dataset)
        executor: InlineExecutor | ProcessExecutor = InlineExecutor()
    else:
        executor = ProcessExecutor(slots.jobs)
    with progress_bar(n_jobs, "training", enabled=None if progress else False) as advance:
        advance(n_done)
        try:
            scheduler.run(executor, job_seconds, advance)
        finally:
            executor.close()
        advance(n_jobs - sum(len(u.done) for u in units))
