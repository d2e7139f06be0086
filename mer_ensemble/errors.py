"""One exception root for everything the toolkit reports to a user.

The CLI turns any :class:`MerError` into a single line on stderr and a non-zero
exit; the traceback is shown only when ``MER_DEBUG=1`` is set.
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
