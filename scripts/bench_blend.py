"""Blending benchmarks, printed as tables (results go to docs/benchmarks.md).

Part ``speed`` (issue 4): wall time of the search blenders on synthetic out-of-fold
probabilities of ``--runs`` runs × ``--rows`` rows × ``--classes`` classes (default
30 × 10,000 × 7, the size of a large MEIJU emotion ensemble):

* greedy selection (25 steps, vectorised scoring), against the same algorithm calling
  scikit-learn's ``f1_score`` once per candidate (the usual implementation);
* Optuna weights, 500 trials: multivariate TPE (default), random sampling, and TPE
  with a SQLite or a journal-file storage (resumable);
* stacking (logistic regression, 5 folds + refit), for scale;
* one vectorised weighted-F1 call on 30 candidates against 30 scikit-learn calls.

Each timing is the best of ``--repeats`` runs (the machine may be shared).

    python scripts/bench_blend.py --part speed
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import Parts, markdown_table  # noqa: E402

PARTS = Parts()
part = PARTS


print_table = markdown_table


# ---------------------------------------------------------------------------------------------
# part "speed"


def synthetic_probas(
    n_runs: int, n_rows: int, n_classes: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of varied quality with shared errors: probas ``(R, n, C)``, labels ``(n,)``, 5 folds ``(n,)``.

    Each run's logits are ``strength_r · (onehot(y) + hard)`` plus the run's own noise, where
    ``hard`` ``(n, C)`` is shared by all runs (the rows every model gets wrong, scaled like
    the signal so no linear mix of runs cancels it); strengths range 0.5 – 2.5.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    onehot = np.eye(n_classes)[y]
    hard = 0.8 * rng.normal(size=(n_rows, n_classes))
    strengths = np.linspace(0.5, 2.5, n_runs)
    logits = strengths[:, None, None] * (onehot + hard)[None] + rng.normal(size=(n_runs, n_rows, n_classes))
    logits -= logits.max(axis=2, keepdims=True)
    probas = np.exp(logits)
    probas /= probas.sum(axis=2, keepdims=True)
    return probas, y, np.arange(n_rows) % 5


def greedy_with_sklearn(probas: np.ndarray, y: np.ndarray, steps: int = 25) -> np.ndarray:
    """Caruana greedy selection calling scikit-learn's weighted F1 per candidate; returns weights ``(R,)``."""
    from sklearn.metrics import f1_score

    running = np.zeros(probas.shape[1:])
    counts = np.zeros(probas.shape[0])
    best_counts, best_score = counts.copy(), -np.inf
    for _ in range(steps):
        scores = [f1_score(y, (running + run).argmax(axis=1), average="weighted") for run in probas]
        pick = int(np.argmax(scores))
        running += probas[pick]
        counts[pick] += 1
        if scores[pick] > best_score:
            best_score, best_counts = scores[pick], counts.copy()
    return best_counts / best_counts.sum()


def fit_optuna(probas: np.ndarray, y: np.ndarray, **params: Any) -> Any:
    """A fitted :class:`~mer_ensemble.ensemble.OptunaWeightsBlender` with ``params``."""
    from mer_ensemble.ensemble import OptunaWeightsBlender

    return OptunaWeightsBlender(**params).fit(probas, y)


