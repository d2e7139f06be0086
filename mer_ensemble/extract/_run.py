"""The extraction run: list inputs, skip finished ones, batch through the model, write, report.

Every item's failure (unreadable audio, empty text, a name with no frames, a forward pass
that fails for that item alone) is collected instead of stopping the run; a wrong or missing
checkpoint, a bad option or an unreadable input listing stops it with :class:`ExtractError`
(or :class:`DataError`) before any work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import ExtractError
from mer_ensemble.extract._checkpoint import (
    check_modality,
    checkpoint_fingerprint,
    load_config,
    require_checkpoint,
    resolve_device,
)
from mer_ensemble.extract._common import (
    LAST4,
    MODALITIES,
    POOLINGS,
    ExtractOptions,
    Extractor,
    Item,
    ItemFailure,
    level_from_out,
    pool_frames,
)
from mer_ensemble.extract._store import (
    check_manifest,
    read_manifest,
    save_npy_atomic,
    write_errors,
    write_manifest,
)
from mer_ensemble.extract.opensmile import is_opensmile, opensmile_head
from mer_ensemble.names import name_problem
from mer_ensemble.progress import progress_bar

__all__ = ["ExtractReport", "extract_features"]

FORMAT = "mer-ensemble features v1"


@dataclass
class ExtractReport:
    """What a run did. ``failures``: ``(name, source, error)`` per failed item."""

    out: Path
    modality: str
    level: str
    n_items: int
    n_written: int
    n_skipped: int
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    manifest_path: Path | None = None
    errors_path: Path | None = None
    seconds: float = 0.0
    defaults_from: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        """True when no item failed."""
        return not self.failures

    @property
    def items_per_second(self) -> float:
        """Items written (or failed) per second of this run, excluding skipped ones."""
        done = self.n_written + self.n_failed
        return done / self.seconds if self.seconds > 0 else 0.0


def extract_features(
    modality: str,
    model: str | Path,
    inputs: str | Path,
    out: str | Path,
    options: ExtractOptions | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    names: Sequence[str] | None = None,
    **settings: Any,
) -> ExtractReport:
    """Extract one feature folder ``out`` from a local checkpoint ``model`` (or ``opensmile:<feature set>``).

    ``inputs``: a folder of audio files (audio), a CSV with ``name_column``/``text_column`` (text)
    or a folder with one sub-folder of frames per name (vision). Writes ``out/<name>.npy``
    float32, ``(D,)`` for ``level == "utt"`` and ``(T, D)`` for ``level == "frame"`` (``level``
    defaults to the folder suffix ``-UTT``/``-FRA``), plus ``manifest.json`` and, when some item
    failed, ``errors.csv``. Existing outputs are skipped unless ``overwrite``.
    ``options`` (:class:`~mer_ensemble.extract.ExtractOptions`) say how; ``settings`` replace
    its fields by name (``batch_size=32``, ``layers="last"``). ``None`` options take the
    modality's defaults (see ``docs/extract.md``). ``names``: extract only these items of
    ``inputs`` (the others are ignored, not failures).
    """
    started = time.perf_counter()
    modality = _check_modality_name(modality)
    out = Path(out)
    source = _resolve_source(modality, model, out, ExtractOptions.build(options, **settings))
    options = source.options
    listed = _list_items(modality, inputs, options)
    if names is not None:
        keep = set(names)
        listed = [item for item in listed if item.name in keep]
    items, failures = _valid_items(listed)

    head = _manifest_head(modality, source.identity, options, inputs, source.defaults_from)
    previous = None if overwrite else read_manifest(out)
    check_manifest(out, previous, head)
    todo = items if overwrite else [item for item in items if not (out / f"{item.name}.npy").exists()]

    kept = ("device", "dtype", "dim", "extractor", "filled_with_zeros")
    manifest = {**head, **{k: v for k, v in (previous or {}).items() if k in kept}}

    def started_on(target: Any) -> None:
        if log:
            log(f"extracting {len(todo)} {modality} items on {target}; {len(items) - len(todo)} already done")

    n_written = 0
    if todo:
        n_written, new_failures = _extract_todo(source, todo, out, manifest, progress, started_on)
        failures.extend(new_failures)
    counts = {"items": len(listed), "written": n_written, "skipped": len(items) - len(todo), "failed": len(failures)}
    report = ExtractReport(
        out=out,
        modality=modality,
        level=options.level,
        n_items=len(listed),
        n_written=n_written,
        n_skipped=counts["skipped"],
        failures=failures,
        defaults_from=source.defaults_from,
        settings=head["settings"],
    )
    return _finish(report, manifest, counts, items, started)


@dataclass
class _Source:
    """Where the features come from: ``identity`` (the manifest's ``checkpoint`` entry, compared on
    resume), the checked ``options`` with every default filled in, where the defaults came from, and
    ``build()`` -> ``(extractor, device, dtype)``, called only when there is work."""

    identity: dict[str, Any]
    options: ExtractOptions
    defaults_from: str
    build: Callable[[], tuple[Extractor, str, str]]


def _resolve_source(modality: str, model: str | Path, out: Path, options: ExtractOptions) -> _Source:
    """The checkpoint (or openSMILE set) and the options with the output level and every default
    filled in, checked (``ExtractError`` before any work)."""
    options = replace(options, level=level_from_out(out, options.level))
    if options.normalize and options.level == "frame":
        raise ExtractError("--normalize applies to -UTT vectors; -FRA frames are stored as the model gives them")
    if is_opensmile(model):
        identity = opensmile_head(model, modality, options)
        options = options.with_defaults(pooling="mean", normalize=False)
        _validate(modality, options)

        def build_opensmile() -> tuple[Extractor, str, str]:
            from mer_ensemble.extract.opensmile import OpenSmileExtractor

            return OpenSmileExtractor(model, options), "cpu", "float32"

        return _Source(identity, options, "openSMILE feature set", build_opensmile)
    checkpoint = require_checkpoint(model)
    config = load_config(checkpoint, options.trust_remote_code)
    check_modality(config, modality, checkpoint)
    options, defaults_from = _with_defaults(modality, checkpoint, options)
    _validate(modality, options)
    identity = checkpoint_fingerprint(checkpoint)
    identity.update(model_type=getattr(config, "model_type", None),
                    architectures=getattr(config, "architectures", None))

    def build_checkpoint() -> tuple[Extractor, str, str]:
        target, dtype = resolve_device(options.device, options.fp16)
        return _build(modality, checkpoint, options, target, dtype), str(target), str(dtype).replace("torch.", "")

    return _Source(identity, options, defaults_from, build_checkpoint)


def _extract_todo(
    source: _Source, todo: list[Item], out: Path, manifest: dict[str, Any], progress: bool,
    started_on: Callable[[Any], Any],
) -> tuple[int, list[tuple[str, str, str]]]:
    """Build the extractor on its device, mark the folder incomplete, say where it runs
    (``started_on(device)``), run ``todo``; the manifest learns the device, dtype, dimension and
    extractor. Returns (written, failures)."""
    extractor, target, dtype = source.build()
    manifest.update(device=target, dtype=dtype)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, {**manifest, "complete": False})
    started_on(target)
    n_written, dim, failures = _extract_items(extractor, todo, out, source.options, progress)
    manifest.update(dim=dim or manifest.get("dim"), extractor=extractor.describe())
    return n_written, failures


def _finish(
    report: ExtractReport, manifest: dict[str, Any], counts: dict[str, int], items: list[Item], started: float
) -> ExtractReport:
    """Write ``errors.csv`` and the final manifest; fill the report's paths and time."""
    out = report.out
    out.mkdir(parents=True, exist_ok=True)
    if manifest.get("dim") is None and items:
        manifest["dim"] = _dim_of_existing(out, items)
    report.errors_path = write_errors(out, report.failures)
    report.seconds = time.perf_counter() - started
    manifest.update(
        complete=report.ok,
        shape="(D,)" if report.level == "utt" else "(T, D)",
        counts=counts,
        seconds=round(report.seconds, 3),
    )
    report.manifest_path = write_manifest(out, manifest)
    return report


