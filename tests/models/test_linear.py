"""``linear``: C and class weighting chosen inside the training fold only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mer_ensemble.config import load_config
from mer_ensemble.experiment import Experiment
from mer_ensemble.metrics import weighted_f1
from mer_ensemble.models import create_model
from mer_ensemble.models.linear import LinearModel
from mer_ensemble.training.runner import train_all
from tests.conftest import write_config, write_generic


def _noise(n: int = 240, d: int = 30, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, n)


def test_choice_uses_training_rows_only_and_would_inflate_if_it_saw_the_validation_rows():
    """Random labels: an honest choice scores at chance; choosing C on the held-out rows does not."""
    X, y = _noise()
    held = np.arange(len(y)) % 3 == 0
    grid = LinearModel.defaults["C_grid"]
    model = create_model("linear", targets={"e": 4}, feature_dims={"f": 30}, modalities={"f": "audio"})
    model.fit({"f": X[~held]}, {"e": y[~held]})
    honest = weighted_f1(y[held], model.predict_proba({"f": X[held]})["e"].argmax(1))
    leaky = max(
        weighted_f1(y[held], create_model("linear", targets={"e": 4}, feature_dims={"f": 30}, modalities={"f": "a"},
                                          C=c, class_weight=w).fit({"f": X[~held]}, {"e": y[~held]})
                    .predict_proba({"f": X[held]})["e"].argmax(1))
        for c in grid for w in (None, "balanced")
    )
    assert model.selected_["e"]["C"] in grid and model.selected_["e"]["class_weight"] in (None, "balanced")
    assert honest < 0.4 and leaky > honest  # chance is 0.25; peeking at the held-out rows picks the lucky C


def test_the_fit_never_receives_a_validation_row_and_records_the_choice(tmp_path: Path, monkeypatch):
    root = write_generic(tmp_path / "d")
    cfg = load_config(write_config(tmp_path / "c.yaml", root))
    seen: list[set[bytes]] = []
    original = LinearModel._fit

    def spy(self, data):  # noqa: ANN001
        seen.append({r.tobytes() for r in np.asarray(data.X["fa-UTT"])})
        return original(self, data)

    monkeypatch.setattr(LinearModel, "_fit", spy)
    exp = Experiment.open(cfg, tmp_path / "wd")
    (record,) = train_all(exp, progress=False)
    values = exp.dataset.features["fa-UTT"].values
    for k, rows in enumerate(seen):
        _, valid = exp.folds.split(k)
        assert not rows & {values[r].tobytes() for r in valid}
    chosen = record.manifest["selected"]
    assert sorted(chosen) == ["fold0-seed0", "fold1-seed0", "fold2-seed0"]
    assert set(chosen["fold0-seed0"]) == {"emotion", "sentiment"} and "C" in chosen["fold0-seed0"]["emotion"]
