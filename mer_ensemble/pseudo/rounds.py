"""The pseudo-label rounds: select with the previous round's models, retrain, score the round's soft
vote on the original labels, keep the round when its paired CV gain exceeds its standard error."""

from __future__ import annotations

import numpy as np

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import DataError
from mer_ensemble.experiment import Experiment
from mer_ensemble.pseudo.history import RoundStats, save_choice, save_history
from mer_ensemble.pseudo.select import make_pseudo_file
from mer_ensemble.store import RunRecord


def _precision(truth: dict[str, np.ndarray], ds: Dataset, rows: np.ndarray, stacked: np.ndarray,
               target: str) -> dict[str, float | None]:
    """Per-class precision of pseudo-labels over all folds' selections (rows with a known truth only).

    ``truth[target]`` ``(n_rows,)``: the true class index of every dataset row, -1 where unknown.
    """
    if target not in truth:
        return {}
    classes = ds.task.target(target).classes
    true = truth[target][rows]
    out: dict[str, float | None] = {}
    hits = total = 0
    for i, c in enumerate(classes):
        mask = (stacked == i) & (true[None, :] >= 0)
        n = int(mask.sum())
        correct = int((mask & (true[None, :] == i)).sum())
        out[c] = correct / n if n else None
        hits += correct
        total += n
    out["all"] = hits / total if total else None
    return out


def _read_truth(cfg: Config, ds: Dataset) -> dict[str, np.ndarray]:
    """Truth of the pool rows (scoring only) from ``truth.unlabeled``: ``{target: (n_rows,) class or -1}``."""
    from mer_ensemble.submission import read_truth

    path = cfg.truth.get("unlabeled") or cfg.truth.get("pool")
    if not path:
        return {}
    labels, names = read_truth(cfg.resolve_path(path), ds.task, split="unlabeled")
    position = {n: i for i, n in enumerate(ds.names)}
    rows = np.array([position.get(n, -1) for n in names])
    known = rows >= 0
    out = {}
    for target, values in labels.items():
        full = np.full(ds.n_rows, -1, dtype=np.int64)
        full[rows[known]] = values[known]
        out[target] = full
    return out


def _cv_of_runs(ds: Dataset, records: list[RunRecord]) -> tuple[float, dict[str, float], list[float]]:
    """Honest CV score of the soft vote of ``records`` (OOF rows, original labels only): the
    combined score, per target, and the combined score on each fold's validation rows."""
    per_target: dict[str, float] = {}
    labels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for target in ds.task.target_names:
        runs = [r for r in records if target in r.targets]
        if not runs:
            continue
        predicted = np.mean([r.oof[target] for r in runs], axis=0).argmax(1)
        y = ds.labels[target][runs[0].rows]
        labels[target] = (y, predicted)
        per_target[target] = ds.task.target(target).score(y, predicted)
    if len(per_target) != len(ds.task.targets):
        return 0.0, per_target, []
    fold = records[0].fold
    folds = [ds.task.combined({t: ds.task.target(t).score(y[fold == k], p[fold == k]) for t, (y, p) in labels.items()})
             for k in np.unique(fold)]
    return ds.task.combined(per_target), per_target, [float(f) for f in folds]


def paired_gain(after: list[float], before: list[float]) -> tuple[float, float]:
    """``(mean, standard error)`` of the per-fold differences ``after - before`` (paired over the
    folds; the standard error is ``sd / sqrt(K)``, 0 with one fold)."""
    diff = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    if len(diff) == 0:
        return 0.0, 0.0
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()), se


def _keeps(gain: float, se: float) -> bool:
    """A round pays when its paired CV gain exceeds its standard error."""
    return gain > se + 1e-12