def _extract_items(
    extractor: Extractor, todo: list[Item], out: Path, options: ExtractOptions, progress: bool
) -> tuple[int, int | None, list[tuple[str, str, str]]]:
    """Run ``todo`` window by window; returns (written, feature dim, failures)."""
    n_written, dim, failures = 0, None, []
    with progress_bar(len(todo), f"{extractor.modality} → {out.name}", enabled=progress) as advance:
        for start in range(0, len(todo), extractor.window_items):
            window = todo[start : start + extractor.window_items]
            written, window_dim, window_failures = _run_window(extractor, window, out, options)
            n_written += written
            dim = window_dim or dim
            failures.extend(window_failures)
            advance(len(window))
    return n_written, dim, failures


def _check_modality_name(modality: str) -> str:
    name = str(modality).strip().lower()
    if name not in MODALITIES:
        raise ExtractError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return name


def _with_defaults(modality: str, checkpoint: Path, options: ExtractOptions) -> tuple[ExtractOptions, str]:
    """Fill unset options: a sentence-transformers recipe for such text checkpoints, else the modality's."""
    source = "modality defaults"
    if modality == "text":
        from mer_ensemble.extract.text import sentence_transformer_defaults

        recipe = sentence_transformer_defaults(checkpoint)
        if recipe is not None:
            options = options.with_defaults(**{k: v for k, v in recipe.items() if v is not None})
            source = "sentence-transformers config (modules.json)"
    layers = None if modality == "vision" else LAST4
    return options.with_defaults(layers=layers, pooling="mean", normalize=False), source


