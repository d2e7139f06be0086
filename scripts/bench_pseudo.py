"""Benchmark: pseudo-labelling rounds on real data (MELD: 2,000 labelled + 1,109 dev, 7,989 pool, 2,610 test).

For round 0 (no pseudo-labels) and each round after it, the runs of that round are blended
(mean of probabilities and greedy selection; chosen by nested CV) and scored on the test split
against truth.csv — the truth is read here only, never by training. Prints per round: honest
CV estimate (soft vote OOF and nested blend estimate), test joint score, pseudo-label
precision against the pool truth, rows added and seconds.

    python scripts/bench_pseudo.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MER_NO_PROGRESS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from mer_ensemble.blend import blend_runs  # noqa: E402
from mer_ensemble.config import load_config  # noqa: E402
from mer_ensemble.data import load_dataset  # noqa: E402
from mer_ensemble.experiment import Experiment, data_settings  # noqa: E402
from mer_ensemble.pseudo import run_pseudo_rounds  # noqa: E402
from mer_ensemble.store import load_run  # noqa: E402
from mer_ensemble.submission import read_truth  # noqa: E402

MODELS = (
    "models=[{name: linear, id: linear, params: {C: 0.5}}, "
    "{name: mlp, id: mlp, params: {hidden: 256, dropout: 0.3, epochs: 60}}, "
    "{name: mlp, id: mlp_bal, params: {hidden: 256, dropout: 0.3, epochs: 60, class_weight: balanced}}]"
)


def _test_scores(cfg, ds, keys: list[str], workdir: Path, truth_names, truth) -> tuple[float, float, dict]:
    records = [load_run(workdir, k) for k in keys]
    result = blend_runs(Experiment.open(cfg, workdir, dataset=ds), records, methods=["mean", "greedy"])
    names = ds.names[ds.test_rows]
    index = {n: i for i, n in enumerate(truth_names)}
    order = np.array([index[n] for n in names])
    per_target = {
        t: ds.task.target(t).score(truth[t][order], tb.test_proba.argmax(1)) for t, tb in result.targets.items()
    }
    return result.combined_nested, ds.task.combined(per_target), per_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "meld.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--max-per-class", type=float, default=0.5)
    parser.add_argument("--workdir", default="runs/bench-pseudo")
    parser.add_argument("--threads", type=int, default=1, help="threads per training job")
    args = parser.parse_args()
    overrides = [
        MODELS,
        f"pseudo.threshold={args.threshold}",
        f"pseudo.max_per_class={args.max_per_class}",
        f"pseudo.rounds={args.rounds}",
        f"pseudo.patience={args.rounds}",
        "blend.params.optuna.n_trials=50",
        f"train.threads={args.threads}",
    ]
    cfg = load_config(args.config, overrides)
    workdir = Path(args.workdir)
    ds = load_dataset(data_settings(cfg), workdir)
    start = time.perf_counter()
    history = run_pseudo_rounds(Experiment.open(cfg, workdir, dataset=ds), echo=lambda s: print(s, flush=True))
    total = time.perf_counter() - start
    truth_targets, truth_names = read_truth(cfg.resolve_path(cfg.truth["test"]), ds.task)
    print()
    targets = ds.task.target_names
    print(
        "| round | CV soft vote (OOF) | blend nested CV | test joint | "
        + " | ".join(f"test {t}" for t in targets)
        + " | rows added / fold | precision "
        + " / ".join(targets)
        + " | seconds |"
    )
    print("|---:|---:|---:|---:|" + "---:|" * len(targets) + "---:|---:|---:|")
    for stats in history:
        nested, joint, per_target = _test_scores(cfg, ds, stats.runs, workdir, truth_names, truth_targets)
        added = sum(sum(a.values()) for a in stats.added.values()) if stats.added else 0
        prec = (
            " / ".join(f"{(stats.precision.get(t) or {}).get('all') or 0:.3f}" for t in targets) if stats.round else "—"
        )
        print(
            f"| {stats.round} | {stats.cv_score:.4f} | {nested:.4f} | {joint:.4f} | "
            + " | ".join(f"{per_target[t]:.4f}" for t in targets)
            + f" | {added:.0f} | {prec} | {stats.seconds:.0f} |"
        )
    print(f"\ntotal {total:.0f}s; rows added counts all targets' labels per fold (mean over folds)")


if __name__ == "__main__":
    main()
