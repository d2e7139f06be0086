"""Quality benchmark (issue 11): the default pipeline through the CLI against simple peers.

For each dataset (EmoDB, MELD from ``../shared/data``) this script

1. runs the shipped config with default settings through the CLI: ``mer-ensemble train-all``
   then ``mer-ensemble blend`` (the chosen blend's nested-CV estimate is read from its sidecar);
2. computes the peers on the same folds (``workdir/folds.csv``, made by the pipeline):
   standardised logistic regression with C tuned by an inner grouped CV on each feature alone
   and on the concatenation of all features, the mean of the per-feature regressions'
   probabilities, and scikit-learn's HistGradientBoosting on the concatenation;
3. scores everything on the test split (the truth file is read here only, after predicting).

Columns: the CV estimate (how it is estimated is said in the row), the test score and the wall
time. Usage::

    python scripts/bench_quality.py                      # both datasets
    python scripts/bench_quality.py --datasets emodb --workdir /tmp/quality
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import markdown_table  # noqa: E402

from mer_ensemble.config import load_config  # noqa: E402
from mer_ensemble.data import load_dataset, read_folds  # noqa: E402
from mer_ensemble.experiment import data_settings  # noqa: E402
from mer_ensemble.submission import read_truth, score_submission  # noqa: E402

C_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]


def run_cli(args: list[str]) -> tuple[str, float]:
    """Run ``mer-ensemble ARGS``; returns its stdout and wall seconds (raises on failure)."""
    start = time.perf_counter()
    env = {**os.environ, "MER_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mer_ensemble", *args], capture_output=True, text=True, env=env,
                          cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"mer-ensemble {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout, time.perf_counter() - start


# ------------------------------------------------------------------------------------------- peers


def _inner_splits(y: np.ndarray, groups: np.ndarray | None, k: int = 3, seed: int = 0) -> list:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if groups is not None:
            return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(y, y, groups))
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y))


def tuned_logreg(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, score) -> object:  # noqa: ANN001
    """A standardised LogisticRegression whose C is chosen by an inner grouped 3-fold CV of ``X, y``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(C: float) -> object:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        means = []
        splits = _inner_splits(y, groups)
        for C in C_GRID:
            means.append(np.mean([score(y[va], model(C).fit(X[tr], y[tr]).predict(X[va])) for tr, va in splits]))
        return model(C_GRID[int(np.argmax(means))]).fit(X, y)


def hist_gbm(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, score) -> object:  # noqa: ANN001, ARG001
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=0).fit(X, y)


def proba_of(model, X: np.ndarray, n_classes: int) -> np.ndarray:  # noqa: ANN001
    out = np.zeros((len(X), n_classes))
    out[:, model.classes_] = model.predict_proba(X)
    return out


def peer_predictions(ds, folds, inputs: list[str], fit, target: str) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """OOF probabilities ``(m, C)`` over the pipeline's folds and test probabilities from a fit on all rows."""
    spec = ds.task.target(target)
    X = np.concatenate([np.asarray(ds.features[f].pooled(), dtype=np.float64) for f in inputs], axis=1)
    y_all = ds.labels[target]
    groups = ds.groups
    oof = np.zeros((len(folds.rows), spec.n_classes))
    position = np.full(ds.n_rows, -1)
    position[folds.rows] = np.arange(len(folds.rows))
    for k in range(folds.n_folds):
        train, valid = folds.split(k)
        train = train[y_all[train] >= 0]
        model = fit(X[train], y_all[train], None if groups is None else groups[train], spec.score)
        oof[position[valid]] = proba_of(model, X[valid], spec.n_classes)
    labelled = folds.rows[y_all[folds.rows] >= 0]
    model = fit(X[labelled], y_all[labelled], None if groups is None else groups[labelled], spec.score)
    return oof, proba_of(model, X[ds.test_rows], spec.n_classes)


def cv_estimate(ds, folds, target: str, oof: np.ndarray) -> tuple[float, np.ndarray]:  # noqa: ANN001
    """Mean over validation folds of the target's metric, and the per-fold scores."""
    spec = ds.task.target(target)
    y = ds.labels[target][folds.rows]
    per_fold = np.array([spec.score(y[folds.fold == k], oof[folds.fold == k].argmax(1))
                         for k in range(folds.n_folds)])
    return float(per_fold.mean()), per_fold


# ------------------------------------------------------------------------------------------- main


