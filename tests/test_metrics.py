import numpy as np
import pytest
from sklearn.metrics import accuracy_score
from sklearn.metrics import f1_score as sk_f1

from mer_ensemble.metrics import accuracy, combine_scores, f1_score, joint_score, macro_f1, micro_f1, weighted_f1


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 6, 200))
    p[:5] = 5  # a class predicted that may be rare in y
    assert weighted_f1(y, p) == pytest.approx(sk_f1(y, p, average="weighted", zero_division=0))
    assert macro_f1(y, p) == pytest.approx(sk_f1(y, p, average="macro", zero_division=0))
    assert micro_f1(y, p) == pytest.approx(sk_f1(y, p, average="micro", zero_division=0))
    assert accuracy(y, p) == pytest.approx(accuracy_score(y, p))


def test_unknown_rows_are_ignored():
    y = np.array([0, 1, -1, 2])
    p = np.array([0, 1, 2, 0])
    assert accuracy(y, p) == pytest.approx(2 / 3)
    assert weighted_f1(y, p) == pytest.approx(sk_f1([0, 1, 2], [0, 1, 0], average="weighted", zero_division=0))


def test_joint_score():
    assert joint_score(0.5, 0.5) == pytest.approx(0.5)
    assert joint_score(0.6, 0.3) == pytest.approx(2 * 0.6 * 0.3 / 0.9)
    assert joint_score(0.0, 0.0) == 0.0
    assert combine_scores({"e": 0.6, "i": 0.3}) == pytest.approx(joint_score(0.6, 0.3))
    assert combine_scores([0.6, 0.3], "mean") == pytest.approx(0.45)
    assert combine_scores([0.7]) == 0.7


def test_bad_average_and_shapes():
    with pytest.raises(ValueError, match="unknown average"):
        f1_score(np.array([0]), np.array([0]), "samples")
    with pytest.raises(ValueError, match="shape"):
        accuracy(np.array([0, 1]), np.array([0]))
