"""Blending methods and blend-choice rules as small numpy functions (prototypes for porting).

Conventions
-----------
``P``: ``(R, n, C)`` out-of-fold class probabilities of R runs; ``y``: ``(n,)`` int labels;
``folds``: ``(n,)`` fold id of each row (used by methods that need an internal CV).
A *weighted* method returns weights ``w`` ``(R,)`` on the simplex; its blend is
``np.tensordot(w, P, 1)``. ``score_batch(y, labels (G, n)) -> (G,)`` scores many label vectors
at once (default: weighted F1). All randomness comes from an explicit ``seed``.
"""

from __future__ import annotations

import numpy as np
from common import wf1_batch

_FLOOR = 1e-12


def _scorer(C):
    return lambda y, labels: wf1_batch(y, labels, C)


def blend_weights(P, w):
    """Weighted mean of the runs' probabilities: ``(n, C)``."""
    return np.tensordot(np.asarray(w, dtype=float), P, axes=1)


def blend_logprob(P, w):
    """Weighted geometric mean (softmax of the weighted mean log-probability): ``(n, C)``."""
    L = np.tensordot(np.asarray(w, dtype=float), np.log(np.clip(P, _FLOOR, None)), axes=1)
    L -= L.max(1, keepdims=True)
    E = np.exp(L)
    return E / E.sum(1, keepdims=True)


def run_scores(P, y, score_batch=None):
    """Score of each run alone ``(R,)``."""
    score_batch = score_batch or _scorer(P.shape[2])
    return score_batch(y, P.argmax(2))


# --------------------------------------------------------------------------- methods
def best_single(P, y, score_batch=None):
    """All weight on the run with the highest score (ties: lowest index)."""
    w = np.zeros(len(P))
    w[int(np.argmax(run_scores(P, y, score_batch)))] = 1.0
    return w


def mean_all(P, y=None, score_batch=None):
    """Equal weights."""
    return np.full(len(P), 1.0 / len(P))


def hard_vote(P):
    """Per-row vote shares ``(n, C)`` of the runs' argmax labels (ties broken by the mean
    probability, added with a tiny weight)."""
    R, n, C = P.shape
    votes = np.zeros((n, C))
    lab = P.argmax(2)
    for r in range(R):
        votes[np.arange(n), lab[r]] += 1
    votes = votes / R + 1e-6 * P.mean(0)
    return votes / votes.sum(1, keepdims=True)


def greedy_selection(P, y, steps=25, score_batch=None, runs=None):
    """Caruana et al. (2004) forward selection with replacement.

    Each step adds the run (from ``runs``, default all) whose addition to the running sum of
    picked probabilities gives the best score; after ``steps`` picks the best-scoring prefix is
    kept (shortest on ties). Returns weights ``(R,)`` = pick counts / number of kept picks.
    """
    R, n, C = P.shape
    score_batch = score_batch or _scorer(C)
    runs = np.arange(R) if runs is None else np.asarray(runs)
    sub = P[runs]
    running = np.zeros((n, C))
    picks, scores = [], []
    for _ in range(steps):
        cand = score_batch(y, (sub + running[None]).argmax(2))
        j = int(np.argmax(cand))
        picks.append(runs[j])
        scores.append(cand[j])
        running += sub[j]
    keep = int(np.argmax(scores)) + 1
    w = np.bincount(picks[:keep], minlength=R).astype(float)
    return w / w.sum()


def bagged_greedy(P, y, n_bags=30, frac=0.5, steps=25, seed=0, score_batch=None):
    """Bagged ensemble selection (Caruana et al. 2004, sec. 4): run ``greedy_selection`` on
    ``n_bags`` random subsets of ``max(2, round(frac * R))`` runs and average the bags' weights.
    Bagging over runs limits how far one lucky run or one lucky pick can pull the blend."""
    R = len(P)
    rng = np.random.default_rng(seed)
    m = min(R, max(2, int(round(frac * R))))
    w = np.zeros(R)
    for _ in range(n_bags):
        w += greedy_selection(P, y, steps, score_batch, runs=np.sort(rng.choice(R, m, replace=False)))
    return w / n_bags


def topk_mean(P, y, k=None, score_batch=None):
    """Equal-weight mean of the k best runs (ranked by their own score on these rows).

    ``k=None`` chooses k by the score of the top-k mean on these rows (ties → larger k);
    a float in (0, 1] means ``ceil(k * R)``; an int is used as is. Only one integer is fitted,
    so the in-sample choice of k overfits little."""
    R, n, C = P.shape
    score_batch = score_batch or _scorer(C)
    order = np.argsort(-run_scores(P, y, score_batch), kind="stable")
    if k is None:
        csum = np.cumsum(P[order], axis=0)  # (R, n, C) running sums of the top-k
        s = score_batch(y, csum.argmax(2))
        k = int(np.flatnonzero(s >= s.max() - 1e-12)[-1]) + 1
    elif isinstance(k, float):
        k = int(np.ceil(k * R))
    w = np.zeros(R)
    w[order[:k]] = 1.0 / k
    return w


