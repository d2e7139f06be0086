"""The k-fold runner and the prediction store."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset, load_or_make_folds
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment, data_settings
from mer_ensemble.models import _registry
from mer_ensemble.models._base import MerModel
from mer_ensemble.store import list_run_keys, load_run, load_runs
from mer_ensemble.training.runner import train_all
from tests.conftest import write_config, write_generic


class SeenProbe(MerModel):
    """Predicts class 0 for rows it trained on and class 1 for unseen rows (per target)."""

    name = "seen_probe"
    defaults = {}

    def _fit(self, data):
        first = next(iter(data.X.values()))
        self.seen_ = {row.tobytes() for row in np.asarray(first)}

    def predict_proba(self, X):
        first = np.asarray(next(iter(X.values())))
        seen = np.array([row.tobytes() in self.seen_ for row in first])
        out = {}
        for t, c in self.targets.items():
            p = np.zeros((len(first), c))
            p[seen, 0] = 1.0
            p[~seen, 1] = 1.0
            out[t] = p
        return out

    def save(self, path):  # pragma: no cover - not used
        raise NotImplementedError

    @classmethod
    def load(cls, path):  # pragma: no cover - not used
        raise NotImplementedError


def test_oof_rows_never_come_from_their_own_model(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(_registry._MODELS, "seen_probe", SeenProbe)
    root = write_generic(tmp_path / "d")
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=[{"name": "seen_probe", "id": "probe"}]))
    rec = train_all(Experiment.open(cfg, tmp_path / "wd"), progress=False)[0]
    for t in ("emotion", "sentiment"):
        assert (rec.oof[t].argmax(1) == 1).all(), "an OOF row was predicted by a model that trained on it"
        # every fold model trained on the other folds only: test rows are unseen by all of them
        assert (rec.test[t].argmax(1) == 1).all()
    assert rec.pool_by_fold["emotion"].shape == (3, 30, 3)


def test_store_record_and_manifest(generic_config: Path, tmp_path: Path):
    cfg = load_config(generic_config, ["cv.seeds=[0, 1]"])
    wd = tmp_path / "wd"
    (rec,) = train_all(Experiment.open(cfg, wd), progress=False)
    assert list_run_keys(wd) == ["lin"]
    again = load_runs(wd)[0]
    m = again.manifest
    assert m["model"] == "linear" and m["features"] == ["fa-UTT", "fb-UTT"] and m["seeds"] == [0, 1]
    assert m["folds_hash"] == load_or_make_folds(load_dataset(data_settings(cfg), wd), wd, 3).hash
    assert set(m["cv"]) == {"emotion", "sentiment"} and len(m["cv"]["emotion"]["folds"]) == 3
    assert 0 <= m["combined"]["mean"] <= 1 and "validation folds" in m["combined"]["estimate"]
    assert m["classes"]["emotion"] == ["anger", "joy", "neutral"]
    np.testing.assert_allclose(again.oof["emotion"], rec.oof["emotion"])
    np.testing.assert_allclose(again.oof["emotion"].sum(1), 1, rtol=1e-5)
    assert again.test["sentiment"].shape == (20, 2) and again.pool["emotion"].shape == (30, 3)
    # the data is learnable: CV well above chance
    assert m["cv"]["emotion"]["mean"] > 0.6


def test_multi_target_masking_and_subset(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    labels = root / "labels.csv"
    text = labels.read_text().splitlines()
    # blank the sentiment of a few train rows: they still train emotion
    for i in range(1, 8):
        parts = text[i].split(",")
        parts[3] = ""
        text[i] = ",".join(parts)
    labels.write_text("\n".join(text) + "\n")
    models = [{"name": "linear", "id": "both"}, {"name": "linear", "id": "emo_only", "targets": ["emotion"],
                                                  "features": ["audio"]}]
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=models))
    recs = train_all(Experiment.open(cfg, tmp_path / "wd"), run_ids=["emo_only"], progress=False)
    assert [r.key for r in recs] == ["emo_only"] and recs[0].targets == ["emotion"]
    assert recs[0].manifest["features"] == ["fa-UTT"]
    both = train_all(Experiment.open(cfg, tmp_path / "wd"), run_ids=["both"], progress=False)[0]
    assert np.isfinite(both.oof["sentiment"]).all()
    with pytest.raises(ConfigError, match="unknown run id"):
        train_all(Experiment.open(cfg, tmp_path / "wd"), run_ids=["nope"], progress=False)


def test_config_errors_for_models(tmp_path: Path, generic_root: Path):
    for models, msg in [
        ([{"name": "lightgbm"}], "unknown model 'lightgbm'"),
        ([{"name": "linear", "params": {"hidden": 3}}], r"unknown parameter\(s\) \['hidden'\]"),
        ([{"name": "linear", "features": ["speech"]}], "neither a modality"),
        ([{"name": "linear", "targets": ["intent"]}], "unknown target"),
    ]:
        cfg = load_config(write_config(tmp_path / "c.yaml", generic_root, models=models))
        with pytest.raises(ConfigError, match=msg):
            train_all(Experiment.open(cfg, tmp_path / "wd"), progress=False)


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path: Path):
    root = write_generic(tmp_path / "d", n_train=90)
    models = [{"name": "mlp", "id": "mlp", "params": {"epochs": 30, "patience": 30}}]
    cfg_path = write_config(tmp_path / "c.yaml", root, models=models, **{"cv.seeds": [0, 1, 2]})
    full = train_all(Experiment.open(load_config(cfg_path), tmp_path / "full"), progress=False)[0]

    wd = tmp_path / "killed"
    env = {**os.environ, "MER_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "mer_ensemble", "train-all", "-c", str(cfg_path), "--workdir", str(wd)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(wd.glob("jobs/mlp/*/*.npz"))) >= 2:
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in wd.glob("jobs/mlp/*/*.npz")}
    if killed:
        assert not list_run_keys(wd), "a killed run must not leave a record"
        assert len(done_before) < 9
    resumed = train_all(Experiment.open(load_config(cfg_path), wd), progress=False)[0]
    after = {p.name: p.stat().st_mtime_ns for p in wd.glob("jobs/mlp/*/*.npz")}
    assert len(after) == 9
    assert all(after[name] == mtime for name, mtime in done_before.items()), "finished jobs were redone"
    assert not list(wd.glob("jobs/**/.*.tmp")), "a temporary file was left behind"
    for t in ("emotion", "sentiment"):
        np.testing.assert_array_equal(resumed.oof[t], full.oof[t])
        np.testing.assert_array_equal(resumed.test[t], full.test[t])
    assert load_run(wd, "mlp").manifest["cv"] == full.manifest["cv"]


def _store_arrays(workdir: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted((workdir / "store").glob("*.npz")):
        with np.load(path) as arrays:
            out.update({f"{path.stem}/{k}": arrays[k] for k in arrays.files})
    return out


def test_parallel_jobs_equal_sequential(tmp_path: Path):
    """--jobs 1 (this process) and --jobs 2 (worker processes) write identical stores: the thread
    count per job never depends on the number of parallel jobs (issue 13.7)."""
    root = write_generic(tmp_path / "d", n_train=60)
    models = [{"name": "linear", "id": "lin"},
              {"name": "mlp", "id": "mlp", "params": {"epochs": 6, "hidden": 16}, "seeds": [0, 1]},
              {"name": "xgboost", "id": "xgb", "params": {"n_estimators": 8, "max_depth": 2}}]
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=models))
    one = train_all(Experiment.open(cfg, tmp_path / "one"), n_jobs=1, progress=False)
    two = train_all(Experiment.open(cfg, tmp_path / "two"), n_jobs=2, progress=False)
    assert [r.key for r in one] == [r.key for r in two] == ["lin", "mlp", "xgb"]
    a, b = _store_arrays(tmp_path / "one"), _store_arrays(tmp_path / "two")
    assert sorted(a) == sorted(b) and len(a) > 20
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert {r.manifest["threads"] for r in one} == {1}
