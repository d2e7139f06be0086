"""Hand-crafted audio features with openSMILE (``--model opensmile:<feature set>``).

The ``opensmile`` package ships its engine and configs in the wheel, so nothing is
downloaded. ``opensmile:eGeMAPSv02`` (or ``ComParE_2016``, ``emobase``, ... any member of
``opensmile.FeatureSet``, case-insensitive) into a ``-UTT`` / ``_UTT`` folder writes the
set's functionals of the whole file, ``(D,)`` (88 for eGeMAPSv02, 6373 for ComParE_2016);
into a ``-FRA`` / ``_FRA`` folder its low-level descriptors, one row per 10 ms frame,
``(T, D)`` (25 for eGeMAPSv02, 65 for ComParE_2016). Audio is read as mono and resampled to
16 kHz first, the rate ``prepare`` writes and the organisers' extractors read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import ExtractError
from mer_ensemble.extract._common import ExtractOptions, Extractor, Item

__all__ = ["PREFIX", "OpenSmileExtractor", "feature_set_name", "is_opensmile", "opensmile_head"]

PREFIX = "opensmile:"
RATE = 16000
_LEVELS = {"utt": "Functionals", "frame": "LowLevelDescriptors"}


def is_opensmile(model: str | Path) -> bool:
    """True for a ``--model`` of the form ``opensmile:<feature set>``."""
    return str(model).strip().lower().startswith(PREFIX)


def _module() -> Any:
    try:
        import opensmile
    except ImportError as exc:
        raise ExtractError("opensmile: features need the opensmile package: pip install opensmile") from exc
    return opensmile


def feature_set_name(model: str | Path) -> str:
    """The ``opensmile.FeatureSet`` member named after ``opensmile:``; :class:`ExtractError` when unknown."""
    wanted = str(model).strip()[len(PREFIX):].strip()
    known = list(_module().FeatureSet.__members__)
    match = next((name for name in known if name.lower() == wanted.lower()), None)
    if match is None:
        raise ExtractError(
            f"--model {model}: unknown openSMILE feature set {wanted!r}; expected opensmile:<set> with one of "
            f"{', '.join(known)}"
        )
    return match


def opensmile_head(model: str | Path, modality: str, options: ExtractOptions) -> dict[str, Any]:
    """The manifest's ``checkpoint`` entry for an openSMILE set; checks the modality and options."""
    if modality != "audio":
        raise ExtractError(f"--model {model} computes audio features; use --modality audio, not {modality}")
    if options.layers is not None:
        raise ExtractError(f"--layers applies to neural checkpoints, not to the openSMILE set {model}")
    if options.pooling not in (None, "mean"):
        raise ExtractError(f"--pooling applies to text checkpoints, not to the openSMILE set {model}")
    opensmile = _module()
    name = feature_set_name(model)
    return {"path": f"{PREFIX}{name}", "feature_set": name, "feature_level": _LEVELS[options.level],
            "config_sha256": f"opensmile-{opensmile.__version__}-{name}-{_LEVELS[options.level]}",
            "engine": f"opensmile {opensmile.__version__}"}


class OpenSmileExtractor(Extractor):
    """One openSMILE feature set at one level; see the module docstring."""

    modality = "audio"
    window_items = 16

    def __init__(self, model: str | Path, options: ExtractOptions) -> None:
        opensmile = _module()
        self.feature_set = feature_set_name(model)
        self.level = _LEVELS[options.level]
        try:
            self.smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, self.feature_set),
                                         feature_level=getattr(opensmile.FeatureLevel, self.level))
        except (ValueError, RuntimeError, OSError) as exc:
            raise ExtractError(f"openSMILE cannot compute {self.feature_set} {self.level}: {exc}") from exc
        self.names = list(self.smile.feature_names)

    def load(self, item: Item) -> np.ndarray:
        """Mono samples ``(n,)`` at 16 kHz."""
        from mer_ensemble.extract.audio import read_audio

        return read_audio(item.source, RATE)

    def encode(self, batch: list[tuple[str, Any]]) -> dict[str, np.ndarray | str]:
        """``(1, D)`` functionals or ``(T, D)`` low-level descriptors per name."""
        import warnings

        out: dict[str, np.ndarray | str] = {}
        for name, wave in batch:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "segment too short": NaNs, reported below
                table = self.smile.process_signal(wave, RATE)
            values = table.to_numpy(dtype=np.float32)
            if values.size == 0 or not np.isfinite(values).all():
                out[name] = f"openSMILE gave no finite {self.level} ({len(wave) / RATE:.3f} s of audio is too short)"
            else:
                out[name] = values
        return out

    def describe(self) -> dict[str, Any]:
        """The set, level, rate and the feature names (the columns of every array)."""
        return {"feature_set": self.feature_set, "feature_level": self.level, "sample_rate": RATE,
                "frame_step_seconds": 0.01 if self.level != "Functionals" else None,
                "feature_names": self.names}
