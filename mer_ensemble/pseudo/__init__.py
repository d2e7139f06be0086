"""Pseudo-labelling rounds from model agreement, without leaking validation rows.

Scheme (per target, per fold ``k``): the runs' fold-``k`` models — trained on every
fold but ``k`` — predict the unlabelled pool. A pool row gets a pseudo-label for
fold ``k`` when at least ``min_agree`` runs predict the same class and the mean
probability of that class is at least ``threshold``; class-balanced caps keep the
most confident rows per class. These rows join the *training* part of fold ``k``
only. So fold ``k``'s validation rows never influence the labels its model trains
on, and the CV score (computed on original labels only) stays honest. Test
predictions are the mean over fold models, as in plain training.

Which round ``blend`` uses: a round is kept only when its CV gain over the last kept round
(round 0, the runs without pseudo-labels, at first) exceeds the gain's standard error, both
from the per-fold differences of the soft vote's score (paired over the folds:
``mean(d) > sd(d) / sqrt(K)``). Round ``r + 1`` is selected by round ``r``'s models whether
``r`` was kept or not; after ``pseudo.patience`` rounds in a row that are not kept, the
rounds stop. The choice is written to ``pseudo/choice.json`` (the round, its runs' store keys
and run digests), which :func:`round_records` reads for ``blend``.
"""


from mer_ensemble.pseudo.history import (
    CHOICE_FILE,
    RoundChoice,
    RoundStats,
    history_json,
    load_choice,
    plot_rounds,
    round_records,
    save_choice,
    save_history,
)
from mer_ensemble.pseudo.rounds import _keeps, paired_gain, run_pseudo_rounds
from mer_ensemble.pseudo.select import Selection, class_caps, make_pseudo_file, select_agreed

__all__ = [
    "CHOICE_FILE",
    "RoundChoice",
    "RoundStats",
    "Selection",
    "_keeps",
    "class_caps",
    "history_json",
    "load_choice",
    "make_pseudo_file",
    "paired_gain",
    "plot_rounds",
    "round_records",
    "run_pseudo_rounds",
    "save_choice",
    "save_history",
    "select_agreed",
]
