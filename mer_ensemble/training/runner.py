"""The k-fold runner: plan model × fold × seed jobs, run them, store one record per run.

Resumable: every job writes its own file atomically and is skipped when the file
exists, so a killed ``train-all`` run again finishes only the missing jobs, and
the records equal an uninterrupted run's (jobs are deterministic for a seed and a
thread count, and the thread count is part of the job key).

Jobs run through the :class:`~mer_ensemble.training.budget.Scheduler`: in this process or
in worker processes (``train.jobs``, ``auto`` by default; :mod:`~mer_ensemble.training.resources`),
optionally within a time budget (``time_limit``). What a budgeted call skipped or cut is written
to ``workdir/train-status.json`` (:mod:`~mer_ensemble.training.status`) and shown under the
leaderboard; finished runs are combined into records by :mod:`~mer_ensemble.training.aggregate`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.progress import progress_bar
from mer_ensemble.store import RunRecord, save_run
from mer_ensemble.training.aggregate import aggregate
from mer_ensemble.training.budget import CostModel, Scheduler, Unit, make_units, measured_costs, reserve_seconds
from mer_ensemble.training.executors import InlineExecutor, ProcessExecutor, run_jobs
from mer_ensemble.training.jobs import job_seconds, share_dataset
from mer_ensemble.training.plan import JobBuilder, RunPlan, select_specs
from mer_ensemble.training.resources import Slots, choose_slots
from mer_ensemble.training.status import load_status, render_status, write_status

__all__ = [
    "RunPlan",
    "aggregate",
    "load_status",
    "make_units",
    "render_status",
    "run_jobs",
    "select_specs",
    "train_all",
]


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
    builder = JobBuilder(exp)
    plans = [builder.plan(spec, round_=round_, pseudo_file=pseudo_file, key_suffix=key_suffix)
             for spec in select_specs(cfg, run_ids)]
    for plan in plans:  # before any job starts: a run that would fail on a row fails here, nothing written
        builder.check_raw_rows(plan.spec.run_id, plan.spec.name, plan.raw, plan.spec.params)
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
        slots = choose_slots(n_jobs or cfg.train.jobs, units, exp, cost, time_limit=time_limit)
        _schedule(units, slots, cost, exp, time_limit, start, len(plans), progress)
    records = _store_finished(exp, plans, units, wall=time.monotonic() - start)
    write_status(exp.workdir, plans, units, slots, time_limit=time_limit, elapsed=time.monotonic() - start,
                 round_=round_)
    return records


def _store_finished(exp: Experiment, plans: list[RunPlan], units: list[Unit], *, wall: float) -> list[RunRecord]:
    """A record for every run with at least one complete seed (with those seeds only), saved to the store."""
    records = []
    for plan in plans:
        complete = [u.seed for u in units if u.run == plan.key and u.complete]
        if not complete:
            continue
        if len(complete) < len(plan.seeds):
            plan = replace(plan, seeds=complete, jobs=[j for j in plan.jobs if j.seed in complete])
        record = aggregate(plan, exp.dataset, exp.folds, exp.config, wall / max(len(plans), 1))
        save_run(exp.workdir, record)
        records.append(record)
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