def bench(name: str, workdir: Path, cv_only: bool = False) -> list[list]:
    config = REPO / "configs" / f"{name}.yaml"
    cfg = load_config(config)
    wd = workdir / name
    _, t_train = run_cli(["train-all", "-c", str(config), "--workdir", str(wd)])
    out, t_blend = run_cli(["blend", "-c", str(config), "--workdir", str(wd), "--out", str(wd / "submission.csv")])
    sidecar = json.loads((wd / "submission.json").read_text())
    ds = load_dataset(data_settings(cfg), wd)
    task = ds.task
    folds = read_folds(wd / "folds.csv", ds)
    truth_path = cfg.resolve_path(cfg.truth["test"])
    rows = []
    scores = {"combined": float("nan")} if cv_only else score_submission(wd / "submission.csv", truth_path, task)
    chosen = ", ".join(f"{t}: {v['method']}" for t, v in sidecar["targets"].items())
    rows.append([f"**mer-ensemble** (`train-all` + `blend`, shipped config; chosen {chosen})",
                 f"{sidecar['combined_nested']:.4f} (nested CV of the chosen blend)",
                 f"**{scores['combined']:.4f}**", f"{t_train + t_blend:.0f}"])
    if not cv_only:
        truth, names = read_truth(truth_path, task)
        order = np.array([{n: i for i, n in enumerate(names)}[n] for n in ds.names[ds.test_rows]])
    from mer_ensemble.store import load_runs

    best = max(load_runs(wd), key=lambda r: r.manifest["combined"]["mean"])  # chosen by CV, as a team would
    best_test = float("nan") if cv_only else task.combined(
        {t: task.target(t).score(truth[t][order], best.test[t].argmax(1)) for t in task.target_names})
    rows.append([f"the pipeline's best single run by CV ({best.key})",
                 f"{best.manifest['combined']['mean']:.4f} (mean over the {folds.n_folds} validation folds)",
                 f"{best_test:.4f}", "—"])
    features = [f for fs in cfg.data.features.values() for f in fs]
    peers: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    timing: dict[str, float] = {}
    for label, inputs, fit in ([(f"logistic regression, C by inner grouped CV: {f}", [f], tuned_logreg)
                                for f in features]
                               + ([("logistic regression, C by inner grouped CV: all features", features,
                                    tuned_logreg)] if len(features) > 1 else [])
                               + [("HistGradientBoosting: all features", features, hist_gbm)]):
        start = time.perf_counter()
        peers[label] = {t: peer_predictions(ds, folds, inputs, fit, t) for t in task.target_names}
        timing[label] = time.perf_counter() - start
    if len(features) > 1:
        singles = [f"logistic regression, C by inner grouped CV: {f}" for f in features]
        peers["mean of the per-feature regressions' probabilities"] = {
            t: (np.mean([peers[s][t][0] for s in singles], axis=0), np.mean([peers[s][t][1] for s in singles], axis=0))
            for t in task.target_names
        }
        timing["mean of the per-feature regressions' probabilities"] = sum(timing[s] for s in singles)
    for label, per_target in peers.items():
        cv = {t: cv_estimate(ds, folds, t, oof)[0] for t, (oof, _) in per_target.items()}
        test = float("nan") if cv_only else task.combined(
            {t: task.target(t).score(truth[t][order], proba.argmax(1)) for t, (_, proba) in per_target.items()})
        rows.append([label, f"{task.combined(cv):.4f} (mean over the {folds.n_folds} validation folds)",
                     f"{test:.4f}", f"{timing[label]:.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="emodb,meld", help="comma-separated: emodb, meld")
    parser.add_argument("--workdir", default="/tmp/mer-bench-quality", help="where the runs go (created)")
    parser.add_argument("--cv-only", action="store_true",
                        help="do not read the test truth (for deciding defaults: decisions come from CV only)")
    args = parser.parse_args()
    shared = REPO.parent / "shared" / "data"
    for name in args.datasets.split(","):
        if not (shared / name).is_dir():
            print(f"skipping {name}: {shared / name} not present")
            continue
        metric = "joint weighted F1 (emotion, sentiment)" if name == "meld" else "weighted F1"
        rows = bench(name, Path(args.workdir), cv_only=args.cv_only)
        markdown_table(f"{name}: test {metric}", ["run", "CV estimate", "test", "wall s"], rows)


if __name__ == "__main__":
    main()
