"""Shared pieces of feature extraction: items, options, layer choice, pooling and the extractor ABC.

Nothing here imports torch at module level; the tensor helpers import it when called.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
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


def _option(default: Any, *flags: str, help: str, cli_type: Any = None) -> Any:
    """A field of :class:`ExtractOptions` with its command-line flags and help (the ``extract``
    command is built from these; ``cli_type``: the type on the command line when it differs)."""
    return field(default=default, metadata={"flags": flags, "help": help, "cli_type": cli_type})


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract; ``None`` means "the modality's (or checkpoint's) default".

    The one definition of the extraction options: ``mer-ensemble extract`` takes one flag per
    field (its metadata), :func:`~mer_ensemble.extract.extract_features` takes an instance (or the
    fields by name). ``level``: ``utt`` / ``frame``, None: from the output folder's ``-UTT`` /
    ``-FRA`` suffix. ``layers``: indices into the model's hidden states (``0`` = embeddings,
    ``-1`` = last layer), summed; also given as text (``"last4"``, ``"-4,-3,-2,-1"``).
    ``pooling``: how frames become one utterance vector for ``level == "utt"``.
    ``text_replace``: ``(old, new)`` pairs, also given as ``"OLD=NEW"`` texts.
    """

    level: str | None = _option(None, "--level", help="utt or frame (default: from the -UTT/-FRA suffix).")
    layers: tuple[int, ...] | None = _option(
        None, "--layers", cli_type=str | None,
        help="Hidden states to sum: last, last4 or -4,-3,-2,-1 (default: last4; see docs/extract.md).")
    pooling: str | None = _option(None, "--pooling", help="Text -UTT pooling: mean, cls or last (default: mean).")
    normalize: bool | None = _option(None, "--normalize/--no-normalize",
                                     help="L2-normalise each stored vector (default: off).")
    batch_size: int = _option(16, "--batch-size", "-b", help="Items (audio chunks, texts, frames) per forward.")
    device: str = _option("auto", "--device", help="auto, cpu, cuda or cuda:<index>.")
    fp16: bool | None = _option(None, "--fp16/--no-fp16", help="Half precision (default: on with CUDA).")
    chunk_seconds: float = _option(30.0, "--chunk-seconds", help="Audio longer than this is cut into chunks.")
    max_tokens: int | None = _option(None, "--max-tokens", help="Text token limit (default: the model's, ≤ 512).")
    name_column: str = _option("name", "--name-column", help="CSV column with the item names (text).")
    text_column: str = _option("text", "--text-column", help="CSV column with the texts (text).")
    text_replace: tuple[tuple[str, str], ...] = _option(
        (), "--text-replace", cli_type=list[str] | None,
        help="OLD=NEW applied to every text before tokenizing (repeatable).")
    trust_remote_code: bool = _option(False, "--trust-remote-code", help="Allow the checkpoint's own code.")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "layers", parse_layers(self.layers))
        set_(self, "pooling", self.pooling.strip().lower() if self.pooling else None)
        set_(self, "text_replace", tuple(_replace_pair(pair) for pair in self.text_replace))

    @classmethod
    def build(cls, options: ExtractOptions | None = None, **settings: Any) -> ExtractOptions:
        """``options`` (default: all defaults) with the fields named in ``settings`` replaced;
        :class:`ExtractError` naming an unknown field."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ExtractError(f"unknown extract option(s) {unknown}; expected some of {known}")
        return replace(options or cls(), **settings)

    def with_defaults(self, **defaults: Any) -> ExtractOptions:
        """A copy where each option still ``None`` takes the value given in ``defaults``."""
        filled = {key: value for key, value in defaults.items() if getattr(self, key) is None}
        return replace(self, **filled)


def _replace_pair(pair: str | Sequence[str]) -> tuple[str, str]:
    """``"OLD=NEW"`` -> ``("OLD", "NEW")`` (split at the first ``=``); a pair stays a pair."""
    if not isinstance(pair, str):
        old, new = pair
        return str(old), str(new)
    old, sep, new = pair.partition("=")
    if not sep or not old:
        raise ExtractError(f'--text-replace {pair!r} must look like OLD=NEW, e.g. --text-replace "’=\'"')
    return old, new


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
