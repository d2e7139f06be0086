"""Data commands: ``check``."""

from __future__ import annotations

from mer_ensemble.cli._app import app  # noqa: F401
