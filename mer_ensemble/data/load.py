"""Build a :class:`~mer_ensemble.data.dataset.Dataset` from :class:`~mer_ensemble.data.settings.DataSettings`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from mer_ensemble.data.dataset import Dataset, FeatureBlock
from mer_ensemble.data.features import find_feature_files, load_feature
from mer_ensemble.data.layouts import read_layout
from mer_ensemble.data.raw import load_raw, raw_digest
from mer_ensemble.data.settings import DataSettings
from mer_ensemble.errors import DataError
from mer_ensemble.tasks import PRESETS, TaskSpec, resolve_task

__all__ = ["data_targets", "load_dataset", "load_table", "resolve_data_task"]

_LAYOUT_DEFAULT_TARGETS = {"mer2024": ["discrete"], "meiju": ["emotion", "intent"]}


def data_targets(settings: DataSettings) -> list[str]:
    """The label columns to read: the preset's, else ``data.targets``, else the layout's default."""
    preset = PRESETS[settings.task]
    if preset.targets is not None:
        return [t[0] for t in preset.targets]
    if settings.targets:
        return list(settings.targets)
    if settings.layout in _LAYOUT_DEFAULT_TARGETS:
        return list(_LAYOUT_DEFAULT_TARGETS[settings.layout])
    raise DataError("data.targets: the generic layout needs a list of label columns, e.g. [emotion, sentiment]")


def _check_settings(settings: DataSettings) -> DataSettings:
    if not isinstance(settings, DataSettings):
        raise TypeError(f"expected DataSettings, got {type(settings).__name__}; build them from a config with "
                        "mer_ensemble.experiment.data_settings(config)")
    return settings


def load_table(settings: DataSettings) -> pd.DataFrame:
    """Read the label layout into one table (name, split, targets, [group], [raw text])."""
    settings = _check_settings(settings)
    return read_layout(
        settings.layout,
        settings.root,
        targets=data_targets(settings),
        label_file=settings.label_file,
        test_file=settings.test_file,
        pool_file=settings.pool_file,
        group_by=settings.group_by,
        text_column=settings.text_column,
    )


def _encode(table: pd.DataFrame, target: str, classes: tuple[str, ...], root: Path) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    lower = {c.lower(): i for i, c in enumerate(classes)}
    out = np.full(len(table), -1, dtype=np.int64)
    for i, value in enumerate(table[target].to_numpy()):
        if not isinstance(value, str):
            continue
        idx = lookup.get(value, lower.get(str(value).lower()))
        if idx is None:
            name, split = table["name"].iat[i], table["split"].iat[i]
            raise DataError(
                f"{root}: name {name!r} ({split}) has {target}={value!r}, not a class of this task; "
                f"expected one of {list(classes)}"
            )
        out[i] = idx
    return out


def resolve_data_task(settings: DataSettings, table: pd.DataFrame) -> TaskSpec:
    """The settings' task, with ``generic`` classes taken from the labelled rows of ``table``."""
    targets = data_targets(settings)
    labelled = table[table["split"].isin(["train", "dev"])]
    observed = {t: sorted({v for v in labelled[t] if isinstance(v, str)}) for t in targets}
    for t in targets:
        if not observed[t] and t not in settings.classes:
            raise DataError(f"{settings.root}: target {t!r} has no known label in the train/dev rows")
    return resolve_task(
        settings.task,
        targets=targets if PRESETS[settings.task].targets is None else None,
        classes=settings.classes,
        observed=observed,
        metric=settings.metric,
        combine=settings.combine,
    )


def load_dataset(settings: DataSettings, workdir: Path | None = None, *, use_cache: bool = True) -> Dataset:
    """Read labels, every configured feature and the raw inputs; validate; fingerprint.

    Features are cached under ``workdir/cache`` (memory-mapped on later loads) when
    ``settings.cache`` is on and a workdir is given.
    """
    settings = _check_settings(settings)
    root = settings.root
    table = load_table(settings)
    roots = settings.search_roots()
    table, notes = _drop_pool_rows_without_features(table, roots, [f for fs in settings.features.values() for f in fs])
    task = resolve_data_task(settings, table)
    labels = {t.name: _encode(table, t.name, t.classes, root) for t in task.targets}
    names = table["name"].to_numpy(dtype=object)
    cache_dir = (workdir / "cache") if (workdir is not None and settings.cache and use_cache) else None
    features, digests = _load_features(settings, names, roots, cache_dir)
    variants = _load_variants(settings, table, features, roots, cache_dir, digests)
    raw = load_raw(settings, table)
    fingerprint = _fingerprint(names, table["split"].to_numpy(), labels, digests, task.to_dict())
    ds = Dataset(
        names=names,
        split=table["split"].to_numpy(dtype=object),
        labels=labels,
        features=features,
        modalities={m: list(f) for m, f in settings.features.items()},
        task=task,
        groups=table["group"].to_numpy(dtype=object) if "group" in table.columns else None,
        fingerprint=fingerprint,
        root=str(root),
        train_splits=tuple(settings.train_splits),
        candidates=_candidates(settings, names),
        variants=variants,
        raw=raw,
        raw_digests={kind: raw_digest(kind, values) for kind, values in raw.items()},
        notes=notes,
    )
    from mer_ensemble.data.groupnorm import add_group_features

    add_group_features(ds, settings.group_features)  # <feature>@group, from the features alone
    return ds


