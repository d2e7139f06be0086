"""Shared pieces of feature extraction: items, options, layer choice, pooling and the extractor ABC.

Nothing here imports torch at module level; the tensor helpers import it when called.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mer_ensemble.errors import ExtractError

if TYPE_CHECKING:
    import torch

__all__ = [
    "LEVELS",
    "MODALITIES",
    "POOLINGS",
    "ExtractOptions",
    "Extractor",
    "Item",
    "ItemFailure",
    "level_from_out",
    "natural_key",
    "parse_layers",
    "pool_frames",
    "resolve_layers",
    "sum_hidden_layers",
]

MODALITIES = ("audio", "text", "vision")
LEVELS = ("utt", "frame")
POOLINGS = ("mean", "cls", "last")
LAST4 = (-4, -3, -2, -1)


class ItemFailure(Exception):
    """One input item cannot be extracted; the run records it and goes on with the rest."""


@dataclass(frozen=True)
class Item:
    """One named input: ``source`` is a file, a folder of frames or the text itself."""

    name: str
    source: str


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract; ``None`` means "the modality's (or checkpoint's) default".

    ``layers``: indices into the model's hidden states (``0`` = embeddings, ``-1`` = last layer),
    summed. ``pooling``: how frames become one utterance vector for ``level == "utt"``.
    """

    level: str = "utt"
    layers: tuple[int, ...] | None = None
    pooling: str | None = None
    normalize: bool | None = None
    batch_size: int = 16
    device: str = "auto"
    fp16: bool | None = None
    chunk_seconds: float = 30.0
    max_tokens: int | None = None
    name_column: str = "name"
    text_column: str = "text"
    text_replace: tuple[tuple[str, str], ...] = ()
    trust_remote_code: bool = False

    def with_defaults(self, **defaults: Any) -> ExtractOptions:
        """A copy where each option still ``None`` takes the value given in ``defaults``."""
        filled = {key: value for key, value in defaults.items() if getattr(self, key) is None}
        return replace(self, **filled)


def parse_layers(spec: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """Parse a layer choice into hidden-state indices.

    Accepts ``"last"`` (``(-1,)``), ``"lastN"`` (the last N, e.g. ``"last4"``), or comma-separated
    indices such as ``"-4,-3,-2,-1"`` or ``"12"``. ``None`` or ``""`` keeps the default.
    Raises :class:`ExtractError` on anything else.
    """
    if spec is None:
        return None
    if not isinstance(spec, str):
        return tuple(int(i) for i in spec) or None
    text = spec.strip().lower()
    if not text:
        return None
    if text == "last":
        return (-1,)
    match = re.fullmatch(r"last(\d+)", text)
    if match:
        count = int(match.group(1))
        if count < 1:
            raise ExtractError(f"--layers {spec!r}: lastN needs N >= 1")
        return tuple(range(-count, 0))
    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ExtractError(
            f"--layers {spec!r} is not understood; expected 'last', 'lastN' (e.g. last4) "
            "or comma-separated hidden-state indices such as -4,-3,-2,-1"
        ) from None
    if not layers:
        raise ExtractError(f"--layers {spec!r} names no layer")
    if len(set(layers)) != len(layers):
        raise ExtractError(f"--layers {spec!r} repeats a layer")
    return layers


def resolve_layers(layers: Sequence[int], n_hidden: int, checkpoint: str | Path = "") -> tuple[int, ...]:
    """Check ``layers`` against a model with ``n_hidden`` hidden states (layers + embeddings).

    Returns non-negative indices; raises :class:`ExtractError` naming the valid range.
    """
    resolved = []
    for index in layers:
        position = index + n_hidden if index < 0 else index
        if not 0 <= position < n_hidden:
            where = f" of {checkpoint}" if checkpoint else ""
            raise ExtractError(
                f"layer {index} is out of range: the model{where} has {n_hidden} hidden states "
                f"(embeddings + {n_hidden - 1} layers), so valid indices are {-n_hidden}..{n_hidden - 1}; "
                "choose others with --layers"
            )
        resolved.append(position)
    if len(set(resolved)) != len(resolved):
        raise ExtractError(f"--layers {list(layers)} name the same hidden state twice")
    return tuple(resolved)


def sum_hidden_layers(hidden_states: Sequence[torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    """Sum the chosen hidden states, ``(B, T, D)`` each, in float32 (safe for fp16 models)."""
    total = hidden_states[layers[0]].float()
    for index in layers[1:]:
        total = total + hidden_states[index].float()
    return total


def pool_frames(frames: np.ndarray, level: str, pooling: str, normalize: bool) -> np.ndarray:
    """Turn one item's frames ``(T, D)`` into the stored array.

    ``level == "utt"``: ``(D,)`` by ``pooling`` (``mean`` over frames, ``cls`` the first frame,
    ``last`` the last one), scaled to unit L2 norm when ``normalize``; ``level == "frame"``:
    ``(T, D)`` unchanged (so that pooling a ``-FRA`` folder reproduces the ``-UTT`` one).
    Raises :class:`ItemFailure` on empty or non-finite output.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ItemFailure(f"the model returned no frames (shape {frames.shape})")
    if level == "utt":
        if pooling == "mean":
            out = frames.astype(np.float64).mean(axis=0)
        elif pooling == "cls":
            out = frames[0]
        else:
            out = frames[-1]
        if normalize:
            out = out / max(float(np.linalg.norm(out)), 1e-12)
    else:
        out = frames
    if not np.isfinite(out).all():
        raise ItemFailure("non-finite values in the features (an fp16 overflow? try --no-fp16)")
    return np.ascontiguousarray(out, dtype=np.float32)


def level_from_out(out: str | Path, level: str | None) -> str:
    """The output level: given, or read from the folder suffix ``-UTT`` / ``-FRA`` (default ``utt``).

    A given level that contradicts the suffix raises :class:`ExtractError`.
    """
    name = Path(out).name.upper()
    implied = "utt" if name.endswith(("-UTT", "_UTT")) else "frame" if name.endswith(("-FRA", "_FRA")) else None
    if level is None:
        return implied or "utt"
    chosen = level.strip().lower()
    chosen = {"fra": "frame", "frames": "frame", "utterance": "utt"}.get(chosen, chosen)
    if chosen not in LEVELS:
        raise ExtractError(f"unknown level {level!r}; expected 'utt' or 'frame'")
    if implied is not None and implied != chosen:
        raise ExtractError(
            f"--level {chosen} contradicts the output folder name {Path(out).name!r} "
            f"(the MER2024 layout uses -UTT for utterance level and -FRA for frame level)"
        )
    return chosen


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class Extractor(ABC):
    """One modality's model: loads an item's raw input and turns batches of them into frames.

    Subclasses set :attr:`modality` and implement :meth:`load` and :meth:`encode`;
    :meth:`describe` adds what the manifest should record.
    """

    modality: ClassVar[str]
    #: items read into memory at once; batches are formed inside one window
    window_items: int = 64

    @abstractmethod
    def load(self, item: Item) -> Any:
        """Read one item's input (audio samples, text, frame paths); raise :class:`ItemFailure` if unusable."""

    @abstractmethod
    def encode(self, batch: list[tuple[str, Any]]) -> dict[str, np.ndarray | str]:
        """Frames ``(T, D)`` float32 per name, or an error message for names that failed."""

    def describe(self) -> dict[str, Any]:
        """Settings the manifest records (beyond the shared ones)."""
        return {}
