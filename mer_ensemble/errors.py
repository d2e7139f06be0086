"""One exception root for everything the toolkit reports to a user.

Every error raised on bad input (a config, a data file, a model parameter, a
stored record, a submission, a cluster address...) is a subclass of
:class:`MerError`. The CLI turns a :class:`MerError` (and an ``OSError``) into a
single line on stderr and a non-zero exit; any other exception is a bug and keeps
its traceback. ``MER_DEBUG=1`` shows the traceback of a :class:`MerError` too.
"""

from __future__ import annotations

__all__ = [
    "MerError",
    "ConfigError",
    "DataError",
    "StoreError",
    "BlendError",
    "SubmissionError",
    "ModelError",
    "ExtractError",
    "MetricError",
    "TuneError",
    "ClusterError",
    "MerWarning",
]


class MerError(Exception):
    """Root of all errors raised on purpose by mer-ensemble."""


class ConfigError(MerError):
    """A config file or override is invalid (unknown key, wrong type, missing key)."""


class DataError(MerError):
    """Input data is missing, misshaped or inconsistent."""


class StoreError(MerError):
    """The prediction store is missing records or holds inconsistent ones."""


class BlendError(MerError):
    """Runs cannot be blended together (mismatched folds, data or classes)."""


class SubmissionError(MerError):
    """A submission file does not match the task's format or test set."""


class ModelError(MerError):
    """A model name or parameter is unknown or invalid."""


class ExtractError(MerError):
    """Feature extraction failed (missing checkpoint, wrong modality, bad media)."""


class MetricError(MerError, ValueError):
    """A metric, average or combination rule is unknown, or labels and predictions disagree in shape."""


class TuneError(MerError):
    """A search space, storage URL or study cannot be used for tuning."""


class ClusterError(MerError):
    """The Dask scheduler cannot be reached, lacks suitable workers, or a job failed there."""


class MerWarning(UserWarning):
    """Something the user should know that did not stop the command (e.g. a damaged cache entry
    that was rebuilt); the CLI prints it as one ``warning:`` line."""
