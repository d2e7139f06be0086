"""The one row normaliser every model family and blender uses."""

import numpy as np

from mer_ensemble.probas import normalize_rows


def test_rows_sum_to_one_and_an_all_zero_row_becomes_uniform():
    proba = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 4.0]])
    out = normalize_rows(proba)
    np.testing.assert_allclose(out, [[0.25, 0.75, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.25, 0.25, 0.5]])
    assert np.isfinite(out).all() and proba[1].sum() == 0, "the input is not changed"


def test_float_dtypes_are_kept_and_integers_become_float64():
    assert normalize_rows(np.ones((2, 4), dtype=np.float32)).dtype == np.float32
    assert normalize_rows(np.array([[1, 3]])).dtype == np.float64
    np.testing.assert_allclose(normalize_rows(np.array([[1, 3]])), [[0.25, 0.75]])
