"""The in-memory dataset every step reads: names, splits, labels, features, groups.

Shapes: ``n`` is the number of rows (all splits together). Labels are integer
class indices into the task's class list, ``-1`` where unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from mer_ensemble.tasks import TaskSpec

__all__ = ["Dataset", "FeatureBlock", "Frames", "SPLITS"]

SPLITS = ("train", "dev", "unlabeled", "test")


class Frames(NamedTuple):
    """Padded frame-level input for models that read sequences.

    ``x``: ``(n, T, D)`` float32, zero past each row's length; ``lengths``: ``(n,)`` int64 (≥ 1).
    """

    x: np.ndarray
    lengths: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``(n, T)`` bool, True on real frames."""
        return np.arange(self.x.shape[1])[None, :] < self.lengths[:, None]

    def pooled(self) -> np.ndarray:
        """Mean over the real frames, ``(n, D)``."""
        total = self.x.sum(axis=1)
        return (total / np.maximum(self.lengths, 1)[:, None]).astype(np.float32)


@dataclass
class FeatureBlock:
    """One feature folder, for every row of the dataset.

    Utterance level (``level == "utt"``): ``values`` is ``(n, D)``.
    Frame level (``level == "frame"``): ``values`` is ``(total_frames, D)`` with
    row ``i``'s frames at ``values[offsets[i]:offsets[i + 1]]`` (ragged storage).
    """

    name: str
    modality: str
    level: str
    values: np.ndarray
    offsets: np.ndarray | None = None
    _pooled: np.ndarray | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0]) if self.level == "utt" else int(len(self.offsets) - 1)

    def lengths(self) -> np.ndarray:
        """Frames per row, ``(n,)`` (all 1 for utterance level)."""
        if self.level == "utt":
            return np.ones(self.n_rows, dtype=np.int64)
        return np.diff(self.offsets).astype(np.int64)

    def pooled(self) -> np.ndarray:
        """Utterance-level matrix ``(n, D)``: frame level is mean-pooled over time (cached)."""
        if self.level == "utt":
            return self.values
        if self._pooled is None:
            sums = np.add.reduceat(np.asarray(self.values, dtype=np.float64), self.offsets[:-1], axis=0)
            self._pooled = (sums / np.maximum(self.lengths(), 1)[:, None]).astype(np.float32)
        return self._pooled

    def frames(self, rows: Sequence[int] | np.ndarray, max_len: int | None = None) -> Frames:
        """Padded frames of ``rows``; sequences longer than ``max_len`` are evenly subsampled."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.level == "utt":
            return Frames(np.asarray(self.values[rows], dtype=np.float32)[:, None, :], np.ones(len(rows), np.int64))
        lens = self.lengths()[rows]
        t_max = int(lens.max()) if len(rows) else 1
        if max_len is not None:
            t_max = min(t_max, max_len)
        out = np.zeros((len(rows), max(t_max, 1), self.dim), dtype=np.float32)
        new_lens = np.minimum(lens, t_max)
        for j, (r, n_frames) in enumerate(zip(rows, lens, strict=False)):
            seq = self.values[self.offsets[r] : self.offsets[r + 1]]
            if n_frames > t_max:
                seq = seq[np.linspace(0, n_frames - 1, t_max).round().astype(np.int64)]
            out[j, : len(seq)] = seq
        return Frames(out, new_lens.astype(np.int64))


@dataclass
class Dataset:
    """Everything a run needs about the data, read once from a competition layout.

    ``names`` ``(n,)`` str; ``split`` ``(n,)`` str in :data:`SPLITS`; ``labels[target]``
    ``(n,)`` int64 (``-1`` unknown); ``features[name]`` a :class:`FeatureBlock`;
    ``modalities[modality]`` the feature names of that modality; ``groups`` ``(n,)``
    str or None; ``fingerprint`` a hash of names, splits, labels and feature content;
    ``candidates`` ``(n,)`` bool or None: rows on an optional candidate name list
    (MER2024's list of names the test set hides among); ``variants[feature]`` noisy
    variants of a feature (``data.noise_variants``), each a block of the same rows and dim;
    ``raw[kind]`` the raw inputs beside the features (:mod:`mer_ensemble.data.raw`): ``"text"``
    ``(n,)`` object array of str, ``"audio"`` ``(n,)`` object array of absolute audio file paths,
    None where a row has none, only the kinds the data has; ``raw_digests[kind]`` a hash of each
    (it keys the jobs of the runs that read it).
    """

    names: np.ndarray
    split: np.ndarray
    labels: dict[str, np.ndarray]
    features: dict[str, FeatureBlock]
    modalities: dict[str, list[str]]
    task: TaskSpec
    groups: np.ndarray | None = None
    fingerprint: str = ""
    root: str = ""
    train_splits: tuple[str, ...] = ("train", "dev")
    candidates: np.ndarray | None = None
    variants: dict[str, list[FeatureBlock]] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    raw_digests: dict[str, str] = field(default_factory=dict)
    #: what loading changed, for ``check`` to print (e.g. pool rows dropped without a feature file)
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return int(len(self.names))

    def rows(self, *splits: str) -> np.ndarray:
        """Indices of the rows in any of ``splits``, ``(m,)`` int64."""
        return np.flatnonzero(np.isin(self.split, splits)).astype(np.int64)

    @property
    def labelled_rows(self) -> np.ndarray:
        """Rows used for k-fold training: the train splits with at least one known label."""
        rows = self.rows(*self.train_splits)
        known = np.zeros(self.n_rows, dtype=bool)
        for y in self.labels.values():
            known |= y >= 0
        return rows[known[rows]]

    @property
    def test_rows(self) -> np.ndarray:
        return self.rows("test")

    @property
    def pool_rows(self) -> np.ndarray:
        return self.rows("unlabeled")

    def modality_of(self, feature: str) -> str:
        return self.features[feature].modality

    def class_names(self, target: str) -> tuple[str, ...]:
        return self.task.target(target).classes
