"""One error root: every error the project raises on bad input is a MerError; the CLI catches only those and OSError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import mer_ensemble
from mer_ensemble.cli._app import friendly_errors
from mer_ensemble.errors import MerError


def _project_exceptions() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(mer_ensemble.__path__, "mer_ensemble."):
        if info.name.endswith("__main__") or info.name.startswith("mer_ensemble.extract") or ".nets" in info.name:
            continue  # import torch/transformers at the top; their errors are checked below by source
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and not issubclass(obj, Warning) and obj.__module__.startswith(
                    "mer_ensemble"):
                found.append(obj)
    return found


def test_every_project_exception_derives_from_the_root():
    classes = _project_exceptions()
    assert len(classes) >= 10
    assert all(issubclass(c, MerError) for c in classes), [c for c in classes if not issubclass(c, MerError)]


def test_no_module_raises_a_bare_key_or_value_error_on_purpose():
    """Bad input raises a MerError subclass; only the config models' pydantic validators
    (config.py, config_sections.py) raise ValueError, which pydantic requires and parse_config
    turns into a ConfigError."""
    root = Path(mer_ensemble.__file__).parent
    offenders = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
                 if p.name not in ("config.py", "config_sections.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if line.strip().startswith(("raise KeyError", "raise ValueError(", "raise FileNotFoundError"))]
    assert offenders == [], offenders


def _app(error: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @friendly_errors
    def run() -> None:
        raise error

    return app


def test_cli_turns_project_errors_and_os_errors_into_one_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MER_DEBUG", raising=False)
    result = CliRunner().invoke(_app(MerError("data.root: /x is not a folder")), [])
    assert result.exit_code == 1 and result.output.strip() == "error: data.root: /x is not a folder"
    result = CliRunner().invoke(_app(PermissionError(13, "Permission denied", "/ro/store/a.npz")), [])
    assert result.exit_code == 1 and result.output.strip() == "error: /ro/store/a.npz: Permission denied"


def test_a_real_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MER_DEBUG", raising=False)
    result = CliRunner().invoke(_app(KeyError("emotion")), [])
    assert result.exit_code != 0 and isinstance(result.exception, KeyError)
