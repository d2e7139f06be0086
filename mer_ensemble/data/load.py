"""Build a :class:`~mer_ensemble.data.dataset.Dataset` from a config."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset, FeatureBlock
from mer_ensemble.data.features import find_feature_files, load_feature
from mer_ensemble.data.layouts import read_layout
from mer_ensemble.errors import DataError
from mer_ensemble.tasks import PRESETS, TaskSpec, resolve_task

__all__ = ["config_targets", "feature_roots", "load_dataset", "load_table", "resolve_config_task"]

_LAYOUT_DEFAULT_TARGETS = {"mer2024": ["discrete"], "meiju": ["emotion", "intent"]}


def config_targets(cfg: Config) -> list[str]:
    """The label columns a config reads: the preset's, else ``data.targets``, else the layout's default."""
    preset = PRESETS[cfg.task]
    if preset.targets is not None:
        return [t[0] for t in preset.targets]
    if cfg.data.targets:
        return list(cfg.data.targets)
    if cfg.data.layout in _LAYOUT_DEFAULT_TARGETS:
        return list(_LAYOUT_DEFAULT_TARGETS[cfg.data.layout])
    raise DataError("data.targets: the generic layout needs a list of label columns, e.g. [emotion, sentiment]")


def feature_roots(cfg: Config) -> list[Path]:
    """The folders holding feature folders, in search order: ``data.feature_root`` (one
    folder or a list; relative paths are relative to ``data.root``, as in ``Annotation/features``)
    or ``<data.root>/features``."""
    value = cfg.data.feature_root
    root = cfg.resolve_path(cfg.data.root)
    if not value:
        return [root / "features"]
    values = [value] if isinstance(value, str) else list(value)
    return [root / Path(v).expanduser() for v in values]  # an absolute path stays as it is


def load_table(cfg: Config) -> pd.DataFrame:
    """Read the label layout into one table (name, split, targets, [group])."""
    root = cfg.resolve_path(cfg.data.root)
    return read_layout(
        cfg.data.layout,
        root,
        targets=config_targets(cfg),
        label_file=cfg.data.label_file,
        test_file=cfg.data.test_file,
        pool_file=cfg.data.pool_file,
        group_by=cfg.data.group_by,
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


def resolve_config_task(cfg: Config, table: pd.DataFrame) -> TaskSpec:
    """The config's task, with ``generic`` classes taken from the labelled rows of ``table``."""
    targets = config_targets(cfg)
    labelled = table[table["split"].isin(["train", "dev"])]
    observed = {t: sorted({v for v in labelled[t] if isinstance(v, str)}) for t in targets}
    for t in targets:
        if not observed[t] and t not in cfg.data.classes:
            root = cfg.resolve_path(cfg.data.root)
            raise DataError(f"{root}: target {t!r} has no known label in the train/dev rows")
    return resolve_task(
        cfg.task,
        targets=targets if PRESETS[cfg.task].targets is None else None,
        classes=cfg.data.classes,
        observed=observed,
        metric=cfg.scoring.metric,
        combine=cfg.scoring.combine,
    )


def load_dataset(cfg: Config, workdir: Path | None = None, *, use_cache: bool = True) -> Dataset:
    """Read labels and every configured feature; validate; fingerprint.

    Features are cached under ``workdir/cache`` (memory-mapped on later loads)
    when ``data.cache`` is on and a workdir is given.
    """
    root = cfg.resolve_path(cfg.data.root)
    table = load_table(cfg)
    roots = feature_roots(cfg)
    table, notes = _drop_pool_rows_without_features(table, roots, [f for fs in cfg.data.features.values() for f in fs])
    task = resolve_config_task(cfg, table)
    labels = {t.name: _encode(table, t.name, t.classes, root) for t in task.targets}
    names = table["name"].to_numpy(dtype=object)
    cache_dir = (workdir / "cache") if (workdir is not None and cfg.data.cache and use_cache) else None
    features: dict[str, FeatureBlock] = {}
    digests = []
    for modality, feature_names in cfg.data.features.items():
        for feature in feature_names:
            block, digest = load_feature(
                [r / feature for r in roots], names, feature=feature, modality=modality, cache_dir=cache_dir
            )
            features[feature] = block
            digests.append(f"{feature}:{digest}")
    variants = _load_variants(cfg, table, features, roots, cache_dir, digests)
    groups = table["group"].to_numpy(dtype=object) if "group" in table.columns else None
    candidates = None
    if cfg.data.candidate_file:
        cand_path = root / cfg.data.candidate_file
        from mer_ensemble.data.layouts import _name_list

        cand = set(_name_list(cand_path, "candidate list")["name"])
        candidates = np.array([n in cand for n in names])
    fingerprint = _fingerprint(names, table["split"].to_numpy(), labels, digests, task.to_dict())
    ds = Dataset(
        names=names,
        split=table["split"].to_numpy(dtype=object),
        labels=labels,
        features=features,
        modalities={m: list(f) for m, f in cfg.data.features.items()},
        task=task,
        groups=groups,
        fingerprint=fingerprint,
        root=str(root),
        train_splits=tuple(cfg.data.train_splits),
        candidates=candidates,
        variants=variants,
        notes=notes,
    )
    from mer_ensemble.data.groupnorm import add_group_features, derived_feature_names

    add_group_features(ds, derived_feature_names(cfg))  # <feature>@group, from the features alone
    return ds


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
    cfg: Config,
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
    labelled = table["split"].isin(list(cfg.data.train_splits)).to_numpy()
    out: dict[str, list[FeatureBlock]] = {}
    for feature, folders in cfg.data.noise_variants.items():
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
