"""Feature folders: the memory-mapped cache, frame-level (ragged) and per-frame-folder features."""

from pathlib import Path

import numpy as np
import pandas as pd

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset
from tests.conftest import write_config, write_generic


def test_cache_is_memory_mapped_and_same(generic_config: Path, tmp_path: Path):
    cfg = load_config(generic_config)
    first = load_dataset(cfg, tmp_path / "wd")
    second = load_dataset(cfg, tmp_path / "wd")
    assert isinstance(second.features["fa-UTT"].values, np.memmap)
    assert np.array_equal(first.features["fa-UTT"].values, second.features["fa-UTT"].values)
    assert first.fingerprint == second.fingerprint
    assert list((tmp_path / "wd" / "cache").glob("fa-UTT-*/values.npy"))


def test_frame_level_features_ragged_pooled_and_padded(tmp_path: Path):
    root = write_generic(tmp_path / "d", frame_feature=True)
    cfg = load_config(write_config(tmp_path / "c.yaml", root,
                                   **{"data.features": {"audio": ["fa-UTT"], "video": ["fc-FRA"]}}))
    for _ in range(2):  # second pass reads the cache
        ds = load_dataset(cfg, tmp_path / "wd")
        block = ds.features["fc-FRA"]
        assert block.level == "frame" and block.dim == 4
        first = np.load(root / "features" / "fc-FRA" / "utt0000.npy")
        np.testing.assert_allclose(block.pooled()[0], first.mean(0), rtol=1e-5)
        frames = block.frames(np.array([0, 1]), max_len=3)
        assert frames.x.shape[1] <= 3 and frames.mask.shape == frames.x.shape[:2]
        assert frames.lengths[0] == min(len(first), 3)


def test_per_frame_folder_feature(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    folder = root / "features" / "fd"
    for name in pd.read_csv(root / "labels.csv")["name"]:
        (folder / name).mkdir(parents=True)
        for k in range(3):
            np.save(folder / name / f"{k:03d}.npy", np.full(5, k, np.float32))
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{"data.features": {"video": ["fd"]}}))
    ds = load_dataset(cfg, tmp_path / "wd")
    assert ds.features["fd"].level == "frame"
    np.testing.assert_allclose(ds.features["fd"].pooled()[0], np.ones(5))