def _validate(modality: str, options: ExtractOptions) -> None:
    if options.pooling not in POOLINGS:
        raise ExtractError(f"unknown pooling {options.pooling!r}; expected one of {', '.join(POOLINGS)}")
    if modality != "text" and options.pooling != "mean":
        raise ExtractError(f"--pooling {options.pooling} applies to text only; {modality} frames are mean-pooled")
    if modality == "vision" and options.layers is not None:
        raise ExtractError("--layers applies to audio and text; vision uses each frame's image embedding")
    if options.batch_size < 1:
        raise ExtractError(f"--batch-size must be at least 1, got {options.batch_size}")
    if not options.chunk_seconds > 0:
        raise ExtractError(f"--chunk-seconds must be positive, got {options.chunk_seconds}")
    if options.max_tokens is not None and options.max_tokens < 2:
        raise ExtractError(f"--max-tokens must be at least 2, got {options.max_tokens}")


def _list_items(modality: str, inputs: str | Path, options: ExtractOptions) -> list[Item]:
    if modality == "audio":
        from mer_ensemble.extract.audio import list_audio

        return list_audio(inputs)
    if modality == "text":
        from mer_ensemble.extract.text import read_texts

        return read_texts(inputs, options.name_column, options.text_column)
    from mer_ensemble.extract.vision import list_frame_folders

    return list_frame_folders(inputs)


def _valid_items(items: list[Item]) -> tuple[list[Item], list[tuple[str, str, str]]]:
    """Drop items whose name cannot be a file name or repeats an earlier one (reported as failures)."""
    seen: set[str] = set()
    kept, failures = [], []
    for item in items:
        source = _source_label(item)
        problem = name_problem(item.name) or ("is hidden (starts with '.')" if item.name.startswith(".") else None)
        if problem:
            failures.append((item.name, source, f"invalid name: {problem}"))
        elif item.name in seen:
            failures.append((item.name, source, "duplicate name: only the first occurrence is extracted"))
        else:
            seen.add(item.name)
            kept.append(item)
    return kept, failures


def _source_label(item: Item) -> str:
    """The source as reported in errors.csv (texts shortened)."""
    return item.source if len(item.source) <= 80 else item.source[:77] + "..."


