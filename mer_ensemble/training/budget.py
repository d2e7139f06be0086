"""The job scheduler of ``train-all``, with an optional time budget (``--time-limit``).

The unit of scheduling is one seed of one run: its K fold jobs together give every labelled
row an out-of-fold prediction, so a run whose first seed finished has a record even when its
other seeds did not. Units are ordered by expected value per second: a prior value per family
(:data:`FAMILY_VALUE`; a run's extra seeds are worth :data:`EXTRA_SEED_VALUE` of its first)
over the unit's estimated cost. The cost of a job starts from a prior computed from the data
size (:func:`prior_seconds`); once a job of the family has finished, the prior is scaled by the
family's measured/prior ratio, and once a fold of the run itself has finished, its measured
seconds are used.

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
from typing import Any, Protocol

from mer_ensemble.training.jobs import JobSpec
from mer_ensemble.training.resources import Slots

__all__ = [
    "EXTRA_SEED_VALUE",
    "FAMILY_VALUE",
    "CostModel",
    "Executor",
    "Scheduler",
    "Unit",
    "prior_seconds",
    "reserve_seconds",
]

#: prior value of a run's first seed, by family: what it is expected to bring to a blend.
#: The neural families and the linear model carry the leaderboards on pre-extracted
#: features (docs/benchmarks.md); XGBoost on wide embeddings is weaker and slower.
FAMILY_VALUE: dict[str, float] = {
    "linear": 1.0,
    "mlp": 1.0,
    "audio_text_fusion": 1.0,
    "attention_fusion": 1.0,
    "xgboost": 0.7,
}
DEFAULT_VALUE = 0.7
#: value of each further seed of a run relative to its first
EXTRA_SEED_VALUE = 0.25

#: seconds per unit of a family's work measure at 1 GFLOP/s (see :func:`prior_seconds`),
#: fitted to the MER2024-scale runs of docs/benchmarks.md
_EFFICIENCY: dict[str, float] = {"torch": 0.15, "linear": 0.05, "xgboost": 0.02}


def prior_seconds(family: str, *, params: dict[str, Any], n_fit: int, n_predict: int, dim: int,
                  n_outputs: int, n_weights: int | None, gflops: float, n_modalities: int = 1,
                  on_cuda: bool = False) -> float:
    """A job's seconds before anything was measured, from the data size.

    ``n_fit`` training rows, ``n_predict`` rows predicted (validation, test, pool), ``dim``
    input width, ``n_outputs`` classes summed over targets, ``n_weights`` the network's
    parameter count (torch families; None otherwise), ``gflops`` the machine's float32 matmul
    rate on one thread. Torch: 6 FLOPs per weight and row per epoch over the epochs early
    stopping typically runs (patience + 20, at most ``epochs``), plus prediction; linear:
    L-BFGS passes over ``n × dim × classes``; XGBoost: ``n × columns × classes`` per round.
    Only an ordering and a first guess: every measured fold replaces it.
    """
    rate = max(gflops, 1.0) * 1e9
    if n_weights is not None:
        epochs = int(params.get("epochs", 100))
        patience = params.get("patience")
        expected = min(epochs, int(patience) + 20) if patience else epochs
        flops = 6.0 * n_weights * n_fit * expected + 2.0 * n_weights * n_predict
        return 1.0 + flops / (rate * _EFFICIENCY["torch"])
    if family == "linear":
        flops = 4.0 * n_fit * dim * n_outputs * int(min(params.get("max_iter", 1000), 150))
        return 0.5 + (flops + 2.0 * n_predict * dim * n_outputs) / (rate * _EFFICIENCY["linear"])
    if family == "xgboost":
        from mer_ensemble.models.xgb import AUTO_REDUCE_ABOVE

        reduce = params.get("reduce", "none")
        columns = float(dim)
        if reduce == "pca" or (reduce == "auto" and not on_cuda and dim > AUTO_REDUCE_ABOVE):
            columns = min(columns, n_modalities * float(params.get("reduce_components", 64)))
        columns *= float(params.get("colsample_bytree", 1.0))
        depth = params.get("max_depth", 6)
        depth_sum = sum(depth) if isinstance(depth, (list, tuple)) else depth
        rounds = float(params.get("n_estimators", 100))
        work = n_fit * columns * n_outputs * rounds * (1 + float(depth_sum)) / 8
        return 1.0 + work / (rate * _EFFICIENCY["xgboost"])
    return 1.0 + 1e-7 * n_fit * dim * n_outputs


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
