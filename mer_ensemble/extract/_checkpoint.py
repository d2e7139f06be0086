"""Local checkpoints only: finding, fingerprinting and loading them offline; the device to run on.

Extraction never reaches a model hub: every ``from_pretrained`` call runs with
``local_files_only=True`` inside :func:`offline_mode`, and a path that is not a
checkpoint folder raises :class:`ExtractError` before transformers is asked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer_ensemble.errors import ExtractError

if TYPE_CHECKING:
    import torch

__all__ = [
    "check_modality",
    "checkpoint_fingerprint",
    "load_config",
    "load_model",
    "load_preprocessor",
    "model_modality",
    "offline_mode",
    "require_checkpoint",
    "resolve_device",
]

_INPUT_MODALITY = {"input_values": "audio", "input_features": "audio", "input_ids": "text", "pixel_values": "vision"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
_PREPROCESSORS = {
    "audio": ("AutoFeatureExtractor", "a feature extractor (preprocessor_config.json)"),
    "text": ("AutoTokenizer", "a tokenizer (tokenizer.json / vocab files + tokenizer_config.json)"),
    "vision": ("AutoImageProcessor", "an image processor (preprocessor_config.json)"),
}


@contextmanager
def offline_mode() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` for the block, then restore them.

    transformers' own loading bars and info logs are silenced meanwhile (the run has its own bar).
    """
    from transformers.utils import logging as hf_logging

    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {key: os.environ.get(key) for key in keys}
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    os.environ.update({key: "1" for key in keys})
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def require_checkpoint(path: str | Path) -> Path:
    """The resolved checkpoint folder; :class:`ExtractError` if it is missing or holds no ``config.json``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ExtractError(
            f"checkpoint folder not found: {path} (extraction is offline and reads local checkpoints only; "
            f"download the checkpoint first, e.g. `huggingface-cli download <repo-id> --local-dir {path}`)"
        )
    if not (folder / "config.json").is_file():
        raise ExtractError(
            f"no config.json in checkpoint folder {folder}: expected a transformers checkpoint "
            "saved with save_pretrained (config.json, weights and the preprocessor files)"
        )
    return folder.resolve()


def checkpoint_fingerprint(folder: Path) -> dict[str, Any]:
    """What identifies a checkpoint in a manifest: its path, the config hash and the weight files' sizes."""
    config_bytes = (folder / "config.json").read_bytes()
    weights = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)), key=lambda p: p.name
    )
    return {
        "path": str(folder),
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "weights": [{"file": p.name, "bytes": p.stat().st_size} for p in weights],
    }


def load_config(folder: Path, trust_remote_code: bool = False) -> Any:
    """The checkpoint's transformers config (offline)."""
    from transformers import AutoConfig

    try:
        with offline_mode():
            return AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ExtractError(f"cannot read the checkpoint config in {folder}: {_first_line(exc)}") from exc


def model_modality(config: Any, model_cls: type | None = None) -> str | None:
    """The modality a checkpoint reads: ``audio``, ``text``, ``vision`` or ``None`` if unknown.

    Dual-encoder image-text models (CLIP, SigLIP) count as ``vision``: extraction uses their image tower.
    """
    if getattr(config, "vision_config", None) is not None:
        return "vision"
    if getattr(config, "model_type", "") == "whisper":
        return "audio"
    if model_cls is not None:
        return _INPUT_MODALITY.get(getattr(model_cls, "main_input_name", ""))
    return None


def check_modality(config: Any, modality: str, folder: Path, model_cls: type | None = None) -> None:
    """Raise :class:`ExtractError` when the checkpoint reads another modality than ``modality``."""
    found = model_modality(config, model_cls if model_cls is not None else _auto_model_class(config))
    if found is not None and found != modality:
        model_type = getattr(config, "model_type", "unknown")
        raise ExtractError(
            f"checkpoint {folder} is a {model_type} model for {found} input, not {modality}; "
            f"use --modality {found} or pass a {modality} checkpoint"
        )


def load_model(
    folder: Path, modality: str, device: torch.device, dtype: torch.dtype, *, trust_remote_code: bool
) -> Any:
    """Load ``AutoModel`` from ``folder`` (offline), check its modality, move it to ``device`` in eval mode."""
    import transformers
    from transformers import AutoModel

    config = load_config(folder, trust_remote_code)
    check_modality(config, modality, folder)
    dtype_key = "dtype" if _version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
    try:
        with offline_mode():
            model = AutoModel.from_pretrained(
                folder, local_files_only=True, trust_remote_code=trust_remote_code, **{dtype_key: dtype}
            )
    except (OSError, ValueError, KeyError) as exc:
        raise ExtractError(f"cannot load the model in {folder}: {_first_line(exc)}") from exc
    check_modality(config, modality, folder, type(model))
    return model.to(device).eval()


def load_preprocessor(folder: Path, modality: str, *, trust_remote_code: bool) -> Any:
    """The checkpoint's feature extractor, tokenizer or image processor (offline)."""
    import transformers

    class_name, what = _PREPROCESSORS[modality]
    auto_class = getattr(transformers, class_name)
    try:
        with offline_mode():
            return auto_class.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExtractError(
            f"cannot load {what} from checkpoint {folder}: {_first_line(exc)}; "
            f"save it next to the model with its save_pretrained"
        ) from exc


def resolve_device(device: str = "auto", fp16: bool | None = None) -> tuple[torch.device, torch.dtype]:
    """The device and model dtype: CUDA when present for ``auto``; float16 on CUDA unless ``fp16`` is False."""
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ExtractError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ExtractError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:<index>")
    target = torch.device(name)
    if fp16 and target.type != "cuda":
        raise ExtractError("--fp16 needs a CUDA device; on the CPU extraction runs in float32")
    use_fp16 = target.type == "cuda" if fp16 is None else fp16
    return target, torch.float16 if use_fp16 else torch.float32


def _auto_model_class(config: Any) -> type | None:
    """The class ``AutoModel`` would build for ``config`` without loading weights (None if unmapped)."""
    try:
        from transformers import MODEL_MAPPING

        return MODEL_MAPPING[type(config)]
    except (KeyError, ValueError, ImportError):
        return None


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