def _build(modality: str, checkpoint: Path, options: ExtractOptions, device: Any, dtype: Any) -> Extractor:
    if modality == "audio":
        from mer_ensemble.extract.audio import AudioExtractor

        return AudioExtractor(checkpoint, options, device, dtype)
    if modality == "text":
        from mer_ensemble.extract.text import TextExtractor

        return TextExtractor(checkpoint, options, device, dtype)
    from mer_ensemble.extract.vision import VisionExtractor

    return VisionExtractor(checkpoint, options, device, dtype)


def _run_window(
    extractor: Extractor, window: list[Item], out: Path, options: ExtractOptions
) -> tuple[int, int | None, list[tuple[str, str, str]]]:
    """Load, encode and write one window of items; returns (written, feature dim, failures)."""
    failures: list[tuple[str, str, str]] = []
    loaded: list[tuple[str, Any]] = []
    sources = {item.name: _source_label(item) for item in window}
    for item in window:
        try:
            loaded.append((item.name, extractor.load(item)))
        except ItemFailure as exc:
            failures.append((item.name, sources[item.name], str(exc)))
    written, dim = 0, None
    for name, frames in _encode_isolated(extractor, loaded).items():
        try:
            if isinstance(frames, str):
                raise ItemFailure(frames)
            array = pool_frames(frames, options.level, options.pooling or "mean", bool(options.normalize))
            save_npy_atomic(out / f"{name}.npy", array)
            written, dim = written + 1, int(array.shape[-1])
        except (ItemFailure, OSError) as exc:
            failures.append((name, sources[name], str(exc)))
    return written, dim, failures


def _encode_isolated(extractor: Extractor, loaded: list[tuple[str, Any]]) -> dict[str, np.ndarray | str]:
    """Encode a window; if it fails, retry item by item so one bad item fails alone."""
    if not loaded:
        return {}
    try:
        return extractor.encode(loaded)
    except (ExtractError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a forward pass can fail in many ways (OOM, shape, dtype); isolate the item
        _free_cuda_cache()
        if len(loaded) == 1:
            return {loaded[0][0]: _error_text(exc)}
        results: dict[str, np.ndarray | str] = {}
        for pair in loaded:
            results.update(_encode_isolated(extractor, [pair]))
        return results


def _error_text(exc: BaseException) -> str:
    """``"TypeName: first line of the message"`` for errors.csv."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _dim_of_existing(out: Path, items: list[Item]) -> int | None:
    for item in items:
        path = out / f"{item.name}.npy"
        if path.exists():
            return int(np.load(path, mmap_mode="r").shape[-1])
    return None


def _manifest_head(
    modality: str, checkpoint: dict[str, Any], options: ExtractOptions, inputs: str | Path, defaults_from: str
) -> dict[str, Any]:
    """The manifest fields that define the features (compared on resume) plus provenance;
    ``checkpoint``: what identifies the model (:func:`checkpoint_fingerprint` or an openSMILE set)."""
    from mer_ensemble import __version__

    settings: dict[str, Any] = {
        "layers": list(options.layers) if options.layers is not None else None,
        "layer_combination": "sum" if options.layers is not None else None,
        "pooling": options.pooling if options.level == "utt" else None,
        "normalize": bool(options.normalize) and options.level == "utt",
    }
    if modality == "audio" and not is_opensmile(str(checkpoint.get("path", ""))):
        settings["chunk_seconds"] = options.chunk_seconds
    if modality == "text":
        settings.update(
            max_tokens=options.max_tokens,
            text_column=options.text_column,
            text_replace=[list(pair) for pair in options.text_replace],
        )
    if modality == "vision":
        settings["frame_pooling"] = "mean over frames" if options.level == "utt" else "one row per frame"
    return {
        "format": FORMAT,
        "modality": modality,
        "level": options.level,
        "checkpoint": checkpoint,
        "settings": settings,
        "defaults_from": defaults_from,
        "input": str(Path(inputs).resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"mer_ensemble": __version__, **_versions(str(checkpoint.get("path", "")))},
    }


def _versions(model: str) -> dict[str, str]:
    """The versions of the libraries that computed the features."""
    if is_opensmile(model):
        import opensmile

        return {"opensmile": opensmile.__version__}
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
