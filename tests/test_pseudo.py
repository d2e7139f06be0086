"""Pseudo-label selection rules, the no-leak property, the rounds and which round blend uses."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment, data_settings
from mer_ensemble.models import _registry
from mer_ensemble.models._base import MerModel
from mer_ensemble.pseudo import class_caps, make_pseudo_file, run_pseudo_rounds, select_agreed
from mer_ensemble.training.runner import train_all
from tests.conftest import write_config, write_generic


def _p(rows):
    return np.array(rows, dtype=float)


def test_threshold_and_agreement():
    a = _p([[0.95, 0.05], [0.6, 0.4], [0.97, 0.03], [0.2, 0.8]])
    b = _p([[0.93, 0.07], [0.9, 0.1], [0.3, 0.7], [0.01, 0.99]])
    sel = select_agreed([a, b], threshold=0.9)
    # row 0 agreed + confident; row 1 agreed but mean 0.75; row 2 disagree; row 3 agreed, mean 0.895
    assert sel.labels.tolist() == [0, -1, -1, -1]
    sel = select_agreed([a, b], threshold=0.85)
    assert sel.labels.tolist() == [0, -1, -1, 1]
    assert sel.agree_rate == pytest.approx(0.75)
    c = _p([[0.99, 0.01], [0.99, 0.01], [0.99, 0.01], [0.99, 0.01]])
    sel = select_agreed([a, b, c], threshold=0.61, min_agree=2)
    assert sel.labels.tolist() == [0, 0, 0, -1]  # row 3: 2 of 3 say 1 but the mean is 0.60
    with pytest.raises(ConfigError, match="min_agree"):
        select_agreed([a], min_agree=2)


def test_class_caps_keep_most_confident_and_candidates_filter():
    probs = _p([[0.99, 0.01], [0.95, 0.05], [0.97, 0.03], [0.02, 0.98]])
    sel = select_agreed([probs], threshold=0.9, caps=np.array([2, 5]))
    assert sel.labels.tolist() == [0, -1, 0, 1]
    sel = select_agreed([probs], threshold=0.9, allowed=np.array([False, True, True, True]))
    assert sel.labels.tolist() == [-1, 0, 0, 1]
    assert class_caps(0.5, np.array([10, 4])).tolist() == [5, 2]
    assert class_caps(3, np.array([10, 4])).tolist() == [3, 3]
    assert class_caps(None, np.array([1])) is None


def test_pseudo_file_masks_targets_separately(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{"pseudo.threshold": 0.0}))
    ds = load_dataset(data_settings(cfg), tmp_path / "wd")
    (rec,) = train_all(Experiment.open(cfg, tmp_path / "wd"), progress=False)
    # make sentiment confident on the first 5 pool rows only
    rec.pool_by_fold["sentiment"][:] = 0.5
    rec.pool_by_fold["sentiment"][:, :5] = [0.99, 0.01]
    cfg.pseudo.threshold = 0.9
    rec.pool_by_fold["emotion"][:] = [0.98, 0.01, 0.01]
    rec.pool_by_fold["emotion"][:, 3:] = [0.34, 0.33, 0.33]
    path, info = make_pseudo_file(cfg, ds, [rec], tmp_path / "p.npz")
    with np.load(path) as f:
        rows = f["rows_0"]
        assert len(rows) == 5  # union of both targets' selections
        emo, sent = f["label_0/emotion"], f["label_0/sentiment"]
        assert (emo[:3] == 0).all() and (emo[3:] == -1).all()
        assert (sent == 0).all()
        assert set(rows) <= set(ds.pool_rows)
    assert info["added"]["emotion"]["anger"] == 3


class _InMemory(MerModel):
    """A test family that is never saved (its jobs run with keep_models off)."""

    def save(self, path):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def load(cls, path):  # pragma: no cover
        raise NotImplementedError


class Memorizer(_InMemory):
    """Nearest neighbour: confidence 1 for an exact training row, 0.5 otherwise."""

    name = "memorizer"
    defaults = {}

    def _fit(self, data):
        self.x_ = np.asarray(next(iter(data.X.values())), dtype=np.float64)
        self.y_ = {t: np.asarray(v) for t, v in data.y.items()}

    def predict_proba(self, X):
        x = np.asarray(next(iter(X.values())), dtype=np.float64)
        dist = ((x[:, None, :] - self.x_[None]) ** 2).sum(-1)
        nearest = dist.argmin(1)
        exact = dist.min(1) < 1e-12
        out = {}
        for t, c in self.targets.items():
            label = self.y_[t][nearest]
            p = np.full((len(x), c), 0.5 / (c - 1))
            p[np.arange(len(x)), label] = np.where(exact, 1.0, 0.5)
            p[exact] = np.where(np.arange(c)[None] == label[exact, None], 1.0, 0.0)
            out[t] = p
        return out


def _planted(tmp_path: Path) -> Path:
    """Random labels (nothing to learn) and a pool holding exact copies of the labelled rows."""
    rng = np.random.default_rng(0)
    root = tmp_path / "planted"
    n = 60
    names = [f"l{i}" for i in range(n)] + [f"t{i}" for i in range(10)] + [f"p{i}" for i in range(n)]
    split = ["train"] * n + ["test"] * 10 + ["unlabeled"] * n
    labels = rng.integers(0, 4, n)
    pd.DataFrame({"name": names, "split": split,
                  "emotion": [f"c{v}" for v in labels] + [""] * (10 + n)}).to_csv(root.mkdir(parents=True) or
                                                                                  root / "labels.csv", index=False)
    x = rng.normal(size=(n + 10, 6)).astype(np.float32)
    folder = root / "features" / "f-UTT"
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        np.save(folder / f"{name}.npy", x[i] if i < n + 10 else x[i - n - 10])
    cfg = {"task": "generic", "data": {"layout": "generic", "root": str(root), "targets": ["emotion"],
                                       "features": {"audio": ["f-UTT"]}},
           "cv": {"folds": 5}, "models": [{"name": "memorizer", "id": "mem"}],
           "pseudo": {"threshold": 0.75, "rounds": 1}}
    path = tmp_path / "planted.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_no_leak_cv_stays_at_chance_while_a_leaky_scheme_inflates_it(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(_registry._MODELS, "memorizer", Memorizer)
    cfg = load_config(_planted(tmp_path))
    honest_wd, leaky_wd = tmp_path / "honest", tmp_path / "leaky"
    ds = load_dataset(data_settings(cfg), honest_wd)
    honest = run_pseudo_rounds(Experiment.open(cfg, honest_wd, dataset=ds), progress=False, echo=lambda *_: None)
    leaky = run_pseudo_rounds(Experiment.open(cfg, leaky_wd, dataset=ds), per_fold=False, progress=False,
                              echo=lambda *_: None)
    assert honest[0].cv_score < 0.5 and leaky[0].cv_score < 0.5  # round 0: random labels, nothing learnt
    assert honest[1].cv_score < 0.5, "pseudo-labels leaked validation labels into training"
    assert leaky[1].cv_score > 0.9  # the planted leak is real: mixing folds' models inflates CV
    with np.load(honest_wd / "pseudo" / "round1.npz") as f:
        for k in range(5):
            valid_names = set(ds.names[ds.labelled_rows][np.isin(ds.labelled_rows, _fold_rows(honest_wd, ds, k))])
            copies = {"p" + n[1:] for n in valid_names}
            assert not copies & set(ds.names[f[f"rows_{k}"]]), "a copy of a validation row got its fold's label"


def _fold_rows(wd: Path, ds, k: int) -> np.ndarray:
    folds = pd.read_csv(wd / "folds.csv")
    names = set(folds.loc[folds["fold"] == k, "name"])
    return np.flatnonzero(np.isin(ds.names, list(names)))


def test_rounds_store_tagged_runs_history_and_plot(tmp_path: Path):
    root = write_generic(tmp_path / "d", n_pool=60)
    truth = root / "truth.csv"
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{
        "pseudo.threshold": 0.5, "pseudo.rounds": 2, "pseudo.patience": 5, "truth.unlabeled": str(truth)}))
    ds = load_dataset(data_settings(cfg), tmp_path / "wd")
    history = run_pseudo_rounds(Experiment.open(cfg, tmp_path / "wd", dataset=ds), progress=False, echo=lambda *_: None)
    assert [h.round for h in history] == [0, 1, 2]
    from mer_ensemble.store import list_run_keys, load_run

    assert list_run_keys(tmp_path / "wd") == ["lin", "lin@r1", "lin@r2"]
    r1 = load_run(tmp_path / "wd", "lin@r1").manifest
    assert r1["round"] == 1 and r1["n_pseudo_per_fold"] > 0
    assert sum(history[1].added["emotion"].values()) > 0
    prec = history[1].precision["emotion"]["all"]
    assert prec is not None and prec > 0.5  # the generated data is learnable
    assert (tmp_path / "wd" / "pseudo" / "rounds.png").stat().st_size > 1000
    assert (tmp_path / "wd" / "pseudo" / "history.json").is_file()


def test_paired_gain_and_the_keeping_rule():
    from mer_ensemble.pseudo import _keeps, paired_gain

    gain, se = paired_gain([0.62, 0.60, 0.63, 0.61], [0.60, 0.59, 0.60, 0.60])
    assert gain == pytest.approx(0.0175) and se == pytest.approx(np.std([0.02, 0.01, 0.03, 0.01], ddof=1) / 2)
    assert _keeps(gain, se)
    # one fold better by d, four unchanged: mean d/5 equals its standard error d/5, which is not more
    gain, se = paired_gain([0.7, 0.5, 0.5, 0.5, 0.5], [0.5] * 5)
    assert gain == pytest.approx(se) and not _keeps(gain, se)
    assert not _keeps(*paired_gain([0.5] * 5, [0.5] * 5)), "no gain"
    assert not _keeps(*paired_gain([0.4, 0.6, 0.4, 0.6], [0.5] * 4)), "noise around zero"


class PseudoOracle(_InMemory):
    """A planted learner: its feature is the label itself, which it reads only when its training rows
    include pseudo-labelled ones (and, with ``helped_folds``, only in those folds); otherwise it predicts
    the majority class. So a round's CV gain is known in advance."""

    name = "pseudo_oracle"
    defaults = {"helped_folds": None}

    def _fit(self, data):
        pseudo = data.val_candidates is not None and not data.val_candidates.all()
        helped = self.params["helped_folds"]
        self.oracle_ = bool(pseudo and (helped is None or self.seed % 1000 in helped))
        self.majority_ = {t: int(np.bincount(y[y >= 0]).argmax()) for t, y in data.y.items()}

    def predict_proba(self, X):
        x = np.asarray(next(iter(X.values())))[:, 0]
        out = {}
        for t, c in self.targets.items():
            label = np.clip(np.rint(x), 0, c - 1).astype(int) if self.oracle_ else np.full(len(x), self.majority_[t])
            out[t] = np.eye(c)[label]
        return out


