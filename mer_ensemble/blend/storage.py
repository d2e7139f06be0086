"""The Optuna storage the final blends keep their studies in: one study per blend input, and one
line when the storage cannot be used (a full or read-only disk, a damaged database)."""

from __future__ import annotations

import hashlib

import numpy as np

from mer_ensemble.errors import BlendError
from mer_ensemble.experiment import Experiment

__all__ = ["StorageFailure", "blend_study_name", "storage_errors", "storage_failure"]


class StorageFailure(BlendError):
    """The Optuna storage cannot be written: fatal for the whole blend, never a skipped method."""


def storage_errors() -> tuple[type[BaseException], ...]:
    """What an Optuna storage raises when it cannot be opened or written (read-only or full disk,
    locked database, a damaged file or one that is not Optuna's)."""
    try:
        import optuna
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - both are dependencies
        return ()
    return optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError


#: words of a database error that mean the disk, not the file, is at fault
_DISK_TROUBLE = ("readonly", "read-only", "full", "no space", "unable to open", "locked", "permission")


def storage_failure(exc: BaseException, storage: str, name: str) -> StorageFailure:
    """One line for a storage that cannot be used: the disk's fault, or a damaged database file."""
    reason = _first_line(exc)
    if any(word in reason.lower() for word in _DISK_TROUBLE):
        hint = "a read-only or full disk? point blend.storage at a writable place"
    else:
        target = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else "it"
        hint = (f"the database is damaged or not an Optuna storage: delete {target} (it only keeps the final "
                "blends' Optuna trials, which blend runs again) or point blend.storage elsewhere")
    return StorageFailure(f"blend.storage {storage}: cannot use the {name} study ({reason}); {hint}")


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


def blend_study_name(exp: Experiment, target: str, oof: np.ndarray, y: np.ndarray) -> str:
    """One study per blend input: the same runs resume it, changed predictions start a new one."""
    digest = hashlib.sha1(np.ascontiguousarray(oof, dtype=np.float32).tobytes() + y.tobytes()).hexdigest()
    return f"{exp.stem}-{target}-{oof.shape[0]}runs-{digest[:12]}"
