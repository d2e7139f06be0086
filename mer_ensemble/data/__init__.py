"""Data: competition layouts, feature loading and cache, raw inputs, fixed folds, synthetic demo data.

The data layer reads plain :class:`DataSettings` (built from a config by
:func:`mer_ensemble.experiment.data_settings`), never the config itself.
"""

from mer_ensemble.data.dataset import SPLITS, Dataset, FeatureBlock, Frames
from mer_ensemble.data.folds import Folds, load_or_make_folds, make_folds, read_folds
from mer_ensemble.data.load import load_dataset, load_table
from mer_ensemble.data.raw import RAW_AUDIO, RAW_KINDS, RAW_TEXT, raw_key
from mer_ensemble.data.settings import DataSettings

__all__ = [
    "RAW_AUDIO",
    "RAW_KINDS",
    "RAW_TEXT",
    "SPLITS",
    "DataSettings",
    "Dataset",
    "FeatureBlock",
    "Folds",
    "Frames",
    "load_dataset",
    "load_or_make_folds",
    "load_table",
    "make_folds",
    "raw_key",
    "read_folds",
]
