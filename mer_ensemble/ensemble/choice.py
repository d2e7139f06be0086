"""Choosing between blends from their nested scores without following noise.

Every blending method has a nested score per fold (fitted on the other folds' OOF rows,
scored on the held-out fold). Two methods are compared by their **paired** per-fold
differences: the mean difference and its standard error (sd of the K differences / sqrt(K)).
A method whose mean difference to the best is within ``n_se`` standard errors cannot be told
apart from it on these folds. The rules:

- ``ties`` (what ``blend.choose: auto`` applies): average the predictions of every method that
  cannot be told apart from the best (a blend of blends). Averaging near-equal, differently
  built blends keeps what each gets right without betting on the noise between them;
- ``simplest``: the simplest of those methods (order :data:`SIMPLICITY`), the one-SE rule;
- ``highest``: the highest pooled nested score, whatever the margin.

The choice reads nested scores only, never the rows a final blend is scored on twice; the
averaged blend's own nested score is the score of the averaged nested predictions (a mild
selection effect remains, as for any choice made on the same folds, and the sidecar says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CHOICE_RULES", "SIMPLICITY", "TIES", "Choice", "Evidence", "choose_blend", "paired_difference"]

#: the rules ``blend.choose`` accepts besides a method name (``auto`` = ``ties``)
CHOICE_RULES = ("auto", "ties", "simplest", "highest")
#: name of the blend of the tied methods in tables, sidecars and submissions
TIES = "ties"
#: from simplest (fewest fitted degrees of freedom) to most flexible
SIMPLICITY = ("mean", "topk", "vote", "best", "subset_greedy", "greedy", "optuna", "stacking")


@dataclass(frozen=True)
class Evidence:
    """One method against the best: mean paired per-fold difference (method - best) and its SE."""

    method: str
    nested: float
    diff: float
    se: float
    tied: bool

    def text(self) -> str:
        if self.diff == 0 and self.se == 0:
            return f"{self.method} {self.nested:.4f}"
        return f"{self.method} {self.diff:+.4f}±{self.se:.4f}{'' if self.tied else ' (out)'}"


@dataclass
class Choice:
    """What a rule picked: ``members`` (one method, or several to average), with the evidence."""

    rule: str
    best: str
    members: list[str]
    n_se: float
    n_folds: int
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def averaged(self) -> bool:
        return len(self.members) > 1

    def text(self) -> str:
        """One line: the rule, what it picked and the paired differences it read."""
        head = {
            "ties": f"blend of the methods within {self.n_se:g} SE of the best",
            "simplest": f"simplest method within {self.n_se:g} SE of the best",
            "highest": "highest nested score",
            "fixed": "as asked",
        }[self.rule]
        picked = " + ".join(self.members)
        diffs = "; ".join(e.text() for e in self.evidence)
        return (f"{head}: {picked} (best {self.best}; paired differences to it over {self.n_folds} folds, "
                f"mean±SE: {diffs})")


def paired_difference(scores: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of ``scores - reference`` paired by fold."""
    d = np.asarray(scores, dtype=float) - np.asarray(reference, dtype=float)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean()), se


def choose_blend(
    nested: Mapping[str, float],
    fold_scores: Mapping[str, Sequence[float]],
    *,
    rule: str = "auto",
    n_se: float = 1.0,
) -> Choice:
    """Apply ``rule`` (:data:`CHOICE_RULES` or a method name) to the methods' pooled nested
    scores ``nested`` and per-fold nested scores ``fold_scores`` (same folds for every method).
    Ties on the pooled score go to the simpler method."""
    methods = list(nested)
    rank = {m: (SIMPLICITY.index(m) if m in SIMPLICITY else len(SIMPLICITY)) for m in methods}
    best = max(methods, key=lambda m: (nested[m], -rank[m]))
    evidence = []
    for m in methods:
        diff, se = paired_difference(fold_scores[m], fold_scores[best])
        evidence.append(Evidence(m, float(nested[m]), diff, se, m == best or diff >= -n_se * se - 1e-12))
    evidence.sort(key=lambda e: -e.nested)
    tied = [e.method for e in evidence if e.tied]
    n_folds = len(fold_scores[best])
    if rule in ("auto", "ties"):
        return Choice("ties", best, tied, n_se, n_folds, evidence)
    if rule == "simplest":
        return Choice("simplest", best, [min(tied, key=lambda m: rank[m])], n_se, n_folds, evidence)
    if rule == "highest":
        return Choice("highest", best, [best], n_se, n_folds, evidence)
    return Choice("fixed", best, [rule], n_se, n_folds, evidence)