def run_pseudo_rounds(exp: Experiment, *, rounds: int | None = None, per_fold: bool = True, progress: bool = True,
                      echo=print) -> list[RoundStats]:  # noqa: ANN001
    """Round 0 = the stored base runs (trained if missing); each round re-selects pseudo-labels with the
    previous round's ``pseudo.runs`` (default: every run) and retrains ``pseudo.retrain`` (default: the
    same runs). A round's CV is the soft vote of every run it selects with or retrains."""
    import time

    from mer_ensemble.store import list_run_keys, load_run
    from mer_ensemble.training.runner import select_specs, train_all

    cfg, ds, workdir = exp.config, exp.dataset, exp.workdir
    p = cfg.pseudo
    rounds = rounds or p.rounds
    if len(ds.pool_rows) == 0 and not p.use_test:
        raise DataError("pseudo-labelling needs an unlabelled pool; the data has none (add a pool list)")
    source_ids = p.runs or [m.run_id for m in cfg.models]
    retrain_ids = p.retrain or source_ids
    select_specs(cfg, source_ids)
    select_specs(cfg, retrain_ids)
    run_ids = source_ids + [r for r in retrain_ids if r not in source_ids]  # what a round's CV and blend read
    stored = set(list_run_keys(workdir))
    missing = [r for r in run_ids if r not in stored]
    if missing:
        echo(f"round 0: training base runs {', '.join(missing)}")
        train_all(exp, run_ids=missing, progress=progress)
    current = {r: load_run(workdir, r) for r in run_ids}
    records = [current[r] for r in run_ids]
    truth = _read_truth(cfg, ds)
    score, per_target, cv_folds = _cv_of_runs(ds, records)
    history = [RoundStats(round=0, cv_score=score, cv_per_target=per_target, runs=[r.key for r in records],
                          cv_folds=cv_folds, kept=True)]
    echo(f"round 0: CV {score:.4f} (soft vote of {len(records)} runs' OOF, original labels)")
    kept, kept_records, since_kept = history[0], list(records), 0
    folder = workdir / "pseudo"
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        sources = [current[i] for i in source_ids]  # the previous round's models label the pool
        path, info = make_pseudo_file(cfg, ds, sources, folder / f"round{r}.npz", per_fold=per_fold)
        stats = RoundStats(round=r, added=info["added"], agree_rate=info["agree_rate"])
        for target, stacked in info["labels_by_fold"].items():
            stats.precision[target] = _precision(truth, ds, info["rows"], stacked, target)
        new = train_all(exp, run_ids=retrain_ids, round_=r, pseudo_file=str(path),
                        key_suffix=f"@r{r}", progress=progress)
        current.update({rec.manifest["run_id"]: rec for rec in new})
        records = [current[i] for i in run_ids]
        stats.cv_score, stats.cv_per_target, stats.cv_folds = _cv_of_runs(ds, records)
        stats.runs = [rec.key for rec in records]
        stats.seconds = time.perf_counter() - start
        stats.compared_with = kept.round
        stats.gain, stats.gain_se = paired_gain(stats.cv_folds, kept.cv_folds)
        stats.kept = _keeps(stats.gain, stats.gain_se)
        history.append(stats)
        echo(_round_line(stats))
        if stats.kept:
            kept, kept_records, since_kept = stats, list(records), 0
        else:
            since_kept += 1
            if since_kept >= p.patience:
                echo(f"stopping: {since_kept} round(s) in a row did not pay")
                break
    save_history(workdir, history)
    save_choice(workdir, kept, kept_records)
    return history


def _round_line(s: RoundStats) -> str:
    added = "; ".join(f"{t}: " + ", ".join(f"{c} {v:.0f}" for c, v in a.items()) for t, a in s.added.items())
    agree = ", ".join(f"{t} {v:.2f}" for t, v in s.agree_rate.items())
    prec = ", ".join(f"{t} {p['all']:.3f}" for t, p in s.precision.items() if p.get("all") is not None)
    verdict = ""
    if s.gain is not None:
        verdict = (f" • {s.gain:+.4f} ± {s.gain_se:.4f} over round {s.compared_with} (paired over folds): "
                   + ("kept" if s.kept else "not kept, the gain does not exceed its standard error"))
    return (f"round {s.round}: CV {s.cv_score:.4f}{verdict} • added per fold ({added}) • agreement {agree}"
            + (f" • precision {prec}" if prec else "") + f" • {s.seconds:.0f}s")


