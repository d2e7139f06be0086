"""The job scheduler of ``train-all``, with an optional time budget (``--time-limit``).

The unit of scheduling is one seed of one run: its K fold jobs together give every labelled
row an out-of-fold prediction, so a run whose first seed finished has a record even when its
other seeds did not (:func:`make_units`). Units are ordered by expected value per second: the
family's declared prior value (``MerModel.blend_value``; a run's extra seeds are worth
:data:`EXTRA_SEED_VALUE` of its first) over the unit's estimated cost. The cost of a job starts
from the family's own prior (``MerModel.prior_seconds`` from the data size and the machine's
measured matmul rate, :func:`machine_gflops`); once a job of the family has finished, the
prior is scaled by the family's measured/prior ratio, and once a fold of the run itself has
finished, its measured seconds are used (:class:`CostModel`, :func:`measured_costs`).

With a time limit, a unit starts only when its estimated remaining work fits in what is left
of the budget (seconds left × parallel jobs) and a single fold fits in the seconds left; while
the family's cost is unmeasured, only the unit's first fold runs (then the estimate is
checked again). A unit whose folds turn out slower than estimated stops at a fold boundary
when the rest no longer fits; a job still running at the deadline is stopped (its worker is
killed; finished job files are never touched). What was skipped or cut is reported with the
reason, and a later ``train-all`` continues from the job files on disk.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mer_ensemble.training.jobs import JobSpec, job_seconds
from mer_ensemble.training.resources import Slots, family_on_cuda

if TYPE_CHECKING:
    from mer_ensemble.experiment import Experiment
    from mer_ensemble.training.plan import RunPlan

__all__ = [
    "EXTRA_SEED_VALUE",
    "CostModel",
    "Executor",
    "Scheduler",
    "Unit",
    "machine_gflops",
    "make_units",
    "measured_costs",
    "reserve_seconds",
]

#: value of each further seed of a run relative to its first
EXTRA_SEED_VALUE = 0.25


def machine_gflops(threads: int = 1, *, size: int = 256, repeats: int = 4, rounds: int = 3) -> float:
    """The machine's float32 matmul rate (GFLOP/s) on ``threads`` threads, best of ``rounds`` rounds
    of ``repeats`` products of ``(size, size)`` matrices; the defaults are the quick single-thread
    measure the cost priors use."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    try:
        with threadpool_limits(threads):
            torch.set_num_threads(threads)
            a = torch.randn(size, size)
            a @ a
            best = float("inf")
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(repeats):
                    a @ a
                best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return repeats * 2 * size**3 / max(best, 1e-9) / 1e9


def reserve_seconds(time_limit: float, n_runs: int) -> float:
    """Seconds kept at the end of a budget for combining job files into records and writing them."""
    return min(0.1 * time_limit, 2.0 + 0.3 * n_runs)


@dataclass
class Unit:
    """One seed of one run: its fold jobs (``jobs[k]`` is fold ``k``)."""

    order: int
    run: str
    family: str
    seed: int
    rank: int
    jobs: list[JobSpec]
    prior: float
    value: float
    done: set[int] = field(default_factory=set)
    running: dict[int, float] = field(default_factory=dict)
    queued: list[int] = field(default_factory=list)
    state: str = "pending"  # pending | admitted | cut | finished
    reason: str = ""
    admitted_as: int = -1

    @property
    def complete(self) -> bool:
        return len(self.done) == len(self.jobs)


class CostModel:
    """Seconds per job of a unit: the run's own measured folds, else the prior scaled by the
    family's measured/prior ratio, else the prior."""

    def __init__(self) -> None:
        self.by_run: dict[str, list[float]] = {}
        self.ratios: dict[str, list[float]] = {}

    def observe(self, unit: Unit, seconds: float) -> None:
        self.by_run.setdefault(unit.run, []).append(seconds)
        self.ratios.setdefault(unit.family, []).append(seconds / max(unit.prior, 1e-3))

    def per_job(self, unit: Unit) -> tuple[float, bool]:
        """``(seconds, measured)``: measured is False while only the prior is known."""
        own = self.by_run.get(unit.run)
        if own:
            return statistics.fmean(own), True
        ratios = self.ratios.get(unit.family)
        if ratios:
            return unit.prior * statistics.median(ratios), True
        return unit.prior, False


def make_units(plans: list[RunPlan], exp: Experiment, *, gflops: float | None = None) -> list[Unit]:
    """One :class:`Unit` per run and seed, with its prior cost per job (the family's
    ``prior_seconds``) and its value (the family's ``blend_value``; extra seeds less)."""
    from mer_ensemble.models import WorkSize, get_model_class

    ds, folds = exp.dataset, exp.folds
    n_labelled = len(folds.rows)
    n_fit = int(n_labelled * (folds.n_folds - 1) / folds.n_folds)
    n_predict = n_labelled // folds.n_folds + len(ds.test_rows) + len(ds.pool_rows)
    rate = gflops if gflops is not None else machine_gflops()
    units: list[Unit] = []
    for plan in plans:
        family = get_model_class(plan.spec.name)
        work = WorkSize(n_fit=n_fit, n_predict=n_predict, dims=[ds.features[f].dim for f in plan.features],
                        n_outputs=sum(ds.task.target(t).n_classes for t in plan.targets),
                        n_modalities=len({ds.features[f].modality for f in plan.features}), gflops=rate,
                        on_cuda=family_on_cuda(plan.spec.name, exp.config.train.device), raw_inputs=plan.raw,
                        raw_sample=_raw_sample(ds, plan.raw))
        params = plan.jobs[0].model["params"] if plan.jobs else plan.spec.params  # paths resolved as jobs get them
        prior = family.prior_seconds({**family.defaults, **params}, work)
        for rank, seed in enumerate(plan.seeds):
            jobs = sorted((j for j in plan.jobs if j.seed == seed), key=lambda j: j.fold)
            done = {k for k, j in enumerate(jobs) if Path(j.out).is_file()}
            value = family.blend_value * (1.0 if rank == 0 else EXTRA_SEED_VALUE)
            units.append(Unit(order=len(units), run=plan.key, family=plan.spec.name, seed=seed, rank=rank,
                              jobs=jobs, prior=prior, value=value, done=done))
    return units


