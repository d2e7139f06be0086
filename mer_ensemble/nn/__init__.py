"""The low training layer: the torch loop, devices, losses, seeding and the interface networks implement.

Nothing here knows about model families, folds or the prediction store; the model
families (:mod:`mer_ensemble.models`) build on it, and the k-fold runner
(:mod:`mer_ensemble.training`) builds on the families. Importing this package does not
import torch; each function imports it when called.
"""

from mer_ensemble.nn.device import DEVICES, amp_dtype, available_threads, cuda_available, resolve_device
from mer_ensemble.nn.losses import masked_cross_entropy, supervised_loss
from mer_ensemble.nn.protocol import TrainableModule, TrainingHooks, hooks_of
from mer_ensemble.nn.seeding import seeded
from mer_ensemble.nn.trainer import (
    EpochLog,
    FitResult,
    Trainer,
    default_score,
    predict_logits,
    predict_proba,
    to_tensors,
)

__all__ = [
    "DEVICES",
    "EpochLog",
    "FitResult",
    "TrainableModule",
    "Trainer",
    "TrainingHooks",
    "amp_dtype",
    "available_threads",
    "cuda_available",
    "default_score",
    "hooks_of",
    "masked_cross_entropy",
    "predict_logits",
    "predict_proba",
    "resolve_device",
    "seeded",
    "supervised_loss",
    "to_tensors",
]
