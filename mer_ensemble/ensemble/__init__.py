"""Blenders: combine several runs' out-of-fold class probabilities for one target.

Every blender follows the scikit-learn shape: ``__init__`` stores hyper-parameters,
``fit(probas (R, n, C), y (n,), *, folds, score_fn, context)`` checks its inputs, calls the
method's ``_fit``, returns ``self`` and sets attributes ending in ``_``;
``predict_proba(probas (R, m, C)) -> (m, C)``. Score a blending recipe out of sample with
:func:`nested_score`. A new blender is one module with a ``@register_blender("name")`` class,
imported below.
"""

from mer_ensemble.ensemble._bagged import BaggedGreedyBlender
from mer_ensemble.ensemble._base import Blender, FitContext, ProbasLike, ScoreFn, WeightedBlender, as_probas
from mer_ensemble.ensemble._bias import ClassBias, apply_class_bias, tune_class_bias
from mer_ensemble.ensemble._evaluate import BlenderFactory, in_sample_score, nested_oof_proba, nested_score
from mer_ensemble.ensemble._greedy import GreedyBlender
from mer_ensemble.ensemble._optuna import OptunaWeightsBlender
from mer_ensemble.ensemble._registry import BLENDERS, blender_params, list_blenders, make_blender, register_blender
from mer_ensemble.ensemble._scoring import BatchScoreFn, batch_scorer
from mer_ensemble.ensemble._simple import BestSingle, HardVoteBlender, MeanBlender
from mer_ensemble.ensemble._stacking import StackingBlender, meta_features
from mer_ensemble.ensemble._topk import TopKMeanBlender

__all__ = [
    "BLENDERS",
    "BaggedGreedyBlender",
    "BatchScoreFn",
    "BestSingle",
    "Blender",
    "BlenderFactory",
    "ClassBias",
    "FitContext",
    "GreedyBlender",
    "HardVoteBlender",
    "MeanBlender",
    "OptunaWeightsBlender",
    "ProbasLike",
    "ScoreFn",
    "StackingBlender",
    "TopKMeanBlender",
    "WeightedBlender",
    "apply_class_bias",
    "as_probas",
    "batch_scorer",
    "blender_params",
    "in_sample_score",
    "list_blenders",
    "make_blender",
    "meta_features",
    "nested_oof_proba",
    "nested_score",
    "register_blender",
    "tune_class_bias",
]
