"""The job builder (training/plan.py): a models: entry checked into a run plan of fold × seed jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_ensemble import __version__
from mer_ensemble.config import ModelSpec, load_config
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.training.plan import (
    JobBuilder,
    models_summary,
    named_raw_inputs,
    resolve_features,
    resolve_targets,
    select_specs,
    spec_hash,
)
from tests.conftest import write_config, write_generic


def test_features_name_modalities_features_group_blocks_and_raw_inputs(generic_config: Path):
    cfg = load_config(generic_config)
    spec = lambda *items: ModelSpec(name="linear", id="r", features=list(items))  # noqa: E731
    assert resolve_features(ModelSpec(name="linear"), cfg) == ["fa-UTT", "fb-UTT"], "default: every feature"
    assert resolve_features(spec("text", "fa-UTT", "text"), cfg) == ["fb-UTT", "fa-UTT"]
    assert resolve_features(spec("audio@group", "fb-UTT@group"), cfg) == ["fa-UTT@group", "fb-UTT@group"]
    assert resolve_features(spec("raw:text", "audio"), cfg) == ["fa-UTT"], "a raw input is not a feature block"
    assert resolve_features(spec("raw:text"), cfg) == []
    assert named_raw_inputs(spec("raw:text", "audio", "raw:audio")) == ["text", "audio"]
    with pytest.raises(ConfigError, match=r"models\[r\].features: 'speech' is neither a modality .* nor a raw input "
                                          r"\(raw:text, raw:audio\)"):
        resolve_features(spec("speech"), cfg)
    with pytest.raises(ConfigError, match=r"unknown raw input\(s\) \['raw:video'\]"):
        named_raw_inputs(spec("raw:video"))


def test_targets_and_run_ids_are_checked(generic_config: Path):
    cfg = load_config(generic_config)
    assert resolve_targets(ModelSpec(name="linear", targets=["sentiment"]), ["emotion", "sentiment"]) == ["sentiment"]
    with pytest.raises(ConfigError, match=r"models\[linear\].targets: unknown target\(s\) \['intent'\]"):
        resolve_targets(ModelSpec(name="linear", targets=["intent"]), ["emotion"])
    assert [s.run_id for s in select_specs(cfg, None)] == ["lin"]
    with pytest.raises(ConfigError, match=r"--models: unknown run id\(s\) \['nope'\]; the config has lin"):
        select_specs(cfg, ["nope"])
    with pytest.raises(ConfigError, match="the config lists no model to train"):
        select_specs(load_config(generic_config, ["models=[]"]), None)


def test_a_plan_has_every_fold_and_seed_and_keeps_the_job_folder_of_a_feature_run(generic_config: Path,
                                                                                 tmp_path: Path):
    exp = Experiment.open(load_config(generic_config, ["cv.seeds=[0, 3]"]), tmp_path / "wd")
    plan = JobBuilder(exp).plan(exp.config.models[0])
    assert [(j.fold, j.seed) for j in plan.jobs] == [(k, s) for s in (0, 3) for k in range(3)]
    assert plan.raw == () and {j.raw for j in plan.jobs} == {()}
    assert {j.model_ref for j in plan.jobs} == {"mer_ensemble.models.linear:LinearModel"}
    assert plan.jobs[4].out == str(tmp_path / "wd" / "jobs" / "lin" / plan.hash / "fold1-seed3.npz")
    # the key of a run that reads no raw input is what it was before raw inputs existed
    expected = spec_hash("linear", {}, ["fa-UTT", "fb-UTT"], ["emotion", "sentiment"], exp.folds.hash,
                         exp.dataset.fingerprint, None, 64, {"threads": 1}, __version__)
    assert plan.hash == expected


def test_the_summary_lists_what_each_run_reads(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    models = [{"name": "linear", "id": "lin", "features": ["audio"]},
              {"name": "mlp", "id": "m", "targets": ["emotion"]}]
    exp = Experiment.open(load_config(write_config(tmp_path / "c.yaml", root, models=models)), tmp_path / "wd")
    lines = models_summary(exp).splitlines()
    assert lines[0] == "models: 2 run(s)"
    assert lines[1].split() == ["lin", "linear", "fa-UTT", "targets", "emotion,sentiment", "seeds", "1"]
    assert lines[2].split() == ["m", "mlp", "fa-UTT+fb-UTT", "targets", "emotion", "seeds", "1"]


def test_bad_parameter_values_name_the_run(generic_config: Path, tmp_path: Path):
    exp = Experiment.open(load_config(generic_config, ["models.0.params={C: -1}"]), tmp_path / "wd")
    with pytest.raises(ConfigError, match=r"models\[lin\]: model 'linear': C=-1 must be a number > 0"):
        JobBuilder(exp).check_spec(exp.config.models[0])


def test_thread_count_is_part_of_the_job_key(generic_config: Path, tmp_path: Path):
    exp = Experiment.open(load_config(generic_config), tmp_path / "wd")
    spec = exp.config.models[0]
    auto = JobBuilder(exp).plan(spec)
    assert {j.threads for j in auto.jobs} == {1}
    two = JobBuilder(Experiment.open(load_config(generic_config, ["train.threads=2"]), tmp_path / "wd")).plan(spec)
    assert {j.threads for j in two.jobs} == {2}
    assert two.hash != auto.hash, "a resume with another thread count must not reuse the job files"
    # the number of parallel jobs is not an input of the plan at all
    again = JobBuilder(Experiment.open(load_config(generic_config, ["train.jobs=4"]), tmp_path / "wd")).plan(spec)
    assert again.hash == auto.hash


def test_a_family_run_identity_is_part_of_the_job_key(generic_config: Path, tmp_path: Path, monkeypatch) -> None:
    """A family's ``run_identity(params)`` (a fine-tuned checkpoint's config hash and weight sizes)
    enters the run key: a replaced checkpoint trains again; families without one keep their key."""
    from mer_ensemble.models import get_model_class

    exp = Experiment.open(load_config(generic_config), tmp_path / "wd")
    spec = exp.config.models[0]
    plain = JobBuilder(exp).plan(spec).hash
    cls = get_model_class(spec.name)
    monkeypatch.setattr(cls, "run_identity", classmethod(lambda c, params: {"weights": 1}), raising=False)
    first = JobBuilder(exp).plan(spec).hash
    monkeypatch.setattr(cls, "run_identity", classmethod(lambda c, params: {"weights": 2}), raising=False)
    assert len({plain, first, JobBuilder(exp).plan(spec).hash}) == 3
    monkeypatch.delattr(cls, "run_identity")
    assert JobBuilder(exp).plan(spec).hash == plain
