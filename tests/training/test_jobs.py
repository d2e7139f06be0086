"""One job (training/jobs.py): the model's inputs for a fold's rows, the fit on its training part
(with the round's pseudo-labelled rows), and the result file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.config import load_config
from mer_ensemble.data import RAW_TEXT, Frames
from mer_ensemble.experiment import Experiment
from mer_ensemble.io import atomic_save_npz
from mer_ensemble.training.jobs import build_inputs, job_seconds, run_job
from mer_ensemble.training.plan import JobBuilder
from tests.conftest import write_config, write_generic


@pytest.fixture
def exp(tmp_path: Path) -> Experiment:
    root = write_generic(tmp_path / "d", frame_feature=True, text=True)
    config = write_config(tmp_path / "c.yaml", root, **{"data.features": {"audio": ["fa-UTT", "fc-FRA"]}})
    return Experiment.open(load_config(config), tmp_path / "wd")


def test_inputs_are_pooled_or_framed_by_level_with_the_raw_inputs_asked_for(exp: Experiment):
    ds, rows = exp.dataset, np.array([5, 1, 7])
    utt = build_inputs(ds, ["fa-UTT", "fc-FRA"], rows, "utt", 64)
    assert utt["fa-UTT"].shape == (3, 8) and utt["fa-UTT"].dtype == np.float32
    np.testing.assert_array_equal(utt["fc-FRA"], ds.features["fc-FRA"].pooled()[rows])
    assert set(utt) == {"fa-UTT", "fc-FRA"}, "no raw input unless asked for"
    frame = build_inputs(ds, ["fa-UTT", "fc-FRA"], rows, "frame", 2, raw=("text",))
    assert isinstance(frame["fc-FRA"], Frames) and frame["fc-FRA"].x.shape[1] == 2, "max_frames subsamples"
    assert isinstance(frame["fa-UTT"], np.ndarray), "utterance features stay arrays for frame-level models"
    assert frame[RAW_TEXT].tolist() == [ds.raw["text"][r] for r in rows] and frame[RAW_TEXT].dtype == object


def test_a_job_fits_its_fold_and_writes_every_prediction(exp: Experiment):
    plan = JobBuilder(exp).plan(exp.config.models[0])
    job = plan.jobs[1]
    assert run_job(job) == job.out
    train, valid = exp.folds.split(1)
    with np.load(job.out) as res:
        assert np.array_equal(res["valid_rows"], valid) and int(res["n_train"]) == len(train)
        assert res["valid/emotion"].shape == (len(valid), 3) and res["test/sentiment"].shape == (20, 2)
        assert res["pool/emotion"].shape == (30, 3) and res["valid/emotion"].dtype == np.float32
        task = exp.dataset.task
        expected = task.target("emotion").score(exp.dataset.labels["emotion"][valid], res["valid/emotion"].argmax(1))
        assert res["scores"][0] == pytest.approx(expected)
        assert '"C"' in str(res["selected"]) and int(res["threads"]) == 1
    assert 0 < job_seconds(job) < 600
    stamp = Path(job.out).stat().st_mtime_ns
    run_job(job)
    assert Path(job.out).stat().st_mtime_ns == stamp, "a finished job is not run again"


def test_pseudo_labelled_rows_join_the_training_part_never_the_validation_part(exp: Experiment, tmp_path: Path):
    plan = JobBuilder(exp).plan(exp.config.models[0])
    train, valid = exp.folds.split(0)
    pool = exp.dataset.pool_rows[:6]
    labels = {"rows_0": pool, "label_0/emotion": np.zeros(6, np.int64), "label_0/sentiment": np.ones(6, np.int64)}
    atomic_save_npz(tmp_path / "pseudo.npz", **labels)
    job = replace(plan.jobs[0], pseudo_file=str(tmp_path / "pseudo.npz"), out=str(tmp_path / "p.npz"))
    run_job(job)
    with np.load(job.out) as res:
        assert int(res["n_train"]) == len(train) + 6
    atomic_save_npz(tmp_path / "leak.npz", **{**labels, "rows_0": valid[:6]})
    leak = replace(job, pseudo_file=str(tmp_path / "leak.npz"), out=str(tmp_path / "leak-out.npz"))
    with pytest.raises(RuntimeError, match="pseudo-labelled rows overlap the fold's validation rows"):
        run_job(leak)
    assert not Path(leak.out).exists()


def test_pseudo_labelled_rows_bring_their_raw_inputs(exp: Experiment, tmp_path: Path, monkeypatch):
    """A family on raw text trains on the pseudo-labelled pool rows' text too (fine-tuning learns from them)."""
    from mer_ensemble.config import ModelSpec
    from mer_ensemble.models import _registry
    from tests.models.test_family_base import _Echo

    monkeypatch.setitem(_registry._MODELS, "echo_text", _Echo)
    spec = ModelSpec(name="echo_text", id="txt", features=["raw:text"])
    plan = JobBuilder(exp).plan(spec)
    train, _ = exp.folds.split(0)
    pool = exp.dataset.pool_rows[:4]
    atomic_save_npz(tmp_path / "pseudo.npz", rows_0=pool, **{"label_0/emotion": np.zeros(4, np.int64),
                                                             "label_0/sentiment": np.ones(4, np.int64)})
    job = replace(plan.jobs[0], pseudo_file=str(tmp_path / "pseudo.npz"), out=str(tmp_path / "t.npz"))
    run_job(job)
    with np.load(job.out) as res:
        texts = json.loads(str(res["selected"]))["texts"]
    expected = [exp.dataset.raw["text"][r] for r in (*train, *pool)]
    assert texts == expected and texts[-4:] == [exp.dataset.raw["text"][r] for r in pool]


def test_a_family_that_keeps_its_model_saves_it_beside_the_result(exp: Experiment, monkeypatch):
    from mer_ensemble.models import get_model_class
    from mer_ensemble.training.jobs import model_path

    plan = JobBuilder(exp).plan(exp.config.models[0])
    monkeypatch.setattr(get_model_class("linear"), "keeps_model", True)
    job = plan.jobs[0]
    run_job(job)
    assert model_path(job) == Path(job.out).with_suffix(".model") and model_path(job).is_file()
    model = get_model_class("linear").load(str(model_path(job)))
    proba = model.predict_proba(build_inputs(exp.dataset, list(job.features), exp.dataset.test_rows, "utt", 64))
    with np.load(job.out) as res:
        np.testing.assert_allclose(proba["emotion"], res["test/emotion"], atol=1e-6)