def _cli(*args):
    from typer.testing import CliRunner

    from mer_ensemble.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _label_feature_data(tmp_path: Path, helped_folds: list[int] | None, rounds: int) -> Path:
    """60 labelled rows (classes 0-2, mostly 0), 10 test and 30 pool rows whose one feature is the label."""
    rng = np.random.default_rng(1)
    root = tmp_path / "oracle"
    (root / "features" / "f-UTT").mkdir(parents=True)
    n = 100
    labels = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 3, n))
    split = ["train"] * 60 + ["test"] * 10 + ["unlabeled"] * 30
    names = [f"u{i:03d}" for i in range(n)]
    pd.DataFrame({"name": names, "split": split,
                  "emotion": [f"c{v}" if s == "train" else "" for v, s in zip(labels, split, strict=True)]}
                 ).to_csv(root / "labels.csv", index=False)
    pd.DataFrame({"name": names[60:70], "emotion": [f"c{v}" for v in labels[60:70]]}).to_csv(root / "truth.csv",
                                                                                             index=False)
    for name, value in zip(names, labels, strict=True):
        np.save(root / "features" / "f-UTT" / f"{name}.npy", np.array([value], dtype=np.float32))
    cfg = {"task": "generic", "data": {"layout": "generic", "root": str(root), "targets": ["emotion"],
                                       "features": {"audio": ["f-UTT"]}},
           "cv": {"folds": 5}, "models": [{"name": "pseudo_oracle", "id": "oracle",
                                            "params": {"helped_folds": helped_folds}}],
           "blend": {"methods": ["mean", "best"]},
           "pseudo": {"threshold": 0.5, "rounds": rounds, "patience": rounds}}
    path = tmp_path / "oracle.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_round_that_pays_is_kept_and_blend_uses_it(tmp_path: Path, monkeypatch):
    """Round 1 lifts every fold (kept); round 2 adds nothing over it (not kept): pseudo-label says
    blend will use round 1, and blend blends the round-1 runs."""
    monkeypatch.setitem(_registry._MODELS, "pseudo_oracle", PseudoOracle)
    config, wd = _label_feature_data(tmp_path, None, rounds=2), tmp_path / "wd"
    result = _cli("pseudo-label", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert "round 1: CV 1.0000 •" in result.output and "over round 0 (paired over folds): kept" in result.output
    assert "round 2: CV 1.0000 • +0.0000 ± 0.0000 over round 1 (paired over folds): not kept" in result.output
    assert "blend will use pseudo-label round 1 (soft-vote CV 1.0000): runs oracle@r1" in result.output
    history = json.loads((wd / "pseudo" / "history.json").read_text())
    assert [(h["round"], h["kept"], h["compared_with"]) for h in history] == [(0, True, None), (1, True, 0),
                                                                               (2, False, 1)]
    out = tmp_path / "sub.csv"
    result = _cli("blend", "-c", config, "--workdir", wd, "--out", out)
    assert result.exit_code == 0, result.output
    assert "runs: pseudo-label round 1" in result.output
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["targets"]["emotion"]["runs"] == ["oracle@r1"]


def test_a_round_within_its_noise_is_not_kept_and_blend_stays_on_round_zero(tmp_path: Path, monkeypatch):
    """Pseudo-labels help one fold of five: a mean gain equal to its standard error, so round 1 is not
    kept; the rounds stop (patience 1) and blend uses the runs without pseudo-labels."""
    monkeypatch.setitem(_registry._MODELS, "pseudo_oracle", PseudoOracle)
    config, wd = _label_feature_data(tmp_path, [0], rounds=1), tmp_path / "wd"
    result = _cli("pseudo-label", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert "over round 0 (paired over folds): not kept, the gain does not exceed its standard error" in result.output
    assert "blend will use pseudo-label round 0" in result.output and "runs oracle (" in result.output
    out = tmp_path / "sub.csv"
    result = _cli("blend", "-c", config, "--workdir", wd, "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.with_suffix(".json").read_text())["targets"]["emotion"]["runs"] == ["oracle"]
    # a choice whose runs were retrained since is not followed
    choice = json.loads((wd / "pseudo" / "choice.json").read_text())
    choice["round"], choice["runs"]["oracle"] = 1, {"key": "oracle@r1", "spec_hash": "0" * 12}
    (wd / "pseudo" / "choice.json").write_text(json.dumps(choice))
    result = _cli("blend", "-c", config, "--workdir", wd, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert "the runs of pseudo-label round 1 changed since (oracle); run pseudo-label again" in result.output


def test_round_records_keep_the_store_order(tmp_path: Path):
    """The runs of the kept round come in the store's order, so a blend after a round-0 choice is the plain
    blend (same methods' inputs, same Optuna study)."""
    from types import SimpleNamespace

    from mer_ensemble.pseudo import RoundStats, round_records, save_choice

    def record(key: str, run_id: str, round_: int) -> SimpleNamespace:
        return SimpleNamespace(key=key, manifest={"run_id": run_id, "round": round_, "spec_hash": key + "-h"})

    stored = [record("a", "a", 0), record("a@r1", "a", 1), record("b", "b", 0), record("b@r1", "b", 1),
              record("c", "c", 0)]
    assert [r.key for r in round_records(tmp_path, stored)[0]] == ["a", "b", "c"], "no choice: round 0"
    save_choice(tmp_path, RoundStats(round=1, cv_score=0.5), [stored[3], stored[1]])
    chosen, which = round_records(tmp_path, stored)
    assert [r.key for r in chosen] == ["a@r1", "b@r1", "c"] and which.startswith("pseudo-label round 1")


def test_runs_retrained_beyond_the_labelling_runs_are_scored_and_chosen_with_them(tmp_path: Path):
    """``pseudo.runs`` label the pool; ``pseudo.retrain`` may name more runs: the round's CV and the choice
    cover every run it reads or retrains."""
    root = write_generic(tmp_path / "d", n_pool=40)
    models = [{"name": "linear", "id": "lin"}, {"name": "linear", "id": "lin2", "params": {"C": 0.1}}]
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=models, **{
        "pseudo.threshold": 0.4, "pseudo.rounds": 1, "pseudo.runs": ["lin"], "pseudo.retrain": ["lin", "lin2"]}))
    history = run_pseudo_rounds(Experiment.open(cfg, tmp_path / "wd"), progress=False, echo=lambda *_: None)
    assert history[0].runs == ["lin", "lin2"] and history[1].runs == ["lin@r1", "lin2@r1"]
    choice = json.loads((tmp_path / "wd" / "pseudo" / "choice.json").read_text())
    assert set(choice["runs"]) == {"lin", "lin2"}