def _raw_sample(ds: Any, kinds: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """Up to :data:`~mer_ensemble.models._base.RAW_SAMPLE` rows' values of each raw input, spread
    evenly over the rows that have one (the same rows every time)."""
    from mer_ensemble.models._base import RAW_SAMPLE

    out: dict[str, tuple[Any, ...]] = {}
    for kind in kinds:
        values = [v for v in ds.raw.get(kind, ()) if v is not None]
        step = max(len(values) // RAW_SAMPLE, 1)
        out[kind] = tuple(values[::step][:RAW_SAMPLE])
    return out


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


class Executor(Protocol):
    """Where jobs run (this process or worker processes)."""

    def submit(self, job: JobSpec) -> None: ...

    def wait(self, timeout: float | None) -> list[JobSpec]:
        """Jobs finished since the last call (at least one unless ``timeout`` passed)."""

    def kill(self) -> None:
        """Stop every running job now."""


def _fmt(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}min"


class Scheduler:
    """Runs units' jobs on an executor under ``slots``, within ``time_limit`` seconds of ``start``
    (None: no limit; every unit runs)."""

    def __init__(self, units: Sequence[Unit], slots: Slots, *, time_limit: float | None = None,
                 start: float | None = None, reserve: float = 0.0, cost: CostModel | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.units = list(units)
        self.slots = slots
        self.clock = clock
        self.start = clock() if start is None else start
        self.deadline = math.inf if time_limit is None else self.start + time_limit - reserve
        self.cost = cost or CostModel()
        self._admissions = 0
        self._by_out = {job.out: (u, k) for u in self.units for k, job in enumerate(u.jobs)}
        for u in self.units:
            if u.complete:
                u.state = "finished"

    # -- estimates -----------------------------------------------------------------------

    def _priority(self, unit: Unit) -> float:
        per_job, _ = self.cost.per_job(unit)
        left = max(len(unit.jobs) - len(unit.done), 1)
        return unit.value / max(per_job * left, 1e-6)

    def _committed(self, now: float) -> float:
        """Estimated job-seconds still to come from every admitted or running unit."""
        total = 0.0
        for u in self.units:
            if not (u.running or u.queued):
                continue
            per_job, _ = self.cost.per_job(u)
            total += len(u.queued) * per_job
            total += sum(max(per_job - (now - t0), 0.1 * per_job) for t0 in u.running.values())
        return total

    def _left(self, now: float) -> tuple[float, float]:
        remaining = self.deadline - now
        return remaining, remaining * self.slots.jobs

    # -- the loop -----------------------------------------------------------------------

    def run(self, executor: Executor, seconds_of: Callable[[JobSpec], float],
            advance: Callable[[int], None] = lambda n: None) -> None:
        """Run until every unit finished, was cut or cannot fit; then mark what is left skipped."""
        try:
            while True:
                now = self.clock()
                self._admit(now)
                self._dispatch(now, executor)
                if not any(u.running for u in self.units):
                    break
                timeout = None if math.isinf(self.deadline) else max(0.0, self.deadline - self.clock())
                finished = executor.wait(timeout)
                if not finished:
                    self._stop_at_deadline(executor)
                    break
                for job in finished:
                    self._complete(job, seconds_of(job))
                advance(len(finished))
        finally:
            for u in self.units:
                if u.state == "pending":
                    u.reason = u.reason or "not started"
                if u.state == "admitted" and not u.complete:  # pragma: no cover - defensive
                    u.state, u.reason = "cut", u.reason or "stopped"

    def _admit(self, now: float) -> None:
        remaining, capacity = self._left(now)
        committed = self._committed(now)
        for u in sorted((u for u in self.units if u.state == "pending"), key=self._priority, reverse=True):
            per_job, _ = self.cost.per_job(u)
            left = len(u.jobs) - len(u.done)
            if per_job > remaining:
                u.reason = f"one fold takes ~{_fmt(per_job)}, {_fmt(max(remaining, 0))} left"
                continue
            if committed + per_job * left > capacity:
                u.reason = (f"~{_fmt(per_job * left)} of work, {_fmt(max(capacity - committed, 0))} "
                            f"of the budget left ({self.slots.jobs} at a time)")
                continue
            u.state, u.reason = "admitted", ""
            u.admitted_as = self._admissions
            self._admissions += 1
            u.queued = [k for k in range(len(u.jobs)) if k not in u.done]
            committed += per_job * left

    def _dispatch(self, now: float, executor: Executor) -> None:
        while True:
            running = [(u, k) for u in self.units for k in u.running]
            if len(running) >= self.slots.jobs:
                return
            used = sum(u.jobs[k].threads for u, k in running)
            job = self._next_job(used, probing=True) or self._next_job(used, probing=False)
            if job is None:
                return
            unit, k = job
            unit.queued.remove(k)
            unit.running[k] = now
            executor.submit(unit.jobs[k])

    def _next_job(self, used_threads: int, *, probing: bool) -> tuple[Unit, int] | None:
        """The next queued job in admission order; with ``probing``, a unit whose cost is still
        a prior runs one fold at a time."""
        for u in sorted(self.units, key=lambda u: u.admitted_as):
            if u.state != "admitted" or not u.queued:
                continue
            if probing and u.running and not self.cost.per_job(u)[1]:
                continue
            k = u.queued[0]
            threads = u.jobs[k].threads
            if self.slots.cores is not None and used_threads and used_threads + threads > self.slots.cores:
                continue
            return u, k
        return None

    def _complete(self, job: JobSpec, seconds: float) -> None:
        unit, k = self._by_out[job.out]
        unit.running.pop(k, None)
        unit.done.add(k)
        self.cost.observe(unit, seconds)
        if unit.complete:
            unit.state, unit.reason = "finished", ""
        self._check_overrun(self.clock())

    def _check_overrun(self, now: float) -> None:
        """Drop queued folds that no longer fit: the lowest-priority units first; a unit with
        folds done or running stops at this fold boundary (cut), one without goes back to pending."""
        if math.isinf(self.deadline):
            return
        remaining, capacity = self._left(now)
        committed = self._committed(now)
        while True:
            queued = [u for u in self.units if u.queued]
            too_long = [u for u in queued if self.cost.per_job(u)[0] > remaining]
            if not too_long and committed <= capacity:
                return
            if not queued:
                return
            u = too_long[0] if too_long else min(queued, key=self._priority)
            per_job, _ = self.cost.per_job(u)
            committed -= per_job * len(u.queued)
            u.queued = []
            if u.done or u.running:
                u.state = "cut"
                u.reason = (f"stopped after {len(u.done)}/{len(u.jobs)} folds: folds take ~{_fmt(per_job)}, "
                            f"{_fmt(max(remaining, 0))} left")
            else:
                u.state = "pending"

    def _stop_at_deadline(self, executor: Executor) -> None:
        executor.kill()
        for u in self.units:
            if u.running:
                folds = ", ".join(str(u.jobs[k].fold) for k in sorted(u.running))
                u.state = "cut"
                u.reason = f"{len(u.done)}/{len(u.jobs)} folds done; fold {folds} stopped at the time limit"
                u.running.clear()
                u.queued = []
