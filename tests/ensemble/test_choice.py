"""The blend choice rule: paired per-fold differences, their noise, the blend of ties."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.ensemble.choice import choose_blend, paired_difference


def test_paired_difference_is_mean_and_standard_error() -> None:
    diff, se = paired_difference([0.8, 0.7, 0.9], [0.7, 0.7, 0.7])
    assert diff == pytest.approx(0.1)
    assert se == pytest.approx(np.std([0.1, 0.0, 0.2], ddof=1) / np.sqrt(3))


def test_near_ties_are_averaged_not_followed() -> None:
    """Three methods whose per-fold scores differ by less than their fold-to-fold noise."""
    base = np.array([0.62, 0.85, 0.71, 0.78, 0.66])
    folds = {"greedy": base, "optuna": base + np.array([0.03, -0.02, 0.02, -0.03, -0.01]),
             "stacking": base + np.array([-0.02, 0.03, -0.01, 0.01, -0.02])}
    nested = {m: float(np.mean(v)) for m, v in folds.items()}
    choice = choose_blend(nested, folds)
    assert choice.rule == "ties" and sorted(choice.members) == ["greedy", "optuna", "stacking"]
    assert choice.averaged and choice.best == max(nested, key=nested.get)
    assert "paired differences" in choice.text() and "SE" in choice.text()
    # the one-SE rule takes the simplest of the tied methods, the old rule the highest
    assert choose_blend(nested, folds, rule="simplest").members == ["greedy"]
    assert choose_blend(nested, folds, rule="highest").members == [choice.best]


def test_a_clear_winner_is_chosen_alone() -> None:
    """A method better on every fold by far more than the noise wins outright."""
    base = np.array([0.60, 0.70, 0.65, 0.75, 0.68])
    folds = {"mean": base, "greedy": base + 0.10 + np.array([0.0, 0.01, -0.01, 0.005, 0.0]), "vote": base - 0.02}
    nested = {m: float(np.mean(v)) for m, v in folds.items()}
    choice = choose_blend(nested, folds)
    assert choice.members == ["greedy"] and not choice.averaged
    out = {e.method: e for e in choice.evidence}
    assert not out["mean"].tied and out["mean"].diff < -5 * out["mean"].se
    assert "(out)" in choice.text()


def test_wider_noise_band_admits_more_methods() -> None:
    folds = {"greedy": np.array([0.80, 0.82, 0.78, 0.81, 0.79]), "mean": np.array([0.78, 0.82, 0.77, 0.79, 0.79])}
    nested = {m: float(np.mean(v)) for m, v in folds.items()}
    assert choose_blend(nested, folds, n_se=0.0).members == ["greedy"]
    assert sorted(choose_blend(nested, folds, n_se=3.0).members) == ["greedy", "mean"]
    assert choose_blend(nested, folds, rule="stacking").members == ["stacking"]