def best_time(func: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Smallest wall time and smallest CPU time of this process over ``repeats`` calls, and the last result.

    CPU time is the steadier number on a shared machine: it leaves out the time spent
    waiting for a core, though not the time spent waiting on disk.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = func()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return min(walls), min(cpus), result


@part("speed")
def speed(args: argparse.Namespace) -> None:
    from sklearn.metrics import f1_score

    from mer_ensemble.ensemble import GreedyBlender, StackingBlender, batch_scorer
    from mer_ensemble.metrics import weighted_f1

    probas, y, folds = synthetic_probas(args.runs, args.rows, args.classes, args.seed)
    shape = f"{args.runs} runs × {args.rows:,} rows × {args.classes} classes"
    rows: list[list[Any]] = []

    def add(name: str, timing: tuple[float, float, Any], note: str = "", scored: bool = True) -> Any:
        wall, cpu, blender = timing
        score = f"{weighted_f1(y, blender.predict(probas)):.4f}" if scored else ""
        rows.append([name, f"{wall:.2f}", f"{cpu:.2f}", score, note])
        print(f"  {name}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
        return blender

    greedy = add(
        "greedy, 25 steps (vectorised F1)", best_time(lambda: GreedyBlender(steps=25).fit(probas, y), args.repeats)
    )
    rows[-1][-1] = f"{len(greedy.picks_)} picks kept"
    add(
        "greedy, 25 steps (sklearn f1_score per candidate)",
        best_time(lambda: greedy_with_sklearn(probas, y), 1),
        "reference loop, 1 run",
        scored=False,
    )
    for sampler in ("tpe", "random"):
        fit = partial(fit_optuna, probas, y, n_trials=args.trials, sampler=sampler)
        add(f"optuna, {args.trials} trials, {sampler}, in memory", best_time(fit, args.repeats))
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'bench.db'}"
        fit = partial(fit_optuna, probas, y, n_trials=args.trials, storage=storage, study_name="bench")
        add(
            f"optuna, {args.trials} trials, tpe, SQLite storage",
            best_time(fit, 1),
            "1 run; trials written in one batch",
        )
        fit = partial(fit_optuna, probas, y, n_trials=args.trials, storage=str(Path(tmp) / "bench.log"))
        add(
            f"optuna, {args.trials} trials, tpe, journal file storage",
            best_time(fit, 1),
            "1 run; trials written in one batch",
        )
    stack = add(
        "stacking, logreg, 5 folds + refit", best_time(lambda: StackingBlender().fit(probas, y, folds=folds), 1)
    )
    rows[-1][-1] = f"1 run; its own OOF score {stack.oof_score_:.4f}"

    candidates = probas.argmax(axis=2)
    score_batch = batch_scorer(weighted_f1, args.classes)
    ours = best_time(lambda: score_batch(y, candidates), max(args.repeats, 5))
    theirs = best_time(lambda: [f1_score(y, p, average="weighted") for p in candidates], args.repeats)
    rows.append(
        [
            f"weighted F1 of {args.runs} candidates: vectorised / sklearn",
            f"{ours[0]:.4f} / {theirs[0]:.4f}",
            f"{ours[1]:.4f} / {theirs[1]:.4f}",
            "",
            "",
        ]
    )
    header = ["step", "wall s", "CPU s", "weighted F1 (in-sample)", "note"]
    print_table(f"Blender speed, {shape}", header, rows)
    print(f"\n{os.cpu_count()} CPU cores; 1-minute load average at the end: {os.getloadavg()[0]:.1f}")


@part("real")
def real(args: argparse.Namespace) -> None:
    """Test score of the best single run vs each blender on emodb and meld, next to in-sample and nested CV.

    Needs the runs of ``scripts/bench_train.py --part real`` (workdir ``runs/bench-real/<name>``). The
    truth files are read here only, to score the test predictions.
    """
    import sys

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from mer_ensemble.blend import blend_runs
    from mer_ensemble.config import load_config
    from mer_ensemble.data import load_dataset
    from mer_ensemble.experiment import Experiment, data_settings
    from mer_ensemble.store import load_runs
    from mer_ensemble.submission import read_truth

    for name in args.datasets.split(","):
        cfg = load_config(repo / "configs" / f"{name}.yaml", [f"blend.params.optuna.n_trials={args.trials}"])
        workdir = Path(args.workdir) / name
        records = load_runs(workdir)
        if not records:
            print(f"{name}: no runs in {workdir}; run scripts/bench_train.py --part real first")
            continue
        ds = load_dataset(data_settings(cfg), workdir)
        truth, names = read_truth(cfg.resolve_path(cfg.truth["test"]), ds.task)
        order = {n: i for i, n in enumerate(names)}
        idx = np.array([order[n] for n in ds.names[ds.test_rows]])
        start = time.perf_counter()
        result = blend_runs(Experiment.open(cfg, workdir, dataset=ds), records)
        seconds = time.perf_counter() - start
        rows = []
        test_by_method: dict[str, dict[str, float]] = {}
        for target, tb in result.targets.items():
            spec = ds.task.target(target)
            for m in tb.methods:
                score = spec.score(truth[target][idx], tb.test_by_method[m.method].argmax(1))
                test_by_method.setdefault(m.method, {})[target] = score
                rows.append([target, m.method, f"{m.in_sample:.4f}", f"{m.nested:.4f}", f"{score:.4f}",
                             "◀" if m.method == tb.chosen else ""])
        if len(ds.task.targets) > 1:
            for method, scores in test_by_method.items():
                nested = {t: next(m.nested for m in tb.methods if m.method == method)
                          for t, tb in result.targets.items()}
                ins = {t: next(m.in_sample for m in tb.methods if m.method == method)
                       for t, tb in result.targets.items()}
                rows.append(["joint", method, f"{ds.task.combined(ins):.4f}", f"{ds.task.combined(nested):.4f}",
                             f"{ds.task.combined(scores):.4f}", ""])
        print_table(f"{name}: {len(records)} runs, blend {seconds:.0f}s (in-sample and nested are CV estimates on "
                    "OOF rows; test is the truth file)",
                    ["target", "method", "in-sample", "nested", "test", "chosen"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), default="speed")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default="emodb,meld", help="real part: configs whose runs to blend")
    parser.add_argument("--workdir", default="runs/bench-real", help="real part: workdir root of the runs")
    args = parser.parse_args(argv)
    PARTS[args.part](args)


if __name__ == "__main__":
    main()
