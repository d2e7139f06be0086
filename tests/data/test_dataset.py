"""The in-memory dataset (data/dataset.py): rows by split, labelled rows, ragged frame storage."""

from __future__ import annotations

import numpy as np

from mer_ensemble.data import Dataset, FeatureBlock, Frames
from mer_ensemble.tasks import resolve_task


def _ragged() -> FeatureBlock:
    """Three rows of 2-d frames: 1, 3 and 5 frames, frame t of row i holding (i, t)."""
    lengths = [1, 3, 5]
    values = np.array([[i, t] for i, n in enumerate(lengths) for t in range(n)], dtype=np.float32)
    return FeatureBlock("f-FRA", "audio", "frame", values, offsets=np.cumsum([0, *lengths]))


def test_frame_level_block_pools_pads_and_subsamples():
    block = _ragged()
    assert block.n_rows == 3 and block.dim == 2 and block.lengths().tolist() == [1, 3, 5]
    np.testing.assert_allclose(block.pooled(), [[0, 0], [1, 1], [2, 2]])
    frames = block.frames([2, 0])
    assert frames.x.shape == (2, 5, 2) and frames.lengths.tolist() == [5, 1]
    assert (frames.x[1, 1:] == 0).all(), "zero past a row's length"
    short = block.frames([2], max_len=3)
    assert short.lengths.tolist() == [3] and short.x[0, :, 1].tolist() == [0, 2, 4], "evenly subsampled"
    np.testing.assert_allclose(frames.pooled(), [[2, 2], [0, 0]])
    assert frames.mask.tolist() == [[True] * 5, [True, False, False, False, False]]


def test_utterance_block_frames_are_one_step():
    block = FeatureBlock("u-UTT", "text", "utt", np.arange(6, dtype=np.float32).reshape(3, 2))
    assert block.pooled() is block.values and block.lengths().tolist() == [1, 1, 1]
    frames = block.frames([1])
    assert isinstance(frames, Frames) and frames.x.shape == (1, 1, 2) and frames.x[0, 0].tolist() == [2, 3]


def test_rows_by_split_and_labelled_rows():
    task = resolve_task("generic", targets=["emotion", "intent"], classes={},
                        observed={"emotion": ["a", "b"], "intent": ["x", "y"]})
    split = np.array(["train", "train", "dev", "test", "unlabeled", "train"], dtype=object)
    labels = {"emotion": np.array([0, -1, 1, -1, -1, -1]), "intent": np.array([-1, 1, -1, -1, -1, -1])}
    ds = Dataset(names=np.array(list("abcdef"), dtype=object), split=split, labels=labels, features={},
                 modalities={}, task=task)
    assert ds.labelled_rows.tolist() == [0, 1, 2], "a row with one known target trains; f has none"
    assert ds.test_rows.tolist() == [3] and ds.pool_rows.tolist() == [4] and ds.rows("train", "dev").tolist() == [
        0, 1, 2, 5]
    only_train = Dataset(names=ds.names, split=split, labels=labels, features={}, modalities={}, task=task,
                         train_splits=("train",))
    assert only_train.labelled_rows.tolist() == [0, 1]
    assert ds.raw == {} and ds.raw_digests == {}, "no raw input unless the data has one"
