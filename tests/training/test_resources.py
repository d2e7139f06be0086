"""How many jobs run at once and with how many threads (training/resources.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_ensemble.config import load_config
from mer_ensemble.experiment import Experiment
from mer_ensemble.models import get_model_class, list_models
from mer_ensemble.training import resources
from mer_ensemble.training.budget import CostModel, make_units
from mer_ensemble.training.plan import JobBuilder
from mer_ensemble.training.resources import (
    CUDA_JOB_THREADS,
    auto_slots,
    choose_slots,
    family_on_cuda,
    job_memory_bytes,
    job_threads,
    runs_on_cuda,
)
from tests.conftest import write_config, write_generic


def test_auto_slots_run_small_work_here_and_large_work_in_workers(monkeypatch):
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


@pytest.mark.parametrize("name", list_models())
def test_where_a_family_runs_follows_its_declared_uses_gpu(name: str, monkeypatch):
    uses_gpu = get_model_class(name).uses_gpu
    assert family_on_cuda(name, "cpu") is False
    assert family_on_cuda(name, "cuda") is uses_gpu
    monkeypatch.setattr(resources, "cuda_devices", lambda: 0)
    assert family_on_cuda(name, "auto") is False, "auto without a GPU stays on the CPU"
    monkeypatch.setattr(resources, "cuda_devices", lambda: 1)
    assert family_on_cuda(name, "auto") is uses_gpu


def test_threads_per_job_depend_on_the_device_only(monkeypatch):
    monkeypatch.setattr(resources, "cpu_cores", lambda: 16)
    assert job_threads(False) == 1 and job_threads(True) == CUDA_JOB_THREADS
    assert job_threads(True, configured=3) == 3 and job_threads(False, configured=2) == 2
    monkeypatch.setattr(resources, "cpu_cores", lambda: 2)
    assert job_threads(True) == 2, "never more threads than cores"
    assert runs_on_cuda(True, "cuda:1") and not runs_on_cuda(False, "cuda")


def test_job_memory_grows_with_the_training_rows_and_width():
    base = job_memory_bytes(0, 0)
    assert job_memory_bytes(1000, 100) - base == 16 * 1000 * 100
    assert job_memory_bytes(2000, 100) > job_memory_bytes(1000, 100)


def test_choose_slots_takes_a_number_as_given_and_auto_from_the_jobs_to_run(tmp_path: Path, monkeypatch):
    root = write_generic(tmp_path / "d")
    exp = Experiment.open(load_config(write_config(tmp_path / "c.yaml", root)), tmp_path / "wd")
    units = make_units([JobBuilder(exp).plan(spec) for spec in exp.config.models], exp, gflops=10.0)
    cost = CostModel()
    fixed = choose_slots(3, units, exp, cost, time_limit=None)
    assert (fixed.jobs, fixed.inline, fixed.reason) == (3, False, "train.jobs / --jobs")
    assert choose_slots(1, units, exp, cost, time_limit=None).inline
    assert not choose_slots(1, units, exp, cost, time_limit=60).inline, "a deadline needs a killable worker"
    small = choose_slots("auto", units, exp, cost, time_limit=None)
    assert small.inline and "less than starting workers costs" in small.reason
    for u in units:  # much more work: worker processes, as many as the cores allow
        u.prior = 100.0
    monkeypatch.setattr(resources, "cpu_cores", lambda: 2)
    big = choose_slots("auto", units, exp, cost, time_limit=None)
    assert not big.inline and big.jobs == 2 and "limited by" in big.reason
    for u in units:
        u.done = set(range(len(u.jobs)))
    assert choose_slots("auto", units, exp, cost, time_limit=None).reason == "nothing to run"
