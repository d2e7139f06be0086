"""What the data layer reads, as plain values: :class:`DataSettings`.

The data layer does not read the experiment config; the experiment builds these settings from
it (:func:`mer_ensemble.experiment.data_settings`), with every path already resolved, and hands
them to :func:`~mer_ensemble.data.load.load_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DataSettings"]


@dataclass(frozen=True)
class DataSettings:
    """Where the data lives, how it is laid out and which task it serves.

    ``layout`` ``mer2024`` / ``meiju`` / ``generic``; ``root`` the resolved data folder;
    ``features`` modality -> feature folder names; ``feature_roots`` the folders holding the
    feature folders, searched in order (empty: ``root/features``); ``task`` a preset name with
    ``targets`` / ``classes`` / ``metric`` / ``combine`` as the config gives them (None: the
    preset's or the layout's); ``label_file`` / ``test_file`` / ``pool_file`` /
    ``candidate_file`` list files relative to ``root`` (None: the layout's defaults);
    ``group_by`` the group column; ``train_splits`` the splits trained k-fold; ``cache`` whether
    features are cached in the workdir; ``noise_variants`` feature -> noisy variant folders;
    ``group_features`` the ``<feature>@group`` blocks the runs read; ``text_column`` /
    ``text_file`` / ``audio_dir`` where raw text and audio come from
    (:mod:`mer_ensemble.data.raw`; ``text_file`` and ``audio_dir`` relative to ``root``).
    """

    layout: str
    root: Path
    features: dict[str, list[str]]
    task: str = "generic"
    targets: list[str] | None = None
    classes: dict[str, list[str]] = field(default_factory=dict)
    metric: str | dict[str, str] | None = None
    combine: str | None = None
    feature_roots: tuple[Path, ...] = ()
    label_file: str | None = None
    test_file: str | None = None
    pool_file: str | None = None
    candidate_file: str | None = None
    group_by: str | None = None
    train_splits: tuple[str, ...] = ("train", "dev")
    cache: bool = True
    noise_variants: dict[str, list[str]] = field(default_factory=dict)
    group_features: tuple[str, ...] = ()
    text_column: str | None = None
    text_file: tuple[str, ...] = ()
    audio_dir: str | None = None

    def search_roots(self) -> list[Path]:
        """The folders holding feature folders, in search order (``root/features`` by default)."""
        return list(self.feature_roots) or [self.root / "features"]
