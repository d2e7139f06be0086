"""Optuna-tuned weights and their studies (ensemble/_optuna.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    MeanBlender,
    OptunaWeightsBlender,
)
from mer_ensemble.errors import BlendError
from mer_ensemble.metrics import weighted_f1
from tests.ensemble.cases import N_CLASSES, noise_runs


def test_optuna_weights_favour_thegood_run(one_good_among_noise) -> None:
    probas, y, _, good = one_good_among_noise
    blender = OptunaWeightsBlender(n_trials=60, seed=0).fit(probas, y)
    assert int(np.argmax(blender.weights_)) == good
    assert blender.weights_.sum() == pytest.approx(1.0)
    # the first trial is the equal-weight mean, so the tuned blend is never worse in-sample
    assert blender.best_score_ >= weighted_f1(y, MeanBlender().fit(probas, y).predict(probas)) - 1e-12
    again = OptunaWeightsBlender(n_trials=60, seed=0).fit(probas, y)
    np.testing.assert_array_equal(again.weights_, blender.weights_)  # seeded


def test_optuna_sqlite_storage_resumes_the_study(tmp_path, one_good_among_noise) -> None:
    import optuna

    probas, y, _, _ = one_good_among_noise
    storage = f"sqlite:///{tmp_path / 'blend.db'}"
    first = OptunaWeightsBlender(n_trials=4, storage=storage, study_name="emotion").fit(probas, y)
    assert first.n_trials_ == 4
    second = OptunaWeightsBlender(n_trials=3, storage=storage, study_name="emotion").fit(probas, y)
    assert second.n_trials_ == 7
    assert len(optuna.load_study(study_name="emotion", storage=storage).trials) == 7
    assert second.best_score_ >= first.best_score_
    with pytest.raises(BlendError, match="study 'emotion' .* was run on other data"):
        OptunaWeightsBlender(n_trials=1, storage=storage, study_name="emotion").fit(probas[:4], y)


def test_optuna_repeatable_context_tops_the_study_up_and_refits_identically(tmp_path, one_good_among_noise) -> None:
    import optuna

    from mer_ensemble.ensemble import FitContext

    probas, y, _, _ = one_good_among_noise
    storage = f"sqlite:///{tmp_path / 'blend.db'}"
    context = FitContext(storage=storage, study_name="emotion", repeatable=True)
    first = OptunaWeightsBlender(n_trials=4).fit(probas, y, context=context)
    again = OptunaWeightsBlender(n_trials=4).fit(probas, y, context=context)
    np.testing.assert_array_equal(again.weights_, first.weights_)
    assert again.n_trials_ == 4 and len(optuna.load_study(study_name="emotion", storage=storage).trials) == 4
    more = OptunaWeightsBlender(n_trials=6).fit(probas, y, context=context)  # topped up, not grown by 6
    assert more.n_trials_ == 6 and len(optuna.load_study(study_name="emotion", storage=storage).trials) == 6
    assert more.best_score_ >= first.best_score_


def test_optuna_journal_file_storage_and_random_resume(tmp_path, one_good_among_noise) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    probas, y, _, _ = one_good_among_noise
    path = tmp_path / "studies" / "blend.log"
    first = OptunaWeightsBlender(n_trials=5, storage=str(path), sampler="random").fit(probas, y)  # a path: journal
    second = OptunaWeightsBlender(n_trials=5, storage=path, sampler="random").fit(probas, y)
    assert (first.n_trials_, second.n_trials_) == (5, 10)
    storage = JournalStorage(JournalFileBackend(str(path)))
    trials = storage.get_all_trials(storage.get_study_id_from_name(second.study_name_))
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 10  # the resumed random search does not repeat its first samples


def test_optuna_unknown_sampler() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(BlendError, match="unknown sampler 'grid'; expected one of tpe, random, cmaes"):
        OptunaWeightsBlender(sampler="grid").fit(noise_runs(rng, 2, 20), rng.integers(0, N_CLASSES, 20))
