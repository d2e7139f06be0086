"""Helpers the benchmark scripts share: ``--part`` registries and markdown tables on stdout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Parts", "markdown_table", "run_cli", "test_scores"]


class Parts(dict):
    """``--part name`` -> function; ``@parts("name")`` registers one."""

    def __call__(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self[name] = func
            return func

        return decorate


def markdown_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A GitHub-markdown table under a ``###`` title, on stdout."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def run_cli(*args: object) -> str:
    """``python -m mer_ensemble ARGS`` (progress bars off); its stdout, or exit with its output on failure."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mer_ensemble", *map(str, args)]
    print("$ mer-ensemble", " ".join(map(str, args)), file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MER_NO_PROGRESS": "1"})
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def test_scores(config: Any, workdir: Any, truth: Any, target: str = "discrete") -> dict[str, tuple[float, float]]:
    """``run id -> (CV mean, test score)`` of every stored run of ``workdir``; ``truth``: a pandas
    Series name -> class (read here only, after training)."""
    import numpy as np

    from mer_ensemble.config import load_config
    from mer_ensemble.data import load_dataset
    from mer_ensemble.store import load_runs

    ds = load_dataset(load_config(config), None)
    spec = ds.task.target(target)
    out = {}
    for record in load_runs(workdir):
        names = ds.names[record.test_rows]
        y_true = np.array([spec.classes.index(c) for c in truth.loc[names]])
        out[record.manifest["run_id"]] = (record.manifest["cv"][target]["mean"],
                                          float(spec.score(y_true, record.test[target].argmax(1))))
    return out
