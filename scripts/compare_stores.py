"""Compare two workdirs' prediction stores and two submission files: is the behaviour unchanged?

Run ``train-all`` and ``blend`` on the same config and data with the code before and after a
change, each into its own workdir, then::

    python scripts/compare_stores.py BEFORE_WORKDIR AFTER_WORKDIR [--submissions A.csv B.csv]

Prints one row per run: the arrays compared and the largest absolute difference over all of
them (0.0 means identical to the bit for every float array), and whether the submissions are
the same bytes. Exits 1 when a run, an array, a shape or a submission byte differs. The job
digest (and so the folder under ``jobs/``) includes the package version and the manifests
include timestamps, so only the store arrays and the submission are compared.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference of two same-shape arrays (inf when they differ otherwise)."""
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return float("inf")
    if a.dtype.kind in "fiub":
        if a.size == 0:
            return 0.0
        return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return 0.0 if np.array_equal(a, b) else float("inf")


def compare_stores(before: Path, after: Path) -> tuple[list[tuple[str, int, float]], list[str]]:
    """Per run ``(key, arrays compared, max |diff|)`` and the problems (missing runs or arrays)."""
    problems: list[str] = []
    keys_a = sorted(p.stem for p in (before / "store").glob("*.npz"))
    keys_b = sorted(p.stem for p in (after / "store").glob("*.npz"))
    if not keys_a:
        problems.append(f"{before / 'store'}: no stored run")
    for key in sorted(set(keys_a) ^ set(keys_b)):
        problems.append(f"run {key}: only in {'before' if key in keys_a else 'after'}")
    rows = []
    for key in sorted(set(keys_a) & set(keys_b)):
        a, b = _arrays(before / "store" / f"{key}.npz"), _arrays(after / "store" / f"{key}.npz")
        for name in sorted(set(a) ^ set(b)):
            problems.append(f"run {key}: array {name} only in {'before' if name in a else 'after'}")
        worst = max((_max_diff(a[n], b[n]) for n in set(a) & set(b)), default=0.0)
        rows.append((key, len(set(a) & set(b)), worst))
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="workdir of the run before the change")
    parser.add_argument("after", type=Path, help="workdir of the run after the change")
    parser.add_argument("--submissions", nargs=2, type=Path, metavar=("BEFORE_CSV", "AFTER_CSV"),
                        help="submission files to compare byte for byte")
    args = parser.parse_args(argv)
    rows, problems = compare_stores(args.before, args.after)
    print(f"{'run':<24} {'arrays':>6} {'max |diff|':>12}")
    for key, n, worst in rows:
        print(f"{key:<24} {n:>6} {worst:>12.3g}")
        if worst != 0.0:
            problems.append(f"run {key}: arrays differ (max |diff| {worst:.3g})")
    overall = max((w for _, _, w in rows), default=0.0)
    print(f"{'all runs':<24} {sum(n for _, n, _ in rows):>6} {overall:>12.3g}")
    if args.submissions:
        first, second = args.submissions
        same = first.read_bytes() == second.read_bytes()
        print(f"submission bytes: {'identical' if same else 'DIFFERENT'} ({first} vs {second})")
        if not same:
            problems.append("the submissions differ")
    for problem in problems:
        print(f"difference: {problem}")
    print("unchanged" if not problems else f"{len(problems)} difference(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
