"""Feature folders: the memory-mapped cache, frame-level (ragged) and per-frame-folder features."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset
from mer_ensemble.data.features import KEEP_OTHER_ENTRIES, find_feature_files, load_feature
from mer_ensemble.errors import DataError
from mer_ensemble.experiment import data_settings
from tests.conftest import write_config, write_generic


def test_cache_is_memory_mapped_and_same(generic_config: Path, tmp_path: Path):
    cfg = load_config(generic_config)
    first = load_dataset(data_settings(cfg), tmp_path / "wd")
    second = load_dataset(data_settings(cfg), tmp_path / "wd")
    assert isinstance(second.features["fa-UTT"].values, np.memmap)
    assert np.array_equal(first.features["fa-UTT"].values, second.features["fa-UTT"].values)
    assert first.fingerprint == second.fingerprint
    assert list((tmp_path / "wd" / "cache").glob("fa-UTT-*/values.npy"))


def test_frame_level_features_ragged_pooled_and_padded(tmp_path: Path):
    root = write_generic(tmp_path / "d", frame_feature=True)
    cfg = load_config(write_config(tmp_path / "c.yaml", root,
                                   **{"data.features": {"audio": ["fa-UTT"], "video": ["fc-FRA"]}}))
    for _ in range(2):  # second pass reads the cache
        ds = load_dataset(data_settings(cfg), tmp_path / "wd")
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
    ds = load_dataset(data_settings(cfg), tmp_path / "wd")
    assert ds.features["fd"].level == "frame"
    np.testing.assert_allclose(ds.features["fd"].pooled()[0], np.ones(5))


# --- the cache follows the files read -------------------------------------------------------------

def _rewrite_in_place(path: Path, values: np.ndarray) -> None:
    """Overwrite a .npy file's bytes in place (same inode, same size) and restore its mtime."""
    before = path.stat()
    with open(path, "r+b") as handle:
        np.save(handle, values)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns


def test_a_file_changed_in_place_invalidates_the_cache(generic_config: Path, generic_root: Path, tmp_path: Path):
    cfg = load_config(generic_config)
    first = load_dataset(data_settings(cfg), tmp_path / "wd")
    path = generic_root / "features" / "fa-UTT" / "utt0002.npy"
    _rewrite_in_place(path, np.full(8, 7.5, np.float32))
    second = load_dataset(data_settings(cfg), tmp_path / "wd")
    np.testing.assert_array_equal(second.features["fa-UTT"].values[2], np.full(8, 7.5))
    assert first.fingerprint != second.fingerprint
    assert len(list((tmp_path / "wd" / "cache").glob("fa-UTT-*"))) == 1  # replaced, not added
    _rewrite_in_place(path, np.array([np.nan] * 8, np.float32))
    with pytest.raises(DataError, match=r"utt0002.npy: 8 NaN/inf"):
        load_dataset(data_settings(cfg), tmp_path / "wd")


def test_adding_a_frame_to_a_per_frame_folder_invalidates_the_cache(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    folder = root / "features" / "fd"
    names = pd.read_csv(root / "labels.csv")["name"]
    for name in names:
        (folder / name).mkdir(parents=True)
        np.save(folder / name / "000.npy", np.zeros(5, np.float32))
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{"data.features": {"video": ["fd"]}}))
    assert load_dataset(data_settings(cfg), tmp_path / "wd").features["fd"].lengths()[0] == 1
    np.save(folder / names[0] / "001.npy", np.ones(5, np.float32))
    block = load_dataset(data_settings(cfg), tmp_path / "wd").features["fd"]
    assert block.lengths()[0] == 2 and block.pooled()[0, 0] == pytest.approx(0.5)


def test_stale_entries_of_a_feature_are_pruned(generic_root: Path, tmp_path: Path):
    folder = generic_root / "features" / "fa-UTT"
    names = sorted(p.stem for p in folder.glob("*.npy"))
    for k in range(6):  # six different name sets: six entries made, the oldest removed
        load_feature(folder, names[k:], feature="fa-UTT", modality="audio", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("fa-UTT-*"))) == 1 + KEEP_OTHER_ENTRIES


def test_a_damaged_cache_entry_is_rebuilt(generic_config: Path, tmp_path: Path):
    cfg = load_config(generic_config)
    first = load_dataset(data_settings(cfg), tmp_path / "wd")
    for values in (tmp_path / "wd" / "cache").glob("*/values.npy"):
        values.write_bytes(b"\x00" * 10)
    second = load_dataset(data_settings(cfg), tmp_path / "wd")
    assert second.fingerprint == first.fingerprint


# --- shapes: the odd file is named ----------------------------------------------------------------

