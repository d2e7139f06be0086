"""Dask cluster execution: a real local cluster gives the same stored predictions as the local runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.config import load_config
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.store import load_runs
from mer_ensemble.training.cluster import ClusterError, absolute_paths, job_resources, run_on_dask
from mer_ensemble.training.jobs import JobSpec
from mer_ensemble.training.runner import train_all
from tests.conftest import write_config, write_generic

os.environ["MER_NO_PROGRESS"] = "1"
distributed = pytest.importorskip("distributed")

MODELS = [
    {"name": "linear", "id": "lin"},
    {"name": "mlp", "id": "mlp", "features": ["audio"], "params": {"hidden": 16, "epochs": 4, "patience": 2}},
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-process local cluster (one task slot per worker); yields the scheduler address."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose data root is relative to the config's folder (as in configs/*.yaml)."""
    tmp = tmp_path_factory.mktemp("cluster")
    write_generic(tmp / "data")
    return write_config(tmp / "exp.yaml", Path("data"), models=MODELS, **{"train.threads": 1})


def _job(**changes: object) -> JobSpec:
    base = {"config": {}, "config_source": "c.yaml", "workdir": "wd", "folds_path": "wd/folds.csv", "folds_hash": "h",
            "run_key": "r", "model": {"name": "mlp"},
            "features": ("fa-UTT",), "targets": ("emotion",), "fold": 0, "seed": 0, "out": "wd/x.npz"}
    return JobSpec(**{**base, **changes})  # type: ignore[arg-type]


def test_dask_results_equal_local_results(cluster: str, experiment: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    local = train_all(Experiment.open(load_config(experiment), tmp_path / "local"), progress=False)
    # relative config and workdir paths: workers run in another folder, the client resolves them
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(experiment, tmp_path)
    cfg = load_config(relative, ["train.backend=dask", f"train.scheduler={cluster}"])
    on_dask = train_all(Experiment.open(cfg, Path("dask")), progress=False)
    assert [r.key for r in on_dask] == [r.key for r in local] == ["lin", "mlp"]
    stored = {r.key: r for r in load_runs(tmp_path / "dask")}
    for ref in local:
        rec = stored[ref.key]
        np.testing.assert_array_equal(rec.rows, ref.rows)
        for kind in ("oof", "test", "pool"):
            for t in ref.targets:
                np.testing.assert_allclose(getattr(rec, kind)[t], getattr(ref, kind)[t], rtol=1e-5, atol=1e-6)
        assert rec.manifest["cv"] == ref.manifest["cv"]
    # every job file exists once and a second run finds nothing to do
    assert len(list((tmp_path / "dask" / "jobs").rglob("*.npz"))) == 2 * 3
    again = train_all(Experiment.open(cfg, tmp_path / "dask"), progress=False)
    np.testing.assert_array_equal(again[0].oof["emotion"], on_dask[0].oof["emotion"])


def test_cli_train_all_on_dask(cluster: str, experiment: Path, tmp_path: Path) -> None:
    from mer_ensemble.cli import app

    result = CliRunner().invoke(app, ["train-all", "-c", str(experiment), "--workdir", str(tmp_path / "wd"),
                                      "--models", "lin", "--backend", "dask", "--scheduler", cluster])
    assert result.exit_code == 0, result.output
    assert "stored 1 run(s)" in result.output


def test_failed_job_names_run_fold_and_seed(cluster: str, experiment: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # planning builds each model once and would refuse C=-1 here; skip that build in this
    # process so the bad parameter reaches the workers, as a job planned elsewhere could
    monkeypatch.setattr("mer_ensemble.models.create_model", lambda *args, **kwargs: SimpleNamespace(raw_inputs=()))
    cfg = load_config(experiment, ["train.backend=dask", f"train.scheduler={cluster}", "models.0.params.C=-1"])
    with pytest.raises(ClusterError, match=r"^run lin fold \d seed 0 failed on the Dask cluster: ModelError: ") as err:
        train_all(Experiment.open(cfg, tmp_path / "wd"), run_ids=["lin"], progress=False)
    assert "\n" not in str(err.value)


def test_missing_scheduler_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train.scheduler: the dask backend needs a scheduler address"):
        run_on_dask([_job()], None, lambda n=1: None)


def test_unreachable_scheduler(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_on_dask([_job()], "tcp://127.0.0.1:9", lambda n=1: None, connect_timeout=2)


def test_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("task: generic")
    job = absolute_paths(_job(pseudo_file="wd/p.npz"))
    assert job.config_source == str(tmp_path / "c.yaml") and job.workdir == str(tmp_path / "wd")
    assert job.out == str(tmp_path / "wd" / "x.npz") and job.pseudo_file == str(tmp_path / "wd" / "p.npz")


def test_gpu_resource_hints() -> None:
    assert job_resources(_job(device="cuda")) == {"GPU": 1}
    assert job_resources(_job(device="cuda:1", model={"name": "xgboost"})) == {"GPU": 1}
    assert job_resources(_job(device="cuda", model={"name": "linear"})) is None
    assert job_resources(_job(device="auto")) is None
    assert job_resources(_job(device="cpu")) is None


def test_gpu_jobs_without_gpu_workers_fail_clearly(cluster: str) -> None:
    with pytest.raises(ClusterError, match="need a GPU .* --resources GPU=1"):
        run_on_dask([_job(device="cuda")], cluster, lambda n=1: None)
