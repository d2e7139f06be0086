"""Data: competition layouts, feature loading and cache, fixed folds, synthetic demo data."""

from mer_ensemble.data.dataset import SPLITS, Dataset, FeatureBlock, Frames
from mer_ensemble.data.folds import Folds, load_or_make_folds, make_folds, read_folds
from mer_ensemble.data.load import load_dataset, load_table

__all__ = [
    "SPLITS",
    "Dataset",
    "FeatureBlock",
    "Folds",
    "Frames",
    "load_dataset",
    "load_or_make_folds",
    "load_table",
    "make_folds",
    "read_folds",
]
