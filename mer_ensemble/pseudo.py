"""Pseudo-labelling rounds from model agreement, without leaking validation rows.

Scheme (per target, per fold ``k``): the runs' fold-``k`` models — trained on every
fold but ``k`` — predict the unlabelled pool. A pool row gets a pseudo-label for
fold ``k`` when at least ``min_agree`` runs predict the same class and the mean
probability of that class is at least ``threshold``; class-balanced caps keep the
most confident rows per class. These rows join the *training* part of fold ``k``
only. So fold ``k``'s validation rows never influence the labels its model trains
on, and the CV score (computed on original labels only) stays honest. Test
predictions are the mean over fold models, as in plain training.

Which round ``blend`` uses: a round is kept only when its CV gain over the last kept round
(round 0, the runs without pseudo-labels, at first) exceeds the gain's standard error, both
from the per-fold differences of the soft vote's score (paired over the folds:
``mean(d) > sd(d) / sqrt(K)``). Round ``r + 1`` is selected by round ``r``'s models whether
``r`` was kept or not; after ``pseudo.patience`` rounds in a row that are not kept, the
rounds stop. The choice is written to ``pseudo/choice.json`` (the round, its runs' store keys
and run digests), which :func:`round_records` reads for ``blend``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import ConfigError, DataError
from mer_ensemble.experiment import Experiment
from mer_ensemble.io import atomic_save_npz, atomic_write_json
from mer_ensemble.store import RunRecord

__all__ = [
    "RoundChoice",
    "Selection",
    "class_caps",
    "load_choice",
    "make_pseudo_file",
    "paired_gain",
    "round_records",
    "run_pseudo_rounds",
    "select_agreed",
]

#: the file naming the round ``blend`` uses
CHOICE_FILE = "choice.json"


@dataclass
class Selection:
    """Pseudo-labels of one target for one candidate set.

    ``labels`` ``(n,)`` class index or -1 (not taken); ``agree_rate`` the share of
    candidate rows on which the required number of runs agreed.
    """

    labels: np.ndarray
    confidence: np.ndarray
    agree_rate: float


def class_caps(max_per_class: float | None, labelled_counts: np.ndarray) -> np.ndarray | None:
    """Per-class cap on rows added per round: ``< 1`` is relative to the labelled count, else absolute."""
    if max_per_class is None:
        return None
    if max_per_class < 1:
        return np.floor(labelled_counts * max_per_class).astype(np.int64)
    return np.full(len(labelled_counts), int(max_per_class), dtype=np.int64)


def select_agreed(
    probas: Sequence[np.ndarray],
    *,
    threshold: float = 0.9,
    min_agree: int | None = None,
    caps: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> Selection:
    """Select rows on which the runs agree.

    ``probas``: ``R`` arrays ``(n, C)``. A row is taken when at least ``min_agree``
    runs (default: all) predict the row's majority class and the mean probability of
    that class is ``>= threshold``; ``allowed`` ``(n,)`` bool restricts the rows;
    ``caps`` ``(C,)`` keeps only the most confident rows of each class.
    """
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probas])
    n_runs, n_rows, n_classes = stacked.shape
    need = n_runs if min_agree is None else min_agree
    if need > n_runs:
        raise ConfigError(f"pseudo.min_agree: {need} runs must agree but only {n_runs} run(s) are selected")
    votes = stacked.argmax(axis=2)  # (R, n)
    counts = np.stack([(votes == c).sum(axis=0) for c in range(n_classes)], axis=1)  # (n, C)
    mean = stacked.mean(axis=0)
    majority = np.where(counts.max(1, keepdims=True) == counts, mean, -1).argmax(1)
    agree = counts[np.arange(n_rows), majority] >= need
    confidence = mean[np.arange(n_rows), majority]
    take = agree & (confidence >= threshold)
    if allowed is not None:
        take &= allowed
        agree_rate = float(agree[allowed].mean()) if allowed.any() else 0.0
    else:
        agree_rate = float(agree.mean()) if n_rows else 0.0
    labels = np.where(take, majority, -1)
    if caps is not None:
        for c in range(n_classes):
            rows = np.flatnonzero(labels == c)
            if len(rows) > caps[c]:
                keep = rows[np.argsort(-confidence[rows], kind="stable")[: caps[c]]]
                drop = np.setdiff1d(rows, keep)
                labels[drop] = -1
    return Selection(labels=labels, confidence=confidence, agree_rate=agree_rate)


@dataclass
class RoundStats:
    """What one round added and how it scored."""

    round: int
    added: dict[str, dict[str, float]] = field(default_factory=dict)
    agree_rate: dict[str, float] = field(default_factory=dict)
    precision: dict[str, dict[str, float | None]] = field(default_factory=dict)
    cv_score: float = 0.0
    cv_per_target: dict[str, float] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: the soft vote's combined score on each fold's validation rows
    cv_folds: list[float] = field(default_factory=list)
    #: the round compared with (the last kept one), the paired gain over it and its standard error
    compared_with: int | None = None
    gain: float | None = None
    gain_se: float | None = None
    kept: bool = False


def _candidate_rows(cfg: Config, ds: Dataset, records: list[RunRecord]) -> tuple[np.ndarray, str]:
    """Dataset rows that may receive pseudo-labels, and whether test rows are used."""
    rows = records[0].pool_rows
    if cfg.pseudo.use_test:
        rows = np.concatenate([rows, records[0].test_rows])
    return rows, "pool+test" if cfg.pseudo.use_test else "pool"


def _fold_probas(record: RunRecord, target: str, k: int, use_test: bool) -> np.ndarray:
    parts = [record.pool_by_fold[target][k]]
    if use_test:
        parts.append(record.extra[f"test_by_fold/{target}"][k])
    return np.concatenate(parts)


def make_pseudo_file(
    cfg: Config, ds: Dataset, records: list[RunRecord], path: Path, *, per_fold: bool = True
) -> tuple[Path, dict]:
    """Select pseudo-labels per fold and target from ``records``; write them to ``path`` (npz).

    The file holds ``rows_<k>`` (dataset rows added to fold ``k``'s training part)
    and ``label_<k>/<target>`` (class index, -1 where that target got no label).
    ``per_fold=False`` uses the fold-mean pool predictions for every fold — this
    leaks validation labels into training and exists only to demonstrate the leak.
    """
    p = cfg.pseudo
    rows, _ = _candidate_rows(cfg, ds, records)
    if len(rows) == 0:
        raise DataError("pseudo-labelling needs an unlabelled pool; the data has none (add a pool list)")
    allowed = np.ones(len(rows), dtype=bool)
    if p.use_candidates and ds.candidates is not None:
        allowed = ds.candidates[rows].astype(bool)
    n_folds = int(records[0].manifest["n_folds"])
    arrays: dict[str, np.ndarray] = {}
    info: dict = {"added": {}, "agree_rate": {}, "labels_by_fold": {}}
    chosen_labels: dict[str, list[np.ndarray]] = {t: [] for t in ds.task.target_names}
    for k in range(n_folds):
        keep = np.zeros(len(rows), dtype=bool)
        labels_k = {}
        for target in ds.task.target_names:
            runs = [r for r in records if target in r.targets]
            if not runs:
                labels_k[target] = np.full(len(rows), -1)
                continue
            counts = np.bincount(ds.labels[target][ds.labelled_rows][ds.labels[target][ds.labelled_rows] >= 0],
                                 minlength=ds.task.target(target).n_classes)
            if per_fold:
                probas = [_fold_probas(r, target, k, p.use_test) for r in runs]
            else:
                probas = [np.concatenate([r.pool[target]] + ([r.test[target]] if p.use_test else [])) for r in runs]
            sel = select_agreed(probas, threshold=p.threshold, min_agree=p.min_agree,
                                caps=class_caps(p.max_per_class, counts), allowed=allowed)
            labels_k[target] = sel.labels
            keep |= sel.labels >= 0
            info["agree_rate"].setdefault(target, []).append(sel.agree_rate)
            chosen_labels[target].append(sel.labels)
        arrays[f"rows_{k}"] = rows[keep]
        for target, labels in labels_k.items():
            arrays[f"label_{k}/{target}"] = labels[keep].astype(np.int64)
    atomic_save_npz(path, **arrays)
    for target in ds.task.target_names:
        if not chosen_labels[target]:
            continue
        classes = ds.task.target(target).classes
        stacked = np.stack(chosen_labels[target])  # (K, n_rows)
        info["added"][target] = {c: float((stacked == i).sum(1).mean()) for i, c in enumerate(classes)}
        info["agree_rate"][target] = float(np.mean(info["agree_rate"][target]))
        info["labels_by_fold"][target] = stacked
    info["rows"] = rows
    return path, info


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


@dataclass
class RoundChoice:
    """The round ``blend`` uses (``pseudo/choice.json``): ``round``, its CV score, and per run id
    the store key of that round's record and the record's run digest (``spec_hash``)."""

    round: int
    cv_score: float
    runs: dict[str, dict[str, str]]
    rule: str = ("a round is kept when its CV gain over the last kept round exceeds its standard error "
                 "(paired over folds)")

    def text(self) -> str:
        return f"pseudo-label round {self.round} (soft-vote CV {self.cv_score:.4f})"


def save_choice(workdir: Path, kept: RoundStats, records: list[RunRecord]) -> RoundChoice:
    """Write ``pseudo/choice.json`` naming the kept round and its runs' records."""
    choice = RoundChoice(kept.round, kept.cv_score,
                         {r.manifest["run_id"]: {"key": r.key, "spec_hash": r.manifest.get("spec_hash")}
                          for r in records})
    atomic_write_json(Path(workdir) / "pseudo" / CHOICE_FILE, choice.__dict__)
    return choice


def load_choice(workdir: Path) -> RoundChoice | None:
    """The round chosen by the last ``pseudo-label`` in ``workdir`` (None when it never finished there)."""
    from mer_ensemble.errors import StoreError
    from mer_ensemble.io import read_json

    path = Path(workdir) / "pseudo" / CHOICE_FILE
    if not path.is_file():
        return None
    data = read_json(path, StoreError)
    try:
        return RoundChoice(int(data["round"]), float(data["cv_score"]),
                           {str(k): {"key": str(v["key"]), "spec_hash": v.get("spec_hash")}
                            for k, v in dict(data["runs"]).items()})
    except (KeyError, TypeError, ValueError, AttributeError):
        raise StoreError(f"{path}: damaged (expected round, cv_score and runs); run pseudo-label again "
                         "or delete it") from None


def round_records(workdir: Path, records: list[RunRecord]) -> tuple[list[RunRecord], str]:
    """The stored ``records`` a default blend uses, and a line saying which: the runs of the round
    the last ``pseudo-label`` kept (:func:`load_choice`), or, without one, the runs without
    pseudo-labels (round 0). A choice whose records were retrained since (another run digest) or
    are gone is not followed: round 0 then, with the line saying why."""
    base = [r for r in records if not int(r.manifest.get("round") or 0)]
    if len(base) == len(records):
        return records, ""
    choice = load_choice(workdir)
    if choice is None:
        return base, "runs without pseudo-labels (round 0): no pseudo-label choice in the workdir"
    by_key = {r.key: r for r in records}
    chosen, stale = [], []
    for run_id, entry in choice.runs.items():
        record = by_key.get(entry["key"])
        if record is None or record.manifest.get("spec_hash") != entry["spec_hash"]:
            stale.append(run_id)
        else:
            chosen.append(record)
    if stale:
        return base, (f"runs without pseudo-labels (round 0): the runs of pseudo-label round {choice.round} "
                      f"changed since ({', '.join(stale)}); run pseudo-label again")
    others = [r for r in base if r.manifest.get("run_id") not in choice.runs]  # runs pseudo-labelling did not use
    keep = {id(r) for r in chosen + others}
    return [r for r in records if id(r) in keep], choice.text()  # in the store's order, as a plain blend reads them


def save_history(workdir: Path, history: list[RoundStats]) -> Path:
    """Write ``pseudo/history.json`` and the round curves ``pseudo/rounds.png``."""
    folder = workdir / "pseudo"
    data = [s.__dict__ for s in history]
    atomic_write_json(folder / "history.json", data)
    plot_rounds(history, folder / "rounds.png")
    return folder / "history.json"


def plot_rounds(history: list[RoundStats], path: Path) -> Path:
    """Score, rows added and pseudo-label precision against round, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [s.round for s in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(rounds, [s.cv_score for s in history], marker="o", label="combined")
    targets = sorted({t for s in history for t in s.cv_per_target})
    for t in targets:
        axes[0].plot(rounds, [s.cv_per_target.get(t, np.nan) for s in history], marker=".", ls="--", label=t)
    axes[0].set(title="CV score (OOF, original labels)", xlabel="round")
    axes[0].legend(fontsize=8)
    for t in targets:
        axes[1].plot(rounds, [sum(s.added.get(t, {}).values()) for s in history], marker="o", label=t)
        axes[2].plot(rounds, [(s.precision.get(t) or {}).get("all") or np.nan for s in history], marker="o", label=t)
    axes[1].set(title="pseudo-labelled rows per fold", xlabel="round")
    axes[2].set(title="pseudo-label precision (truth file)", xlabel="round", ylim=(0, 1.02))
    for ax in axes[1:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def history_json(workdir: Path) -> list[dict]:
    path = workdir / "pseudo" / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []
