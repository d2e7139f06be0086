"""The blend layer: per-method settings from the config, its own output, what the report reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.blend import blend_runs, check_blend_config, load_latest_blend, save_blend
from mer_ensemble.config import load_config
from mer_ensemble.errors import ConfigError, StoreError
from mer_ensemble.experiment import Experiment
from mer_ensemble.report.html import build_report
from mer_ensemble.training.runner import train_all
from tests.conftest import write_config, write_generic

MODELS = [{"name": "linear", "id": "lin_a", "features": ["audio"]}, {"name": "linear", "id": "lin_b"}]


@pytest.fixture
def trained(tmp_path: Path) -> Experiment:
    root = write_generic(tmp_path / "d")
    blend = {"methods": ["best", "greedy", "optuna"], "params": {"greedy": {"steps": 3}, "optuna": {"n_trials": 4}}}
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=MODELS, blend=blend))
    exp = Experiment.open(cfg, tmp_path / "wd")
    train_all(exp, progress=False)
    return exp


def test_settings_pass_to_the_blender_and_the_saved_blend_feeds_the_report(trained: Experiment, tmp_path: Path):
    result = blend_runs(trained)
    for target in ("emotion", "sentiment"):
        by_method = {m.method: m for m in result.targets[target].methods}
        assert by_method["greedy"].description["params"] == {"steps": 3}
        assert by_method["optuna"].description["params"]["n_trials"] == 4
    assert not (trained.workdir / "blend").exists()  # computing a blend writes nothing
    path = save_blend(trained, result, tmp_path / "sub" / "s.csv")
    assert path.is_file() and path.with_suffix(".json").is_file()
    latest = load_latest_blend(trained.workdir)
    assert latest is not None and latest.summary["submission"] == str(path)
    for target, tb in result.targets.items():
        np.testing.assert_allclose(latest.nested[target], tb.oof_nested_proba)
        assert latest.test[target].shape == tb.test_proba.shape
    html = build_report(trained.workdir)
    assert "No blend yet" not in html and "chosen <code>" in html


def test_unknown_methods_and_settings_are_refused_by_name(trained: Experiment):
    bad = trained.config.blend.model_copy(update={"params": {"greedy": {"step": 3}}})
    expected = r"blend.params.greedy: unknown setting\(s\) \['step'\]; allowed: \['steps'\]"
    with pytest.raises(ConfigError, match=expected):
        check_blend_config(bad)
    with pytest.raises(ConfigError, match=r"blend.methods: unknown blender\(s\) \['avg'\]"):
        check_blend_config(bad.model_copy(update={"methods": ["avg"], "params": {}}))
    with pytest.raises(ConfigError, match="blend.choose: .stacking. is neither a rule.*nor among"):
        blend_runs(trained, choose="stacking")


def test_blend_without_runs_names_the_store(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    exp = Experiment.open(load_config(write_config(tmp_path / "c.yaml", root)), tmp_path / "wd")
    with pytest.raises(StoreError, match="no stored runs"):
        blend_runs(exp)


def test_methods_within_noise_are_averaged_and_the_rule_is_recorded(trained: Experiment, tmp_path: Path):
    """With a wide noise band every method ties: the chosen blend is their average, in test
    probabilities and nested probabilities alike, and the sidecar records the rule and evidence."""
    settings = trained.config.blend.model_copy(update={"tie_se": 100.0})
    wide = trained.__class__(trained.config.model_copy(update={"blend": settings}), trained.workdir,
                             trained.dataset, trained.folds)
    result = blend_runs(wide)
    for tb in result.targets.values():
        assert tb.chosen == "ties" and tb.choice.members == sorted(tb.choice.members, key=tb.choice.members.index)
        assert set(tb.choice.members) == {"best", "greedy", "optuna"}
        members = tb.choice.members
        np.testing.assert_allclose(tb.test_proba, np.mean([tb.test_by_method[m] for m in members], axis=0))
    path = save_blend(wide, result, tmp_path / "s.csv")
    import json

    side = json.loads(path.with_suffix(".json").read_text())
    target = next(iter(side["targets"].values()))
    assert target["method"] == "ties" and "within 100 SE" in target["rule"]
    assert set(target["paired_differences"]) == {"best", "greedy", "optuna"}
    narrow = blend_runs(trained, choose="highest")
    assert all(tb.chosen in {"best", "greedy", "optuna"} for tb in narrow.targets.values())


def test_a_method_that_cannot_run_with_two_folds_is_skipped_with_its_reason(tmp_path: Path):
    from mer_ensemble.errors import BlendError

    root = write_generic(tmp_path / "d")
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=MODELS, **{"cv.folds": 2},
                                   blend={"methods": ["mean", "stacking"]}))
    exp = Experiment.open(cfg, tmp_path / "wd")
    train_all(exp, progress=False)
    result = blend_runs(exp)
    for tb in result.targets.values():
        assert [m.method for m in tb.methods] == ["mean"] and tb.chosen == "mean"
        assert "folds hold 1 distinct fold id(s)" in tb.skipped["stacking"]
    with pytest.raises(BlendError, match=r"no method could run .*stacking: folds hold 1 distinct"):
        blend_runs(exp, methods=["stacking"])
    with pytest.raises(BlendError, match=r"blend.choose: stacking cannot run"):
        blend_runs(exp, choose="stacking")
