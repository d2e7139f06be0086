"""Blenders on constructed inputs where the right answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    BLENDERS,
    BestSingle,
    ClassBias,
    GreedyBlender,
    HardVoteBlender,
    MeanBlender,
    OptunaWeightsBlender,
    StackingBlender,
    apply_class_bias,
    batch_scorer,
    in_sample_score,
    list_blenders,
    make_blender,
    nested_oof_proba,
    nested_score,
    tune_class_bias,
)
from mer_ensemble.errors import BlendError
from mer_ensemble.metrics import accuracy, macro_f1, micro_f1, weighted_f1

N_CLASSES = 4


def _noise_runs(rng: np.random.Generator, n_runs: int, n_rows: int, n_classes: int = N_CLASSES) -> np.ndarray:
    """``(n_runs, n_rows, n_classes)`` random probabilities that carry no information."""
    return rng.dirichlet(np.ones(n_classes), size=(n_runs, n_rows))


def _good_run(rng: np.random.Generator, y: np.ndarray, n_classes: int = N_CLASSES, signal: float = 0.35) -> np.ndarray:
    """``(n_rows, n_classes)`` probabilities leaning towards the true class (right most of the time)."""
    noise = rng.dirichlet(np.ones(n_classes), size=len(y))
    return (1 - signal) * noise + signal * np.eye(n_classes)[y]


@pytest.fixture
def one_good_among_noise() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """8 runs, run 5 informative, the rest noise; 600 rows in 5 folds."""
    rng = np.random.default_rng(0)
    n_rows, good = 600, 5
    y = rng.integers(0, N_CLASSES, n_rows)
    probas = _noise_runs(rng, 8, n_rows)
    probas[good] = _good_run(rng, y)
    folds = np.arange(n_rows) % 5
    return probas, y, folds, good


# --- contract, over the whole registry -------------------------------------------------------


@pytest.mark.parametrize("name", list_blenders())
def test_registry_contract(name: str, one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    params = {"n_trials": 20} if name == "optuna" else {}
    blender = make_blender(name, **params)
    with pytest.raises(BlendError, match="not fitted"):
        blender.predict_proba(probas[:, :10])
    assert blender.fit(probas, y, folds=folds, score_fn=weighted_f1) is blender
    proba = blender.predict_proba(probas[:, :50])
    assert proba.shape == (50, N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert blender.predict(probas[:, :50]).shape == (50,)
    if hasattr(blender, "weights_"):
        assert blender.weights_.shape == (8,)
        assert blender.weights_.sum() == pytest.approx(1.0)
        assert (blender.weights_ >= 0).all()
    json.dumps(blender.describe())
    with pytest.raises(BlendError, match="predict got 7 runs but the blender was fitted on 8"):
        blender.predict_proba(probas[:7])
    # the base class checks every blender's inputs before its own _fit runs
    broken = probas.copy()
    broken[2, 5, 0] = np.nan
    with pytest.raises(BlendError, match="run 2 holds NaN"):
        make_blender(name, **params).fit(broken, y, folds=folds)
    with pytest.raises(BlendError, match="y holds class index"):
        make_blender(name, **params).fit(probas, np.full_like(y, N_CLASSES), folds=folds)
    assert make_blender(name).label, "every registered blender has a label for tables and reports"


def test_make_blender_errors_name_the_valid_choices() -> None:
    with pytest.raises(BlendError, match=r"unknown blender 'averaging'; expected one of best, greedy, mean"):
        make_blender("averaging")
    with pytest.raises(BlendError, match=r"unknown parameter\(s\) \['step'\]; allowed: \['steps'\]"):
        make_blender("greedy", step=3)
    with pytest.raises(BlendError, match=r"blender 'mean': unknown parameter\(s\) \['steps'\]; allowed: \[\]"):
        make_blender("mean", steps=3)
    assert make_blender("greedy", steps=None).steps == 25  # None means the default
    wrapped = make_blender("mean", class_bias=True)
    assert isinstance(wrapped, ClassBias) and isinstance(wrapped.blender, MeanBlender)
    assert set(BLENDERS) >= {"best", "mean", "vote", "greedy", "optuna", "stacking"}


def test_mismatched_runs_name_what_differs() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 100)
    with pytest.raises(BlendError, match="run 1 has 90 rows but run 0 has 100"):
        MeanBlender().fit([_noise_runs(rng, 1, 100, 3)[0], _noise_runs(rng, 1, 90, 3)[0]], y)
    with pytest.raises(BlendError, match="run 2 has 4 classes but run 0 has 3"):
        MeanBlender().fit([_noise_runs(rng, 1, 100, 3)[0]] * 2 + [_noise_runs(rng, 1, 100, 4)[0]], y)
    with pytest.raises(BlendError, match="y has shape"):
        MeanBlender().fit(_noise_runs(rng, 2, 100, 3), y[:50])
    with pytest.raises(BlendError, match="class index 3; expected 0..2"):
        MeanBlender().fit(_noise_runs(rng, 2, 100, 3), np.full(100, 3))
    with pytest.raises(BlendError, match="run 1 holds NaN"):
        bad = _noise_runs(rng, 2, 100, 3)
        bad[1, 5, 0] = np.nan
        MeanBlender().fit(bad, y)
    blender = MeanBlender().fit(_noise_runs(rng, 2, 100, 3), y)
    with pytest.raises(BlendError, match="predict got 4 classes but the blender was fitted on 3"):
        blender.predict_proba(_noise_runs(rng, 2, 10, 4))


# --- vectorised metrics ---------------------------------------------------------------------


@pytest.mark.parametrize("metric", [weighted_f1, macro_f1, micro_f1, accuracy])
def test_batch_scorer_matches_the_metric(metric) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 400)
    y[:3] = 4
    preds = rng.integers(0, 4, (20, 400))  # class 4 never predicted
    preds[0] = y
    expected = np.array([metric(y, p) for p in preds])
    np.testing.assert_allclose(batch_scorer(metric, 6)(y, preds), expected, atol=1e-12)
    np.testing.assert_allclose(batch_scorer(metric.__name__, 6)(y, preds), expected, atol=1e-12)


def test_batch_scorer_agrees_with_sklearn_weighted_f1() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, 1000)
    preds = rng.integers(0, 7, (5, 1000))
    ours = batch_scorer(weighted_f1, 7)(y, preds)
    theirs = [f1_score(y, p, average="weighted", zero_division=0) for p in preds]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


# --- simple blenders ------------------------------------------------------------------------


def test_mean_is_the_equal_weight_average(one_good_among_noise) -> None:
    probas, y, _, _ = one_good_among_noise
    blender = MeanBlender().fit(probas, y)
    np.testing.assert_allclose(blender.predict_proba(probas), probas.mean(axis=0))


def test_hard_vote_majority_and_tie_break() -> None:
    # row 0: votes 0, 0, 1 -> 0; row 1: votes 0, 1 and a third run for class 2 -> tie 0/1,
    # broken by the summed probability, which favours 1
    probas = np.array(
        [
            [[0.6, 0.4, 0.0], [0.50, 0.45, 0.05]],
            [[0.7, 0.3, 0.0], [0.05, 0.90, 0.05]],
            [[0.4, 0.6, 0.0], [0.00, 0.40, 0.60]],
        ]
    )
    blender = HardVoteBlender().fit(probas, np.array([0, 1]))
    np.testing.assert_array_equal(blender.predict(probas), [0, 1])
    shares = blender.predict_proba(probas)
    np.testing.assert_allclose(shares, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-5)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_best_single_picks_the_good_run(one_good_among_noise) -> None:
    probas, y, _, good = one_good_among_noise
    blender = BestSingle().fit(probas, y)
    assert blender.best_run_ == good
    np.testing.assert_array_equal(blender.weights_, np.eye(8)[good])


# --- greedy ---------------------------------------------------------------------------------


def test_greedy_picks_the_good_run_among_noise(one_good_among_noise) -> None:
    probas, y, _, good = one_good_among_noise
    blender = GreedyBlender(steps=25).fit(probas, y)
    assert blender.picks_[0] == good
    assert int(np.argmax(blender.weights_)) == good
    assert blender.weights_[good] > 0.5
    assert blender.weights_.sum() == pytest.approx(1.0)
    assert len(blender.scores_) == 25
    assert blender.best_score_ == pytest.approx(blender.scores_.max())
    assert weighted_f1(y, blender.predict(probas)) == pytest.approx(blender.best_score_)


def test_greedy_mixes_two_complementary_runs() -> None:
    # run 0 knows classes 0/1, run 1 knows classes 2/3: together they beat either alone
    rng = np.random.default_rng(5)
    y = rng.integers(0, N_CLASSES, 800)
    onehot = np.eye(N_CLASSES)[y]
    base = np.full((800, N_CLASSES), 0.25)
    run0 = np.where((y < 2)[:, None], 0.5 * base + 0.5 * onehot, base + rng.normal(0, 0.01, base.shape).clip(-0.2))
    run1 = np.where((y >= 2)[:, None], 0.5 * base + 0.5 * onehot, base + rng.normal(0, 0.01, base.shape).clip(-0.2))
    probas = np.stack([run0.clip(0), run1.clip(0), _noise_runs(rng, 1, 800)[0]])
    blender = GreedyBlender(steps=10).fit(probas, y)
    assert blender.weights_[0] > 0 and blender.weights_[1] > 0
    assert blender.best_score_ > max(BestSingle().fit(probas, y).scores_)


# --- bagged greedy and top-k ----------------------------------------------------------------


def test_bagged_selection_averages_greedy_over_run_subsets(one_good_among_noise) -> None:
    from mer_ensemble.ensemble import BaggedGreedyBlender

    probas, y, _, good = one_good_among_noise
    blender = BaggedGreedyBlender(n_bags=20, fraction=0.5, seed=0).fit(probas, y)
    assert blender.bag_weights_.shape == (20, 8)
    np.testing.assert_allclose(blender.bag_weights_.sum(axis=1), 1.0)
    np.testing.assert_allclose(blender.weights_, blender.bag_weights_.mean(axis=0))
    with_good = blender.bag_weights_[:, good] > 0
    assert 0 < with_good.sum() < 20  # the good run sits in some subsets only
    assert (blender.bag_weights_[with_good, good] > 0.5).all()  # where it is, greedy leans on it
    assert int(np.argmax(blender.weights_)) == good
    # each bag uses at most half the runs
    assert ((blender.bag_weights_ > 0).sum(axis=1) <= 4).all()
    again = BaggedGreedyBlender(n_bags=20, fraction=0.5, seed=0).fit(probas, y)
    np.testing.assert_array_equal(again.weights_, blender.weights_)


def test_bagging_keeps_a_lucky_run_from_taking_over() -> None:
    """Two equally good runs and a third, slightly better on these rows by luck: greedy keeps
    mostly the lucky one, the bagged blend spreads weight over all three."""
    from mer_ensemble.ensemble import BaggedGreedyBlender

    rng = np.random.default_rng(3)
    y = rng.integers(0, N_CLASSES, 300)
    probas = np.stack([_good_run(rng, y, signal=0.3) for _ in range(3)] + list(_noise_runs(rng, 3, 300)))
    bagged = BaggedGreedyBlender(n_bags=40, fraction=0.5, seed=0).fit(probas, y)
    assert (bagged.weights_[:3] > 0.1).all() and bagged.weights_[3:].sum() < 0.3


def test_topk_picks_the_informative_runs_with_equal_weights() -> None:
    from mer_ensemble.ensemble import TopKMeanBlender

    rng = np.random.default_rng(1)
    y = rng.integers(0, N_CLASSES, 500)
    probas = np.concatenate([np.stack([_good_run(rng, y, signal=0.25) for _ in range(3)]), _noise_runs(rng, 5, 500)])
    auto = TopKMeanBlender().fit(probas, y)
    assert auto.k_ == 3 and set(auto.order_[:3]) == {0, 1, 2}
    np.testing.assert_allclose(auto.weights_[:3], 1 / 3)
    assert TopKMeanBlender(k=0.5).fit(probas, y).k_ == 4 and TopKMeanBlender(k=2).fit(probas, y).k_ == 2
    with pytest.raises(BlendError, match="topk: k=0"):
        TopKMeanBlender(k=0).fit(probas, y)


def test_stacking_chooses_its_c_on_its_own_folds(one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    stack = StackingBlender(C="auto", C_grid=(1e-3, 1.0)).fit(probas, y, folds=folds)
    assert stack.C_ in (1e-3, 1.0)
    fixed = StackingBlender(C=stack.C_).fit(probas, y, folds=folds)
    np.testing.assert_allclose(fixed.oof_proba_, stack.oof_proba_)
    other = StackingBlender(C=1e-3 if stack.C_ == 1.0 else 1.0).fit(probas, y, folds=folds)
    assert stack.oof_score_ >= other.oof_score_


# --- optuna ---------------------------------------------------------------------------------


def test_optuna_weights_favour_the_good_run(one_good_among_noise) -> None:
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
        OptunaWeightsBlender(sampler="grid").fit(_noise_runs(rng, 2, 20), rng.integers(0, N_CLASSES, 20))


# --- stacking -------------------------------------------------------------------------------


@pytest.mark.parametrize("meta", ["logreg", "xgboost"])
def test_stacking_oof_never_uses_its_own_fold(meta: str, one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    params = {"meta_params": {"n_estimators": 20}} if meta == "xgboost" else {}
    held = folds == 2
    first = StackingBlender(meta=meta, **params).fit(probas, y, folds=folds)
    relabelled = y.copy()
    relabelled[held] = (y[held] + 1) % N_CLASSES
    second = StackingBlender(meta=meta, **params).fit(probas, relabelled, folds=folds)
    np.testing.assert_allclose(second.oof_proba_[held], first.oof_proba_[held])
    # the other folds' meta-models did train on fold 2, so their predictions move
    assert not np.allclose(second.oof_proba_[~held], first.oof_proba_[~held])
    assert first.oof_proba_.shape == (len(y), N_CLASSES)
    np.testing.assert_allclose(first.oof_proba_.sum(axis=1), 1.0)


def test_stacking_learns_from_the_good_run(one_good_among_noise) -> None:
    probas, y, folds, good = one_good_among_noise
    blender = StackingBlender().fit(probas, y, folds=folds)
    assert blender.oof_score_ > weighted_f1(y, MeanBlender().fit(probas, y).predict(probas)) - 0.05
    assert blender.oof_score_ > 0.6


def test_stacking_needs_folds_and_handles_a_missing_class() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 200)  # class 2 of 3 never seen
    probas = _noise_runs(rng, 3, 200, 3)
    with pytest.raises(BlendError, match="needs the runs' fold id"):
        StackingBlender().fit(probas, y)
    with pytest.raises(BlendError, match="1 distinct fold id"):
        StackingBlender().fit(probas, y, folds=np.zeros(200, int))
    blender = StackingBlender().fit(probas, y, folds=np.arange(200) % 4)
    proba = blender.predict_proba(probas)
    assert proba.shape == (200, 3) and np.allclose(proba[:, 2], 0)


# --- nested vs in-sample --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["greedy", "stacking", "best"])
def test_nested_score_is_below_in_sample_on_noise(name: str) -> None:
    rng = np.random.default_rng(1)
    n_rows = 300
    y = rng.integers(0, N_CLASSES, n_rows)
    probas = _noise_runs(rng, 30, n_rows)
    folds = np.arange(n_rows) % 5
    pooled, per_fold = nested_score(lambda: make_blender(name), probas, y, folds, weighted_f1)
    optimistic = in_sample_score(lambda: make_blender(name), probas, y, folds, weighted_f1)
    assert len(per_fold) == 5
    assert pooled < optimistic
    assert pooled < 0.35  # noise stays near chance (0.25) once held out


def test_nested_stacking_never_sees_the_held_out_fold(one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    held = folds == 0
    first = nested_oof_proba("stacking", probas, y, folds)
    relabelled = y.copy()
    relabelled[held] = (y[held] + 1) % N_CLASSES
    second = nested_oof_proba("stacking", probas, relabelled, folds)
    np.testing.assert_allclose(second[held], first[held])


def test_nested_score_accepts_metric_names_and_a_fitted_instance(one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    pooled, per_fold = nested_score("best", probas, y, folds, "accuracy")
    assert 0.0 <= pooled <= 1.0 and len(per_fold) == 5
    assert in_sample_score(BestSingle(), probas, y, score_fn="accuracy") == pytest.approx(
        accuracy(y, probas[BestSingle().fit(probas, y, score_fn=accuracy).best_run_].argmax(axis=1))
    )


# --- class bias -----------------------------------------------------------------------------


def _skewed_case() -> tuple[np.ndarray, np.ndarray]:
    """Class 2 is under-predicted: its rows put 0.35 on class 2 but 0.40 on class 0."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, N_CLASSES, 1000)
    proba = np.eye(N_CLASSES)[y] * 0.7 + 0.1
    rows2 = y == 2
    proba[rows2] = [0.40, 0.15, 0.35, 0.10]
    proba += rng.uniform(0, 0.02, proba.shape)
    return proba / proba.sum(axis=1, keepdims=True), y


def test_tune_class_bias_improves_the_in_sample_metric() -> None:
    proba, y = _skewed_case()
    before = weighted_f1(y, proba.argmax(axis=1))
    bias = tune_class_bias(proba, y, weighted_f1)
    after = weighted_f1(y, apply_class_bias(proba, bias).argmax(axis=1))
    assert after > before + 0.1
    assert bias[2] > bias[0]
    np.testing.assert_allclose(apply_class_bias(proba, bias).sum(axis=1), 1.0)


def test_class_bias_wrapper_and_no_change_when_nothing_helps(one_good_among_noise) -> None:
    proba, y = _skewed_case()
    runs = np.stack([proba, proba])
    wrapped = ClassBias(MeanBlender()).fit(runs, y)
    assert weighted_f1(y, wrapped.predict(runs)) > weighted_f1(y, MeanBlender().fit(runs, y).predict(runs))
    description = wrapped.describe()
    assert description["blender"] == "mean" and description["weights"] == [0.5, 0.5]
    assert description["class_bias"][2] > description["class_bias"][0]
    perfect = np.eye(N_CLASSES)[y] * 0.9 + 0.025
    np.testing.assert_array_equal(tune_class_bias(perfect, y), np.zeros(N_CLASSES))
