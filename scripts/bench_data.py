"""Benchmark: loading features from thousands of small .npy files vs the memory-mapped cache.

Prints a table: first load (validates and reads every file, writes the cache) against
a second load of the same data (memory-maps one contiguous array per feature), in one run,
and the part of the second load spent on the cache key (one ``scandir`` per feature
folder plus one ``stat`` per file: size, mtime, ctime and inode of everything read).

    python scripts/bench_data.py                      # MELD from ../shared/data + synthetic MER2024 scale
    python scripts/bench_data.py --n 26199 --dims 1024,768,5120
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MER_NO_PROGRESS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mer_ensemble.config import load_config  # noqa: E402
from mer_ensemble.data import load_dataset  # noqa: E402
from mer_ensemble.data.features import find_feature_files  # noqa: E402
from mer_ensemble.experiment import data_settings  # noqa: E402


def _time_key(cfg, names) -> float:
    """Seconds to look up and stat every file of every feature (the cache key of a hit)."""
    roots = data_settings(cfg).search_roots()
    start = time.perf_counter()
    for features in cfg.data.features.values():
        for feature in features:
            find_feature_files([r / feature for r in roots], names, feature)
    return time.perf_counter() - start


def _time_loads(cfg, workdir: Path) -> tuple[float, float, float, int]:
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    first = load_dataset(data_settings(cfg), workdir)
    t_first = time.perf_counter() - start
    start = time.perf_counter()
    second = load_dataset(data_settings(cfg), workdir)
    for block in second.features.values():
        block.pooled().sum()  # touch every number once
    t_second = time.perf_counter() - start
    assert first.fingerprint == second.fingerprint
    n_files = first.n_rows * len(first.features)
    t_key = min(_time_key(cfg, list(first.names)) for _ in range(3))
    return t_first, t_second, t_key, n_files


def _synthetic(root: Path, n: int, dims: list[int]) -> Path:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    names = [f"sample_{i:08d}" for i in range(n)]
    n_train, n_test = int(n * 0.19), int(n * 0.045)
    classes = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    root.mkdir(parents=True)
    pd.DataFrame({"name": names[:n_train], "discrete": rng.choice(classes, n_train)}).to_csv(
        root / "label-disdim.csv", index=False
    )
    pd.DataFrame({"name": names[n_train : n_train + n_test]}).to_csv(root / "test-names.csv", index=False)
    pd.DataFrame({"name": names[n_train + n_test :]}).to_csv(root / "pool-names.csv", index=False)
    feats = {}
    for i, d in enumerate(dims):
        folder = root / "features" / f"feat{i}-UTT"
        folder.mkdir(parents=True)
        for name in names:
            np.save(folder / f"{name}.npy", rng.standard_normal(d, dtype=np.float32))
        feats[f"m{i}"] = [f"feat{i}-UTT"]
    cfg = root / "c.yaml"
    import yaml

    cfg.write_text(
        yaml.safe_dump({"task": "mer2024-semi", "data": {"layout": "mer2024", "root": str(root), "features": feats}})
    )
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=26199, help="synthetic rows (MER2024: 5,030 + 20,000 + 1,169)")
    parser.add_argument("--dims", default="1024,768,5120", help="synthetic feature dims")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        meld = REPO.parent / "shared" / "data" / "meld"
        if meld.is_dir():
            rows.append(
                ("MELD minilm-UTT (384)", *_time_loads(load_config(REPO / "configs" / "meld.yaml"), tmp / "wd1"))
            )
        if not args.skip_synthetic:
            dims = [int(d) for d in args.dims.split(",")]
            cfg_path = _synthetic(tmp / "syn", args.n, dims)
            os.sync()
            rows.append(
                (
                    f"synthetic {args.n} rows x {'/'.join(map(str, dims))}",
                    *_time_loads(load_config(cfg_path), tmp / "wd2"),
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| data | files | first load (files → cache) s | second load (memory-mapped cache) s | speed-up "
          "| of which cache key (scandir + stat per file) s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, first, second, key, n_files in rows:
        print(f"| {name} | {n_files:,} | {first:.2f} | {second:.3f} | {first / second:.0f}x | {key:.3f} |")


if __name__ == "__main__":
    main()
