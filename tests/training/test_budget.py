"""The scheduler of train-all: value-per-second order, admission within a budget, cuts at fold
boundaries and the stop at the deadline, on a simulated clock (no real jobs); units made from
the families' declared costs and values. The time budget end to end with a family registered by
a test is in test_families.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_ensemble.config import load_config, parse_duration
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.models import WorkSize, get_model_class
from mer_ensemble.training.budget import EXTRA_SEED_VALUE, CostModel, Scheduler, Unit, make_units
from mer_ensemble.training.jobs import JobSpec
from mer_ensemble.training.plan import JobBuilder
from mer_ensemble.training.resources import Slots
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


def test_units_take_each_familys_declared_prior_and_value(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    models = [{"name": "linear", "id": "lin"}, {"name": "xgboost", "id": "xgb"},
              {"name": "mlp", "id": "mlp", "params": {"hidden": 32}, "seeds": [0, 1]}]
    exp = Experiment.open(load_config(write_config(tmp_path / "c.yaml", root, models=models)), tmp_path / "wd")
    builder = JobBuilder(exp)
    plans = [builder.plan(spec) for spec in exp.config.models]
    units = make_units(plans, exp, gflops=20.0)
    assert [(u.run, u.seed, u.rank) for u in units] == [("lin", 0, 0), ("xgb", 0, 0), ("mlp", 0, 0), ("mlp", 1, 1)]
    n_fit, n_predict = 40, 20 + 20 + 30  # 60 labelled rows in 3 folds; test and pool rows
    for unit, plan in zip(units, [plans[0], plans[1], plans[2], plans[2]], strict=True):
        family = get_model_class(plan.spec.name)
        work = WorkSize(n_fit=n_fit, n_predict=n_predict, dims=[8, 6], n_outputs=5, n_modalities=2, gflops=20.0)
        assert unit.prior == family.prior_seconds({**family.defaults, **plan.spec.params}, work)
        assert unit.value == family.blend_value * (EXTRA_SEED_VALUE if unit.rank else 1.0)
        assert len(unit.jobs) == 3 and [j.fold for j in unit.jobs] == [0, 1, 2]
    assert units[0].value == 1.0 and units[1].value == 0.7, "linear 1.0 and XGBoost 0.7 as declared"


def test_durations():
    assert parse_duration("20m") == 1200 and parse_duration("1h30m") == 5400 and parse_duration(90) == 90
    with pytest.raises(ConfigError, match="--time-limit: 'soon' is not a duration"):
        parse_duration("soon", "--time-limit")


def test_a_finetune_unit_is_costed_from_its_checkpoint_and_the_rows_own_text(tmp_path: Path, tiny_checkpoints: dict):
    """The scheduler's prior for a fine-tuning run reads a sample of the rows' text (``WorkSize.raw_sample``), so
    short utterances are not costed as 24 tokens each; it is the family's own estimate for that work."""
    root = write_generic(tmp_path / "d", text=True)
    ft = {"name": "finetune", "id": "ft", "features": ["raw:text"], "params": {"checkpoint": "ckpt"}}
    import shutil

    shutil.copytree(tiny_checkpoints["bert"], tmp_path / "ckpt")
    exp = Experiment.open(load_config(write_config(tmp_path / "c.yaml", root, models=[ft])), tmp_path / "wd")
    (plan,) = [JobBuilder(exp).plan(spec) for spec in exp.config.models]
    (unit,) = make_units([plan], exp, gflops=20.0)
    texts = tuple(t for t in exp.dataset.raw["text"] if t is not None)
    family = get_model_class("finetune")
    params = {**family.defaults, "checkpoint": str(tmp_path / "ckpt")}
    work = WorkSize(n_fit=40, n_predict=70, dims=[], n_outputs=5, n_modalities=0, gflops=20.0, raw_inputs=("text",),
                    raw_sample={"text": texts})
    assert unit.prior == pytest.approx(family.prior_seconds(params, work))
    assert unit.prior != pytest.approx(family.prior_seconds(params, WorkSize(**{**vars(work), "raw_sample": {}})))