def _load_features(settings: DataSettings, names: np.ndarray, roots: list[Path],
                   cache_dir: Path | None) -> tuple[dict[str, FeatureBlock], list[str]]:
    """Every configured feature block, and the digests that enter the fingerprint."""
    features: dict[str, FeatureBlock] = {}
    digests = []
    for modality, feature_names in settings.features.items():
        for feature in feature_names:
            block, digest = load_feature(
                [r / feature for r in roots], names, feature=feature, modality=modality, cache_dir=cache_dir
            )
            features[feature] = block
            digests.append(f"{feature}:{digest}")
    return features, digests


def _candidates(settings: DataSettings, names: np.ndarray) -> np.ndarray | None:
    """``(n,)`` bool: the rows on ``data.candidate_file`` (None without one)."""
    if not settings.candidate_file:
        return None
    from mer_ensemble.data.layouts import _name_list

    cand = set(_name_list(settings.root / settings.candidate_file, "candidate list")["name"])
    return np.array([n in cand for n in names])


def _drop_pool_rows_without_features(
    table: pd.DataFrame, roots: list[Path], features: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Drop the unlabelled (pool) rows that lack a file of some feature (a video that could not be
    prepared, a pool list longer than the features); labelled and test rows keep the error the
    feature reader raises for them. Returns the table and a note with the count."""
    from mer_ensemble.data.features import present_names

    pool = (table["split"] == "unlabeled").to_numpy()
    if not pool.any():
        return table, []
    names = table["name"].to_numpy(dtype=object)
    keep = np.ones(len(table), dtype=bool)
    lacking: dict[str, int] = {}
    for feature in features:
        present = present_names([r / feature for r in roots])
        if present is None:
            continue  # the folder is missing: the reader names it
        missing = pool & ~np.isin(names, list(present))
        if missing.any():
            lacking[feature] = int(missing.sum())
        keep &= ~missing
    if keep.all():
        return table, []
    detail = ", ".join(f"{feature}: {count}" for feature, count in lacking.items())
    note = (f"pool: {int((~keep).sum())} of {int(pool.sum())} unlabelled rows dropped, without a feature file "
            f"({detail})")
    return table[keep].reset_index(drop=True), [note]


def _load_variants(
    settings: DataSettings,
    table: pd.DataFrame,
    features: dict[str, FeatureBlock],
    roots: list[Path],
    cache_dir: Path | None,
    digests: list[str],
) -> dict[str, list[FeatureBlock]]:
    """Noisy variants of ``data.noise_variants`` (their digests appended to ``digests``).

    A variant folder must hold every labelled (train-split) name; when it lacks other names
    (test, pool) it must be utterance level and those rows keep the clean values (variants
    are only mixed into training rows).
    """
    names = table["name"].to_numpy(dtype=object)
    labelled = table["split"].isin(list(settings.train_splits)).to_numpy()
    out: dict[str, list[FeatureBlock]] = {}
    for feature, folders in settings.noise_variants.items():
        if feature not in features:
            raise DataError(f"data.noise_variants: {feature!r} is not a configured feature; have {sorted(features)}")
        clean = features[feature]
        for folder_name in folders:
            candidates = [r / folder_name for r in roots]
            if not any(c.is_dir() for c in candidates):
                where = ", ".join(str(c) for c in candidates)
                raise DataError(f"data.noise_variants.{feature}: variant folder {folder_name} not found in {where}")
            present = find_feature_files(candidates, list(names), folder_name).present
            folder = ", ".join(str(c) for c in candidates if c.is_dir())
            if not present[labelled].all():
                first = names[labelled & ~present][0]
                raise DataError(
                    f"data.noise_variants.{feature}: {folder} lacks {int((labelled & ~present).sum())} labelled "
                    f"name(s) (first: {first!r}); a variant must cover every training row"
                )
            rows = np.flatnonzero(present)
            block, digest = load_feature(
                candidates, list(names[rows]), feature=folder_name, modality=clean.modality, cache_dir=cache_dir
            )
            if block.dim != clean.dim:
                raise DataError(f"data.noise_variants.{feature}: {folder} has dimension {block.dim}, not {clean.dim}")
            if len(rows) < len(names):
                if block.level != "utt":
                    raise DataError(
                        f"data.noise_variants.{feature}: frame-level variant {folder} must cover every name"
                    )
                values = np.array(clean.pooled(), dtype=np.float32)
                values[rows] = block.values
                block = FeatureBlock(folder_name, clean.modality, "utt", values)
            out.setdefault(feature, []).append(block)
            digests.append(f"{feature}~{folder_name}:{digest}:{len(rows)}")
    return out


def _fingerprint(names, split, labels, digests, task) -> str:  # noqa: ANN001
    h = hashlib.sha1()
    h.update("\n".join(map(str, names)).encode())
    h.update("\n".join(map(str, split)).encode())
    for t in sorted(labels):
        h.update(t.encode())
        h.update(labels[t].tobytes())
    h.update("\n".join(sorted(digests)).encode())
    h.update(repr(task).encode())
    return h.hexdigest()[:16]
