from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset, load_or_make_folds, make_folds
from mer_ensemble.errors import DataError
from mer_ensemble.experiment import data_settings
from tests.conftest import write_config, write_generic


@pytest.fixture
def ds(generic_config: Path):
    return load_dataset(data_settings(load_config(generic_config)), None)


def test_folds_cover_labelled_rows_once_and_keep_groups(ds):
    folds = make_folds(ds, 3, seed=0)
    assert sorted(folds.rows) == sorted(ds.labelled_rows)
    assert set(folds.fold) == {0, 1, 2}
    groups = ds.groups[folds.rows]
    for g in set(groups):
        assert len(set(folds.fold[groups == g])) == 1, f"group {g} spans folds"
    for k in range(3):
        train, valid = folds.split(k)
        assert not set(train) & set(valid)


def test_folds_stratify_without_groups(tmp_path: Path):
    root = write_generic(tmp_path / "d", n_train=300)
    cfg = load_config(write_config(tmp_path / "c.yaml", root, **{"data.group_by": None}))
    ds = load_dataset(data_settings(cfg), None)
    folds = make_folds(ds, 5, seed=1)
    y = ds.labels["emotion"][folds.rows]
    overall = np.bincount(y) / len(y)
    for k in range(5):
        share = np.bincount(y[folds.fold == k], minlength=3) / (folds.fold == k).sum()
        assert np.abs(share - overall).max() < 0.05


def test_folds_are_stable_and_written_once(ds, tmp_path: Path):
    a = load_or_make_folds(ds, tmp_path / "wd", 3, 0)
    b = load_or_make_folds(ds, tmp_path / "wd", 3, 0)
    assert a.hash == b.hash and np.array_equal(a.fold, b.fold)
    assert make_folds(ds, 3, 0).hash == a.hash
    assert make_folds(ds, 3, 1).hash != a.hash
    assert (tmp_path / "wd" / "folds.csv").is_file()
    with pytest.raises(DataError, match="has 3 folds but cv.folds is 4"):
        load_or_make_folds(ds, tmp_path / "wd", 4, 0)


def test_folds_refused_for_other_data(ds, tmp_path: Path):
    load_or_make_folds(ds, tmp_path / "wd", 3, 0)
    ds.split[ds.labelled_rows[:5]] = "unlabeled"
    with pytest.raises(DataError, match="different labelled set"):
        load_or_make_folds(ds, tmp_path / "wd", 3, 0)


def test_too_few_groups(ds):
    with pytest.raises(DataError, match="groups"):
        make_folds(ds, 50, 0)


def test_stored_folds_checked_against_their_settings_and_hash(ds, tmp_path: Path):
    wd = tmp_path / "wd"
    folds = load_or_make_folds(ds, wd, 3, 0)
    assert folds.path == str(wd / "folds.csv")
    with pytest.raises(DataError, match=r"cv.fold_seed 0 then, 1 now"):
        load_or_make_folds(ds, wd, 3, 1)
    # an edited assignment (two rows swap folds) no longer has the recorded hash
    lines = (wd / "folds.csv").read_text().splitlines()
    first = next(i for i in range(2, len(lines)) if lines[i].split(",")[1] != lines[1].split(",")[1])
    name1, k1 = lines[1].split(",")
    name2, k2 = lines[first].split(",")
    lines[1], lines[first] = f"{name1},{k2}", f"{name2},{k1}"
    (wd / "folds.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="edited since it was written"):
        load_or_make_folds(ds, wd, 3, 0)


def test_a_job_verifies_the_folds_it_was_planned_with(ds, tmp_path: Path):
    from mer_ensemble.data import read_folds

    folds = load_or_make_folds(ds, tmp_path / "wd", 3, 0)
    assert read_folds(Path(folds.path), ds, expected_hash=folds.hash).hash == folds.hash
    with pytest.raises(DataError, match="planned with folds deadbeef"):
        read_folds(Path(folds.path), ds, expected_hash="deadbeef")
