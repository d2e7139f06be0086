"""Base-model tuning: several worker processes share one Optuna study; spaces; the tuned config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from mer_ensemble.config import load_config
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.models import list_models, model_defaults
from mer_ensemble.tune import (
    TuneError,
    check_space,
    default_spaces,
    default_storage,
    open_storage,
    tune_model,
    tuned_entry,
    write_tuned_config,
)
from tests.conftest import REPO, write_config, write_generic

os.environ["MER_NO_PROGRESS"] = "1"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tune")
    root = write_generic(tmp / "data")
    (tmp / "conf").mkdir()
    return write_config(tmp / "conf" / "exp.yaml", root, models=[{"name": "linear", "id": "lin"}],
                        **{"train.threads": 1, "truth": {"test": str(root / "truth.csv")}})


def _worker(config: Path, workdir: Path, trials: int) -> subprocess.Popen:
    env = {**os.environ, "MER_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "mer_ensemble", "tune", "lin", "-c", str(config), "--workdir", str(workdir),
           "--trials", str(trials)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)


def test_two_worker_processes_share_one_study(experiment: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    # folds and the feature cache first, so the two workers only race on the study
    subprocess.run([sys.executable, "-m", "mer_ensemble", "check", "-c", str(experiment), "--workdir", str(workdir)],
                   check=True, capture_output=True, cwd=REPO)
    workers = [_worker(experiment, workdir, 3) for _ in range(2)]
    outputs = [w.communicate(timeout=180)[0] for w in workers]
    for w, out in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out
    (summary,) = optuna.get_all_study_summaries(default_storage(workdir))
    assert summary.study_name.startswith("exp-lin-")
    trials = optuna.load_study(study_name=summary.study_name, storage=default_storage(workdir)).trials
    states = [t.state for t in trials]
    assert len(trials) == 6, states
    assert all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states), states
    assert sorted(t.number for t in trials) == list(range(6))
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) >= 1
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            # one running mean per fold (3 folds), the value is the mean of the fold scores
            assert sorted(t.intermediate_values) == [0, 1, 2]
            assert t.value == pytest.approx(np.mean(t.user_attrs["fold_scores"]))
            assert t.intermediate_values[2] == pytest.approx(t.value)
    assert all(f"study {summary.study_name} in sqlite:///" in o for o in outputs)
    assert not list((workdir / "tune").glob("*/trial*")), "temporary trial folders were left behind"


def test_baseline_trial_scores_like_train_all(experiment: Path, tmp_path: Path) -> None:
    from mer_ensemble.training.runner import train_all

    cfg = load_config(experiment)
    (record,) = train_all(Experiment.open(cfg, tmp_path / "wd"), progress=False)
    result = tune_model(Experiment.open(cfg, tmp_path / "wd"), "lin", n_trials=1, progress=False, seed=0)
    assert result.n_complete == 1 and result.top[0]["baseline"]
    assert result.best_value == pytest.approx(record.manifest["combined"]["mean"])


def test_write_tuned_config(experiment: Path, tmp_path: Path) -> None:
    cfg = load_config(experiment, ["cv.folds=4"])
    entry = tuned_entry(cfg.models[0], {"C": 0.5})
    out = write_tuned_config(cfg, tmp_path / "elsewhere" / "tuned.yaml", entry, overrides=["cv.folds=4"],
                             header="# tuned")
    assert out.read_text().startswith("# tuned\n")
    tuned = load_config(out)
    assert [m.run_id for m in tuned.models] == ["lin", "lin_tuned"]
    assert tuned.models[1].params == {"C": 0.5} and tuned.cv.folds == 4
    # relative data paths still point at the same files from the new folder
    assert tuned.resolve_path(tuned.data.root) == cfg.resolve_path(cfg.data.root)
    raw = yaml.safe_load(out.read_text())
    assert not Path(raw["data"]["root"]).is_absolute() or Path(cfg.data.root).is_absolute()
    # writing again replaces the entry instead of adding a duplicate id
    write_tuned_config(tuned, out, tuned_entry(cfg.models[0], {"C": 2.0}))
    assert [m.params for m in load_config(out).models] == [{}, {"C": 2.0}]


@pytest.mark.parametrize("family", sorted(default_spaces()))
def test_default_spaces_name_real_parameters(family: str) -> None:
    assert family in list_models()
    space = check_space(family, default_spaces()[family])
    assert set(space) <= set(model_defaults(family))


def test_space_errors_name_the_problem() -> None:
    with pytest.raises(TuneError, match="search space of linear: hidden: not a parameter of linear; allowed:"):
        check_space("linear", {"hidden": [1, 2]})
    with pytest.raises(TuneError, match="search space of linear: C: a log scale needs low > 0"):
        check_space("linear", {"C": {"type": "float", "low": 0, "high": 1, "log": True}})
    with pytest.raises(TuneError, match="C: needs numbers low <= high"):
        check_space("linear", {"C": {"type": "float", "low": 2, "high": 1}})
    assert check_space("linear", {"C": [0.1, 1.0]})["C"] == {"type": "categorical", "choices": [0.1, 1.0]}
    with pytest.raises(TuneError, match="expected an Optuna storage URL"):
        open_storage("tune.db")


def test_unknown_model_id(experiment: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no entry with id 'nope'; the config has lin"):
        tune_model(Experiment.open(load_config(experiment), tmp_path / "wd"), "nope", n_trials=1, progress=False)
