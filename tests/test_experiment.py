"""The Experiment: data and folds built once and handed to every step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mer_ensemble.config import load_config
from mer_ensemble.experiment import Experiment
from mer_ensemble.training.plan import JobBuilder


def test_open_builds_dataset_and_folds_once_and_reuses_the_stored_folds(generic_config: Path, tmp_path: Path):
    cfg = load_config(generic_config)
    exp = Experiment.open(cfg, tmp_path / "wd")
    assert exp.folds.path == str(tmp_path / "wd" / "folds.csv") and Path(exp.folds.path).is_file()
    assert sorted(exp.folds.rows) == sorted(exp.dataset.labelled_rows)
    again = Experiment.open(cfg, tmp_path / "wd", dataset=exp.dataset)
    assert again.dataset is exp.dataset and again.folds.hash == exp.folds.hash
    assert np.array_equal(again.folds.fold, exp.folds.fold)
    assert exp.task.target_names == ["emotion", "sentiment"] and exp.stem == "exp"


def test_every_job_carries_the_folds_path_and_hash(generic_config: Path, tmp_path: Path):
    exp = Experiment.open(load_config(generic_config), tmp_path / "wd")
    plan = JobBuilder(exp).plan(exp.config.models[0])
    assert len(plan.jobs) == exp.folds.n_folds * len(exp.config.cv.seeds)
    assert {(j.folds_path, j.folds_hash) for j in plan.jobs} == {(exp.folds.path, exp.folds.hash)}
    assert all(Path(j.out).parent == tmp_path / "wd" / "jobs" / "lin" / plan.hash for j in plan.jobs)


def test_data_settings_carry_the_config_as_plain_values_with_resolved_paths(tmp_path: Path):
    from mer_ensemble.experiment import data_settings

    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "c.yaml"
    config.write_text(
        "task: generic\n"
        "data:\n  layout: generic\n  root: ../data\n  targets: [emotion]\n  group_by: speaker\n"
        "  feature_root: [feats/a, /abs/feats]\n  features: {audio: [fa-UTT], text: [fb-UTT]}\n"
        "  text_file: transcript.csv\n  text_column: english\n  audio_dir: wav\n  train_splits: [train]\n"
        "scoring: {metric: macro_f1}\n"
        "models: [{name: linear, id: lin, features: [fa-UTT@group, raw:text]}, {name: mlp, features: [text@group]}]\n"
    )
    settings = data_settings(load_config(config))
    assert settings.root == tmp_path / "data" and settings.layout == "generic" and settings.task == "generic"
    # relative feature roots resolve from data.root, as MEIJU's Annotation/features does
    assert settings.feature_roots == (tmp_path / "data" / "feats" / "a", Path("/abs/feats"))
    assert settings.text_file == ("transcript.csv",) and settings.text_column == "english"
    assert settings.audio_dir == "wav" and settings.train_splits == ("train",) and settings.metric == "macro_f1"
    assert settings.group_features == ("fa-UTT@group", "fb-UTT@group"), "the @group blocks the runs read"
    assert settings.search_roots() == list(settings.feature_roots)
