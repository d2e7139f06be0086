"""Honest evaluation of blend-choice rules with one more level of nesting.

For a portfolio (P (R, n, C) OOF probabilities, y, folds with K folds):
  for each outer fold k:
    A = rows of the other K-1 folds. For every method m: an inner nested CV over A's folds
    (fit on K-2 folds, predict the left-out one) gives m's inner OOF predictions on A, its pooled
    nested score and its K-1 per-fold scores; m is also fitted on all of A and predicts fold k.
    Each rule picks one method (or a set, averaged) from the inner results only; its prediction
    for fold k is the chosen fit(s) on A applied to fold k.
  Pooled over the K outer folds: the outer score of every rule and of every fixed method.
"""

from __future__ import annotations

import time

import blend as B
import numpy as np
from common import wf1

METHODS = ["mean", "topk", "topk_half", "bagged", "vote", "best", "greedy", "optuna", "stack_cv", "stack_C1"]
PROJECT_METHODS = ["best", "mean", "vote", "greedy", "optuna", "stack_C1"]
EXTRA_FIXED = ["mean_logp", "topk_logp", "bagged_logp"]  # only evaluated as fixed methods


def _fold_scores(y, pred, folds):
    C = pred.shape[1]
    return np.array([wf1(y[folds == j], pred[folds == j], C) for j in np.unique(folds)])


def evaluate_rules(P, y, folds, methods=METHODS, optuna_trials=150, seed=0, extra_fixed=EXTRA_FIXED):
    R, n, C = P.shape
    K = np.unique(folds)
    outer = {}  # name -> (n, C) pooled predictions
    chosen = {}
    times = {m: 0.0 for m in list(methods) + list(extra_fixed)}

    def put(name, idx, pred):
        outer.setdefault(name, np.zeros((n, C)))[idx] = pred

    for k in K:
        A = np.flatnonzero(folds != k)
        T = np.flatnonzero(folds == k)
        fA = folds[A]
        nested, fscores, insample, test_pred = {}, {}, {}, {}
        for m in methods:
            t0 = time.process_time()
            inner = np.zeros((len(A), C))
            for j in np.unique(fA):
                tr, va = fA != j, fA == j
                pr = B.fit_method(m, P[:, A[tr]], y[A[tr]], fA[tr], seed=seed, optuna_trials=optuna_trials)
                inner[va] = pr(P[:, A[va]])
            pr = B.fit_method(m, P[:, A], y[A], fA, seed=seed, optuna_trials=optuna_trials)
            test_pred[m] = pr(P[:, T])
            insample[m] = wf1(y[A], pr(P[:, A]), C)
            times[m] += time.process_time() - t0
            nested[m] = wf1(y[A], inner, C)
            fscores[m] = _fold_scores(y[A], inner, fA)
            put("fixed:" + m, T, test_pred[m])
        for m in extra_fixed:
            t0 = time.process_time()
            pr = B.fit_method(m, P[:, A], y[A], fA, seed=seed)
            put("fixed:" + m, T, pr(P[:, T]))
            times[m] += time.process_time() - t0
        proj = {m: nested[m] for m in PROJECT_METHODS if m in nested}
        rules = {
            "a_highest_project": B.rule_highest(proj),
            "a_highest_all": B.rule_highest(nested),
            "b_simplest_1se": B.rule_simplest_within(nested, fscores, 1.0),
            "b_simplest_2se": B.rule_simplest_within(nested, fscores, 2.0),
            "c_blend_ties_1se": B.rule_blend_of_ties(nested, fscores, 1.0),
            "c_blend_ties_2se": B.rule_blend_of_ties(nested, fscores, 2.0),
            "e_insample_all": B.rule_highest(insample),
        }
        for r, ms in rules.items():
            put(r, T, B.combine([test_pred[m] for m in ms]))
            chosen.setdefault(r, []).append(ms)
        chosen.setdefault("_nested", []).append({m: round(nested[m], 4) for m in nested})
    scores = {name: wf1(y, pred, C) for name, pred in outer.items()}
    fold_sc = {name: _fold_scores(y, pred, folds).tolist() for name, pred in outer.items()}
    return scores, fold_sc, chosen, times, outer