@pytest.mark.parametrize("odd", ["utt0000", "utt0041"])
def test_a_dimension_mismatch_names_the_odd_file_and_the_common_dimension(tmp_path: Path, odd: str):
    root = write_generic(tmp_path / "d")
    np.save(root / "features" / "fa-UTT" / f"{odd}.npy", np.zeros(9, np.float32))
    cfg = load_config(write_config(tmp_path / "c.yaml", root))
    with pytest.raises(DataError, match=rf"{odd}.npy: shape \(9,\), expected \(8,\) like 109 of the 110 files") as err:
        load_dataset(data_settings(cfg), tmp_path / "wd")
    assert "1 file(s) differ" in str(err.value)


def test_several_odd_files_are_listed_with_a_count(tmp_path: Path):
    root = write_generic(tmp_path / "d", frame_feature=True)
    for i in range(5):
        np.save(root / "features" / "fc-FRA" / f"utt{i:04d}.npy", np.zeros((3, 7), np.float32))
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{"data.features": {"video": ["fc-FRA"]}}))
    with pytest.raises(DataError, match=r"utt0000.npy: shape \(3, 7\), expected \(T, 4\) like 105 of the 110 .*"
                                        r"5 file\(s\) differ: utt0000.npy, utt0001.npy, utt0002.npy \(\+2 more\)"):
        load_dataset(data_settings(cfg), tmp_path / "wd")


# --- the official reader's squeezed shapes --------------------------------------------------------

def test_a_one_frame_clip_and_one_by_d_frames_read_as_the_official_reader(tmp_path: Path):
    root = write_generic(tmp_path / "d", frame_feature=True)
    np.save(root / "features" / "fc-FRA" / "utt0003.npy", np.arange(4, dtype=np.float32))  # (D,) = one frame
    folder = root / "features" / "fe-FRA"
    for name in pd.read_csv(root / "labels.csv")["name"]:
        (folder / name).mkdir(parents=True)
        for k in range(2):
            np.save(folder / name / f"{k:03d}.npy", np.full((1, 3), k, np.float32))  # (1, D) per frame
    features = {"video": ["fc-FRA"], "face": ["fe-FRA"]}
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{"data.features": features}))
    ds = load_dataset(data_settings(cfg), tmp_path / "wd")
    clip = ds.features["fc-FRA"]
    assert clip.lengths()[3] == 1 and clip.pooled()[3].tolist() == [0, 1, 2, 3]
    faces = ds.features["fe-FRA"]
    assert faces.dim == 3 and (faces.lengths() == 2).all()
    np.testing.assert_allclose(faces.pooled()[0], [0.5, 0.5, 0.5])


# --- broken files: one line naming the file, never advice to unpickle -----------------------------

@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\x80\x04\x95garbage-that-is-not-an-array" * 4, "not a valid .npy file"),
])
@pytest.mark.parametrize("per_frame", [False, True])
def test_a_broken_feature_file_is_named(tmp_path: Path, content: bytes, message: str, per_frame: bool):
    root = write_generic(tmp_path / "d")
    if per_frame:
        folder = root / "features" / "fd"
        for name in pd.read_csv(root / "labels.csv")["name"]:
            (folder / name).mkdir(parents=True)
            np.save(folder / name / "000.npy", np.zeros(5, np.float32))
        broken = folder / "utt0007" / "000.npy"
        features = {"video": ["fd"]}
    else:
        broken, features = root / "features" / "fa-UTT" / "utt0007.npy", {"audio": ["fa-UTT"]}
    broken.write_bytes(content)
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{"data.features": features}))
    with pytest.raises(DataError, match=message) as err:
        load_dataset(data_settings(cfg), tmp_path / "wd")
    assert str(broken) in str(err.value) and "pickle" not in str(err.value)


def test_several_feature_roots_are_searched_in_order(tmp_path: Path):
    root = write_generic(tmp_path / "d")
    other = tmp_path / "other"
    moved = root / "features" / "fa-UTT"
    (other / "fa-UTT").mkdir(parents=True)
    for path in sorted(moved.glob("*.npy"))[::2]:
        path.rename(other / "fa-UTT" / path.name)
    files = find_feature_files([moved, other / "fa-UTT"], ["utt0000", "utt0001"], "fa-UTT")
    assert files.paths == [str(other / "fa-UTT" / "utt0000.npy"), str(moved / "utt0001.npy")]
    with pytest.raises(DataError, match=r"1 of 1 names have no file in .*fa-UTT.*\(first: 'nobody'"):
        load_feature([moved, other / "fa-UTT"], ["nobody"], feature="fa-UTT", modality="audio")
