"""The scheduler of train-all: value-per-second order, admission within a budget, cuts at fold
boundaries and the stop at the deadline, on a simulated clock (no real jobs), and the time
budget end to end on a small dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.config import load_config, parse_duration
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.training import runner
from mer_ensemble.training.budget import CostModel, Scheduler, Unit, prior_seconds
from mer_ensemble.training.jobs import JobSpec
from mer_ensemble.training.resources import Slots, auto_slots
from tests.conftest import write_config, write_generic


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeExecutor:
    """Jobs take ``durations[run]`` simulated seconds; ``wait`` moves the clock."""

    def __init__(self, clock: Clock, durations: dict[str, float]) -> None:
        self.clock, self.durations = clock, durations
        self.running: dict[str, tuple[JobSpec, float]] = {}
        self.started: list[str] = []
        self.killed: list[str] = []

    def submit(self, job: JobSpec) -> None:
        self.started.append(job.out)
        self.running[job.out] = (job, self.clock.now + self.durations[job.run_key])

    def wait(self, timeout: float | None) -> list[JobSpec]:
        end = min(t for _, t in self.running.values())
        if timeout is not None and self.clock.now + timeout < end:
            self.clock.now += timeout
            return []
        self.clock.now = end
        done = [job for job, t in self.running.values() if t <= end]
        for job in done:
            del self.running[job.out]
        return done

    def kill(self) -> None:
        self.killed = list(self.running)
        self.running.clear()

    def seconds(self, job: JobSpec) -> float:
        return self.durations[job.run_key]


def _job(run: str, fold: int, seed: int = 0) -> JobSpec:
    return JobSpec(config={}, config_source="c", workdir="w", folds_path="f", folds_hash="h", run_key=run,
                   model={"name": run}, features=("a",), targets=("y",), fold=fold, seed=seed,
                   out=f"{run}/fold{fold}-seed{seed}.npz")


def _unit(order: int, run: str, prior: float, value: float = 1.0, folds: int = 5, seed: int = 0,
          rank: int = 0) -> Unit:
    return Unit(order=order, run=run, family=run, seed=seed, rank=rank,
                jobs=[_job(run, k, seed) for k in range(folds)], prior=prior, value=value)


def _run(units: list[Unit], durations: dict[str, float], *, limit: float | None, jobs: int = 1):
    clock = Clock()
    ex = FakeExecutor(clock, durations)
    Scheduler(units, Slots(jobs, None, False, "test"), time_limit=limit, clock=clock).run(ex, ex.seconds)
    return clock, ex


def test_without_a_limit_every_unit_runs_cheap_and_valuable_first():
    units = [_unit(0, "xgb", prior=50, value=0.7), _unit(1, "mlp", prior=5), _unit(2, "lin", prior=1)]
    clock, ex = _run(units, {"xgb": 50, "mlp": 5, "lin": 1}, limit=None)
    assert all(u.state == "finished" for u in units)
    order = [out.split("/")[0] for out in ex.started]
    assert order == ["lin"] * 5 + ["mlp"] * 5 + ["xgb"] * 5
    assert clock.now == pytest.approx(5 * 56)


def test_a_run_that_cannot_fit_is_skipped_with_the_reason_and_the_budget_holds():
    units = [_unit(0, "lin", prior=2), _unit(1, "xgb", prior=100, value=0.7), _unit(2, "mlp", prior=10)]
    clock, ex = _run(units, {"lin": 2, "xgb": 100, "mlp": 10}, limit=120)
    states = {u.run: u.state for u in units}
    assert states == {"lin": "finished", "mlp": "finished", "xgb": "pending"}
    assert "one fold takes ~100s" in units[1].reason or "of work" in units[1].reason
    assert not any(out.startswith("xgb") for out in ex.started), "started a run that could not finish"
    assert clock.now <= 120


def test_a_run_slower_than_its_estimate_stops_at_a_fold_boundary():
    # the prior says 10 s per fold; folds really take 40 s: after the first fold the rest no longer fits
    units = [_unit(0, "mlp", prior=10)]
    clock, ex = _run(units, {"mlp": 40}, limit=100)
    (u,) = units
    assert u.state == "cut" and len(u.done) == 1 and "stopped after 1/5 folds" in u.reason
    assert clock.now <= 100 and not ex.killed


def test_unmeasured_families_probe_one_fold_before_the_rest_and_fill_other_slots():
    units = [_unit(0, "attn", prior=10), _unit(1, "lin", prior=10)]
    clock, ex = _run(units, {"attn": 10, "lin": 10}, limit=None, jobs=2)
    # first wave: one fold of each run (both families unmeasured), not two folds of the first
    assert {ex.started[0].split("/")[0], ex.started[1].split("/")[0]} == {"attn", "lin"}
    assert all(u.state == "finished" for u in units)


def test_a_job_running_at_the_deadline_is_stopped():
    # two folds fit by the estimate, but the second takes far longer than the first
    units = [_unit(0, "mlp", prior=10, folds=2)]
    clock = Clock()
    durations = iter([10.0, 500.0])

    class Slow(FakeExecutor):
        def submit(self, job: JobSpec) -> None:
            self.started.append(job.out)
            self.running[job.out] = (job, self.clock.now + next(durations))

    ex = Slow(clock, {"mlp": 10})
    Scheduler(units, Slots(1, None, False, "t"), time_limit=60, clock=clock).run(ex, lambda job: 10.0)
    assert clock.now == pytest.approx(60) and ex.killed == ["mlp/fold1-seed0.npz"]
    assert units[0].state == "cut" and "stopped at the time limit" in units[0].reason


def test_first_seeds_of_every_run_come_before_extra_seeds():
    units = [_unit(0, "mlp", prior=5), _unit(1, "mlp", prior=5, seed=1, rank=1, value=0.25),
             _unit(2, "attn", prior=8)]
    _, ex = _run(units, {"mlp": 5, "attn": 8}, limit=None)
    first_extra = ex.started.index("mlp/fold0-seed1.npz")
    assert all(ex.started.index(f"attn/fold{k}-seed0.npz") < first_extra for k in range(5))


def test_finished_folds_on_disk_are_not_run_again_and_their_seconds_steer_the_estimate():
    u = _unit(0, "mlp", prior=1000)
    u.done = {0, 1, 2}
    cost = CostModel()
    cost.observe(u, 5.0)
    clock = Clock()
    ex = FakeExecutor(clock, {"mlp": 5})
    Scheduler([u], Slots(1, None, False, "t"), time_limit=30, cost=cost, clock=clock).run(ex, ex.seconds)
    assert ex.started == ["mlp/fold3-seed0.npz", "mlp/fold4-seed0.npz"] and u.state == "finished"


def test_priors_grow_with_the_data_and_the_network():
    small = prior_seconds("mlp", params={"epochs": 100, "patience": 10}, n_fit=1000, n_predict=500, dim=256,
                          n_outputs=6, n_weights=100_000, gflops=50)
    big = prior_seconds("mlp", params={"epochs": 100, "patience": 10}, n_fit=4000, n_predict=500, dim=256,
                        n_outputs=6, n_weights=1_000_000, gflops=50)
    assert big > 10 * small
    wide = prior_seconds("xgboost", params={"n_estimators": 400, "colsample_bytree": 0.3, "max_depth": 4},
                         n_fit=4000, n_predict=20000, dim=6912, n_outputs=6, n_weights=None, gflops=50)
    narrow = prior_seconds("xgboost", params={"n_estimators": 400, "colsample_bytree": 0.3, "max_depth": 4},
                           n_fit=4000, n_predict=20000, dim=384, n_outputs=6, n_weights=None, gflops=50)
    assert wide > 5 * narrow


def test_auto_slots_run_small_work_here_and_large_work_in_workers(monkeypatch):
    from mer_ensemble.training import resources

    monkeypatch.setattr(resources, "cpu_cores", lambda: 8)
    small = auto_slots(threads=[1] * 10, memory=[2**20] * 10, work_seconds=3)
    assert small.inline and small.jobs == 1
    big = auto_slots(threads=[1] * 10, memory=[2**20] * 10, work_seconds=300)
    assert not big.inline and big.jobs == 8 and "cores" in big.reason
    few = auto_slots(threads=[1] * 3, memory=[2**20] * 3, work_seconds=300)
    assert few.jobs == 3
    monkeypatch.setattr(resources, "total_memory_bytes", lambda: 4 * 2**30)
    tight = auto_slots(threads=[1] * 10, memory=[2**30] * 10, work_seconds=300)
    assert tight.jobs == 2 and "memory" in tight.reason
    # a budget that a running job could overrun needs killable workers, even for small work
    assert not auto_slots(threads=[1], memory=[1], work_seconds=10, time_limit=30).inline


def test_durations():
    assert parse_duration("20m") == 1200 and parse_duration("1h30m") == 5400 and parse_duration(90) == 90
    with pytest.raises(ConfigError, match="--time-limit: 'soon' is not a duration"):
        parse_duration("soon", "--time-limit")


def test_time_limit_end_to_end_skips_what_cannot_fit_then_a_later_call_continues(tmp_path: Path, monkeypatch):
    root = write_generic(tmp_path / "d")
    models = [{"name": "linear", "id": "lin"}, {"name": "mlp", "id": "mlp", "params": {"epochs": 4}}]
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=models))
    wd = tmp_path / "wd"
    real_prior = runner.prior_seconds

    def huge_mlp(family, **kw):
        return 10_000.0 if family == "mlp" else real_prior(family, **kw)

    monkeypatch.setattr(runner, "prior_seconds", huge_mlp)
    records = runner.train_all(Experiment.open(cfg, wd), time_limit=120, progress=False)
    assert [r.key for r in records] == ["lin"]
    status = json.loads((wd / "train-status.json").read_text())
    assert status["runs"]["lin"]["status"] == "done" and status["runs"]["mlp"]["status"] == "skipped"
    assert "one fold takes" in status["runs"]["mlp"]["why"]["seed 0"]
    text = runner.render_status(status)
    assert "mlp (mlp): skipped, 0/3 jobs; no record" in text and "1 of 2 run(s) finished" in text
    lin_files = {p: p.stat().st_mtime_ns for p in wd.glob("jobs/lin/*/*.npz")}
    # blend uses what finished
    from mer_ensemble.blend import blend_runs

    blended = blend_runs(Experiment.open(cfg, wd), methods=["best", "mean"])
    assert blended.targets["emotion"].runs == ["lin"]
    # a later call with room (real priors) continues: lin is not refitted, mlp trains
    monkeypatch.setattr(runner, "prior_seconds", real_prior)
    again = runner.train_all(Experiment.open(cfg, wd), time_limit=600, progress=False)
    assert sorted(r.key for r in again) == ["lin", "mlp"]
    assert {p: p.stat().st_mtime_ns for p in wd.glob("jobs/lin/*/*.npz")} == lin_files
    assert runner.render_status(runner.load_status(wd)).startswith("time limit 600s: 2 of 2")
    np.testing.assert_array_equal(again[0].oof["emotion"], records[0].oof["emotion"])