def optuna_weights(P, y, n_trials=150, seed=0, score_batch=None):
    """Weights on the simplex searched by Optuna TPE (multivariate): one value in [0, 1] per run,
    normalised; the first trial is equal weights (as the project's blender does)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    R, n, C = P.shape
    score_batch = score_batch or _scorer(C)
    flat = P.reshape(R, -1)

    def objective(trial):
        w = np.array([trial.suggest_float(f"w{r}", 0.0, 1.0) for r in range(R)])
        w = w / w.sum() if w.sum() > 0 else np.full(R, 1.0 / R)
        return float(score_batch(y, (w @ flat).reshape(n, C).argmax(1)[None])[0])

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True))
    study.enqueue_trial({f"w{r}": 1.0 for r in range(R)})
    study.optimize(objective, n_trials=n_trials)
    w = np.array([study.best_params[f"w{r}"] for r in range(R)])
    return w / w.sum() if w.sum() > 0 else np.full(R, 1.0 / R)


def _meta(P):
    R, n, C = P.shape
    return np.log(np.clip(P, _FLOOR, None)).transpose(1, 0, 2).reshape(n, R * C)


class Stacker:
    """Multinomial logistic regression on the runs' log-probabilities (n, R*C), standardised.

    ``C``: a number, or ``"cv"`` to choose it from ``grid`` by weighted F1 of an internal CV over
    the given ``folds`` (the outer folds restricted to these rows; no new split is drawn)."""

    def __init__(self, C=1.0, grid=(1e-3, 1e-2, 1e-1, 1.0)):
        self.C, self.grid = C, grid

    def _fit(self, X, y, C):
        from sklearn.linear_model import LogisticRegression

        mu, sd = X.mean(0), X.std(0) + 1e-8
        m = LogisticRegression(C=C, max_iter=500).fit((X - mu) / sd, y)
        return m, mu, sd

    def _pred(self, model, X, n_classes):
        m, mu, sd = model
        out = np.zeros((len(X), n_classes))
        out[:, m.classes_] = m.predict_proba((X - mu) / sd)
        return out

    def fit(self, P, y, folds=None):
        X, nC = _meta(P), P.shape[2]
        C = self.C
        if C == "cv":
            ks = np.unique(folds)
            best = -1
            for c in self.grid:
                oof = np.zeros((len(y), nC))
                for k in ks:
                    tr = folds != k
                    oof[~tr] = self._pred(self._fit(X[tr], y[tr], c), X[~tr], nC)
                s = wf1_batch(y, oof.argmax(1)[None], nC)[0]
                if s > best + 1e-12:
                    best, C = s, c
        self.C_ = C
        self.model_ = self._fit(X, y, C)
        self.n_classes_ = nC
        return self

    def predict(self, P):
        return self._pred(self.model_, _meta(P), self.n_classes_)


# --------------------------------------------------------------------------- uniform interface
#: method name -> complexity rank used by the "simplest among the ties" rules (lower = simpler /
#: fewer fitted degrees of freedom / more robust)
SIMPLICITY = ["mean", "topk", "topk_half", "bagged", "vote", "best", "greedy", "optuna", "stack_cv", "stack_C1"]


def fit_method(name, P, y, folds=None, seed=0, optuna_trials=150):
    """Fit blending method ``name`` on ``P, y``; returns ``predict(P_new) -> (n_new, C)``."""
    if name == "vote":
        return hard_vote
    if name.startswith("stack"):
        st = Stacker(C="cv" if name == "stack_cv" else 1.0).fit(P, y, folds)
        return st.predict
    if name.endswith("_logp"):
        w = fit_weights(name[:-5], P, y, seed, optuna_trials)
        return lambda Q: blend_logprob(Q, w)
    w = fit_weights(name, P, y, seed, optuna_trials)
    return lambda Q: blend_weights(Q, w)


def fit_weights(name, P, y, seed=0, optuna_trials=150):
    if name == "best":
        return best_single(P, y)
    if name == "mean":
        return mean_all(P)
    if name == "greedy":
        return greedy_selection(P, y)
    if name == "bagged":
        return bagged_greedy(P, y, seed=seed)
    if name == "topk":
        return topk_mean(P, y)
    if name == "topk_half":
        return topk_mean(P, y, k=0.5)
    if name == "optuna":
        return optuna_weights(P, y, optuna_trials, seed)
    raise ValueError(name)


# --------------------------------------------------------------------------- choice rules
def rule_highest(nested):
    """(a) The method with the highest pooled nested score. ``nested``: {method: score}."""
    return [max(nested, key=nested.get)]


def _ties(nested, fold_scores, n_se):
    """Methods whose per-fold paired difference to the best (by pooled nested score) has mean
    >= -n_se * SE (SE = sd of the K differences / sqrt(K))."""
    best = max(nested, key=nested.get)
    fb = np.asarray(fold_scores[best])
    out = []
    for m in nested:
        d = np.asarray(fold_scores[m]) - fb
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        if d.mean() >= -n_se * se - 1e-12:
            out.append(m)
    return best, out


def rule_simplest_within(nested, fold_scores, n_se=1.0, order=SIMPLICITY):
    """(b) The simplest method (first in ``order``) that cannot be told apart from the best:
    paired per-fold difference within ``n_se`` standard errors. ``fold_scores``: {method: (K,)}."""
    best, ties = _ties(nested, fold_scores, n_se)
    ranked = [m for m in order if m in ties]
    return [ranked[0] if ranked else best]


def rule_blend_of_ties(nested, fold_scores, n_se=1.0):
    """(c) Average the predictions of every method within ``n_se`` SE of the best."""
    return _ties(nested, fold_scores, n_se)[1]


def combine(preds):
    """Mean of several methods' probability predictions (vote shares count as probabilities)."""
    return np.mean(preds, axis=0)
