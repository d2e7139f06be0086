"""A family declares what the training layer needs; nothing in training/ names a family.

Families are registered here, by this test module (a fixture registers them for one test and
restores the registry after). Worker processes find them through the job's ``model_ref``
(``test_families:CentroidModel``): they import this module and register the class themselves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mer_ensemble.cli import app
from mer_ensemble.config import load_config
from mer_ensemble.data import RAW_TEXT
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.models import MerModel, WorkSize, _registry, list_models, register_model
from mer_ensemble.models._inputs import concat_pooled
from mer_ensemble.store import load_runs
from mer_ensemble.training.runner import train_all
from tests.conftest import REPO, shared, write_config, write_generic

runner = CliRunner()


class _ProbaModel(MerModel):
    """What both test families share: softmax of a score per class, nothing saved."""

    defaults: dict[str, Any] = {}

    def _scores(self, X: Any) -> np.ndarray:  # (n, k) features the per-class statistics compare
        raise NotImplementedError

    def _fit(self, data: Any) -> None:
        x = self._scores(data.X)
        self.stats_ = {}
        for target, n_classes in self.targets.items():
            y = data.y[target]
            overall = x[y >= 0].mean(axis=0) if (y >= 0).any() else np.zeros(x.shape[1])
            self.stats_[target] = np.stack([x[y == c].mean(axis=0) if (y == c).any() else overall
                                            for c in range(n_classes)])
        self.selected_["rows"] = int(data.n)

    def predict_proba(self, X: Any) -> dict[str, np.ndarray]:
        x = self._scores(X)
        out = {}
        for target, centers in self.stats_.items():
            logits = -((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
            logits -= logits.max(axis=1, keepdims=True)
            out[target] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return out

    def save(self, path: str) -> None:  # pragma: no cover - not used
        raise NotImplementedError

    @classmethod
    def load(cls, path: str) -> MerModel:  # pragma: no cover - not used
        raise NotImplementedError


class CentroidModel(_ProbaModel):
    """Nearest class centroid on the standardised features; declares its own cost and value."""

    blend_value = 0.9
    #: seconds per job this family declares before anything was measured (a test may change it)
    declared_seconds = 2.0

    @classmethod
    def prior_seconds(cls, params: dict[str, Any], work: WorkSize) -> float:
        return cls.declared_seconds

    def _scores(self, X: Any) -> np.ndarray:
        return concat_pooled(X, list(self.feature_dims)).astype(np.float64)


class SlowCentroidModel(CentroidModel):
    """The same model declaring a cost no time limit of these tests can hold."""

    blend_value = 1.0
    declared_seconds = 10_000.0


class TextLengthModel(_ProbaModel):
    """Reads raw text alone: words and characters per row (rows without text count 0)."""

    raw_inputs = ("text",)
    needs_features = False

    def _scores(self, X: Any) -> np.ndarray:
        texts = X[RAW_TEXT]
        assert all(t is None or isinstance(t, str) for t in texts), "raw text arrives as str or None"
        self.missing_ = int(sum(t is None for t in texts))
        return np.array([[len((t or "").split()), len(t or "") / 5.0] for t in texts], dtype=np.float64)

    def _fit(self, data: Any) -> None:
        super()._fit(data)
        self.selected_["missing_text"] = self.missing_


@pytest.fixture
def families(monkeypatch):
    """Register the test families for one test; the registry is restored afterwards."""
    monkeypatch.setattr(_registry, "_MODELS", dict(_registry._MODELS))
    for name, cls in (("centroid", CentroidModel), ("slow_centroid", SlowCentroidModel),
                      ("text_length", TextLengthModel)):
        register_model(name)(cls)
    yield
    for cls in (CentroidModel, SlowCentroidModel, TextLengthModel):
        cls.name = ""


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------------------------------------
# the training layer asks the class


def test_training_layer_names_no_family_and_probes_no_capability():
    names = set(list_models()) | {"lin", "mlp", "xgb", "xgboost", "fusion", "TorchModel"}
    for path in sorted((REPO / "mer_ensemble" / "training").glob("*.py")):
        text = path.read_text()
        code = "\n".join(line.split("#")[0] for line in text.splitlines())
        for name in names:
            assert not re.search(rf"\b{re.escape(name)}\b", code, re.IGNORECASE), f"{path.name} names {name!r}"
        assert not re.search(r"getattr\([^)]*\"uses_", code), f"{path.name} probes a capability with getattr"


def test_a_family_registered_by_a_test_runs_in_worker_processes_under_a_time_limit(
        families, tmp_path: Path, monkeypatch):
    root = write_generic(tmp_path / "d", n_train=90)
    models = [{"name": "centroid", "id": "cen"}, {"name": "slow_centroid", "id": "slow"}]
    config = write_config(tmp_path / "c.yaml", root, models=models)
    wd = tmp_path / "wd"
    # two jobs at a time: worker processes, which import this module to find the families
    result = invoke("train-all", "-c", config, "--workdir", wd, "--time-limit", "5m", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert "slow (slow_centroid): skipped, 0/3 jobs; no record" in result.output
    status = json.loads((wd / "train-status.json").read_text())
    assert status["runs"]["cen"]["status"] == "done" and "in worker processes" in status["slots"]
    assert "one fold takes ~" in status["runs"]["slow"]["why"]["seed 0"], "the declared prior decided"
    (record,) = load_runs(wd)
    assert record.manifest["model"] == "centroid" and record.manifest["cv"]["emotion"]["mean"] > 0.6
    assert sum(sel["rows"] for sel in record.manifest["selected"].values()) == 2 * 90, "each fold fits 2 of 3 folds"
    # the same run in this process gives the same predictions
    inline = train_all(Experiment.open(load_config(config), tmp_path / "inline"), run_ids=["cen"], n_jobs=1,
                       progress=False)[0]
    np.testing.assert_array_equal(inline.oof["emotion"], record.oof["emotion"])
    # a later call after the family declares a smaller cost continues and keeps the finished run
    done = {p: p.stat().st_mtime_ns for p in wd.glob("jobs/cen/*/*.npz")}
    monkeypatch.setattr(SlowCentroidModel, "declared_seconds", 1.0)
    result = invoke("train-all", "-c", config, "--workdir", wd, "--time-limit", "5m", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert sorted(r.key for r in load_runs(wd)) == ["cen", "slow"]
    assert {p: p.stat().st_mtime_ns for p in wd.glob("jobs/cen/*/*.npz")} == done


def test_units_are_ordered_by_the_declared_value_per_second(families, tmp_path: Path, monkeypatch):
    from mer_ensemble.training.budget import make_units
    from mer_ensemble.training.plan import JobBuilder

    root = write_generic(tmp_path / "d")
    models = [{"name": "centroid", "id": "cen"}, {"name": "slow_centroid", "id": "slow"}]
    exp = Experiment.open(load_config(write_config(tmp_path / "c.yaml", root, models=models)), tmp_path / "wd")
    units = make_units([JobBuilder(exp).plan(s) for s in exp.config.models], exp, gflops=10.0)
    assert [(u.family, u.prior, u.value) for u in units] == [("centroid", 2.0, 0.9), ("slow_centroid", 10_000.0, 1.0)]


# ---------------------------------------------------------------------------------------------
# raw inputs through train-all


def _text_config(tmp_path: Path, root: Path, **extra: Any) -> Path:
    models = [{"name": "text_length", "id": "len", "features": ["raw:text"]}, {"name": "linear", "id": "lin"}]
    return write_config(tmp_path / "c.yaml", root, models=models, **extra)


def test_raw_text_reaches_a_family_through_train_all(families, tmp_path: Path):
    root = write_generic(tmp_path / "d", text=True)
    labels = root / "labels.csv"
    lines = labels.read_text().splitlines()
    header = lines[0].split(",")
    for i in (1, 5, 70):  # two training rows and a test row without text
        cells = lines[i].split(",")
        cells[header.index("text")] = ""
        lines[i] = ",".join(cells)
    labels.write_text("\n".join(lines) + "\n")
    config = _text_config(tmp_path, root)
    wd = tmp_path / "wd"
    check = invoke("check", "-c", config, "--workdir", wd)
    assert check.exit_code == 0, check.output
    assert "raw text: 3 of 110 rows lack it (first: utt0000, utt0004, utt0069)" in check.output
    assert "models[len] reads raw text: 3 of 110 rows lack it" in check.output
    assert re.search(r"len\s+text_length\s+raw:text\s+targets", check.output), "the run reads raw text only"
    result = invoke("train-all", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert re.search(r"│ len\s+│ text_length\s+│ raw:text", result.output)
    record = {r.key: r for r in load_runs(wd)}["len"]
    assert record.manifest["features"] == [] and set(record.manifest["raw_inputs"]) == {"text"}
    assert record.manifest["cv"]["emotion"]["mean"] > 0.8, "words per row carry the emotion"
    assert sum(sel["missing_text"] for sel in record.manifest["selected"].values()) == 2 * 2, \
        "each training row without text is seen by the two folds that train on it"
    blend = invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / "sub.csv")
    assert blend.exit_code == 0, blend.output


def test_changed_text_retrains_the_runs_that_read_it_only(families, tmp_path: Path):
    root = write_generic(tmp_path / "d", text=True)
    config = _text_config(tmp_path, root)
    train_all(Experiment.open(load_config(config), tmp_path / "wd"), progress=False)
    labels = root / "labels.csv"
    labels.write_text(labels.read_text().replace("word word word", "a b c", 1))
    from mer_ensemble.blend import blend_runs
    from mer_ensemble.errors import BlendError

    with pytest.raises(BlendError, match=r"runs len \(text\) read raw inputs that have changed since; retrain"):
        blend_runs(Experiment.open(load_config(config), tmp_path / "wd"), methods=["mean"])
    train_all(Experiment.open(load_config(config), tmp_path / "wd"), progress=False)
    assert len(list((tmp_path / "wd" / "jobs" / "len").iterdir())) == 2, "the text run trained again"
    assert len(list((tmp_path / "wd" / "jobs" / "lin").iterdir())) == 1, "the feature run was kept"


def test_raw_input_errors_name_the_run_and_what_is_missing(families, tmp_path: Path):
    no_text = write_generic(tmp_path / "plain")
    cases = [
        (no_text, [{"name": "text_length", "id": "len"}], r"models\[len\]: text_length reads raw:text but the data "
                                                            r"has none; set data.text_column"),
        (write_generic(tmp_path / "t", text=True), [{"name": "linear", "id": "lin", "features": ["raw:text"]}],
         r"models\[lin\].features: linear needs at least one feature block"),
        (tmp_path / "t", [{"name": "linear", "id": "lin", "features": ["audio", "raw:text"]}],
         r"models\[lin\].features: linear does not read raw:text \(it reads no raw input\)"),
        (tmp_path / "t", [{"name": "text_length", "id": "len", "features": ["raw:video"]}],
         r"unknown raw input\(s\) \['raw:video'\]"),
    ]
    for i, (root, models, message) in enumerate(cases):
        cfg = load_config(write_config(tmp_path / "c.yaml", root, models=models))
        with pytest.raises(ConfigError, match=message):
            train_all(Experiment.open(cfg, tmp_path / f"wd{i}"), progress=False)
    bad = write_config(tmp_path / "c.yaml", tmp_path / "t", models=[{"name": "linear"}], **{"data.text_column": "x"})
    result = invoke("check", "-c", bad, "--workdir", tmp_path / "wd")
    assert result.exit_code == 1 and "data.text_column 'x' not found" in result.output


def test_real_meld_text_reaches_the_family(families, tmp_path: Path):
    meld = shared("meld")
    cfg = yaml.safe_load((REPO / "configs" / "meld.yaml").read_text())
    cfg["data"]["root"] = str(meld)
    cfg["truth"] = {}
    cfg["models"] = [{"name": "text_length", "id": "len", "features": ["raw:text"]}]
    config = tmp_path / "meld.yaml"
    config.write_text(yaml.safe_dump(cfg))
    exp = Experiment.open(load_config(config), tmp_path / "wd")
    import pandas as pd

    table = pd.read_csv(meld / "labels.csv", dtype=str, keep_default_na=False)
    texts = dict(zip(table["name"], table["text"], strict=True))
    assert [exp.dataset.raw["text"][i] for i in range(5)] == [texts[n].strip() or None for n in exp.dataset.names[:5]]
    (record,) = train_all(exp, progress=False)
    assert set(record.manifest["raw_inputs"]) == {"text"}
    n_labelled = len(exp.folds.rows)
    rows_seen = sum(sel["rows"] for sel in record.manifest["selected"].values())
    assert rows_seen == n_labelled * (exp.folds.n_folds - 1), "every training row of every fold got its text"
    # predictions follow the text length: rows with the same words per row get the same probabilities
    assert len(np.unique(record.oof["emotion"].round(6), axis=0)) > 10
