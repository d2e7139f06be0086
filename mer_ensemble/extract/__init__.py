"""Feature extraction from local transformers checkpoints into MER2024-layout feature folders.

``extract_features("audio", "ckpt/chinese-hubert-large", "data/audio", "data/features/chinese-hubert-large-UTT")``
writes ``<out>/<name>.npy`` (float32, ``(D,)`` for ``-UTT``, ``(T, D)`` for ``-FRA``), a
``manifest.json`` and, when some item failed, ``errors.csv``. torch and transformers are
imported only when a run starts. See ``docs/extract.md``.
"""

from __future__ import annotations

from mer_ensemble.extract._common import LEVELS, MODALITIES, POOLINGS, ExtractOptions, parse_layers
from mer_ensemble.extract._run import ExtractReport, extract_features
from mer_ensemble.extract._store import ERRORS_FILE, MANIFEST_FILE

__all__ = [
    "ERRORS_FILE",
    "LEVELS",
    "MANIFEST_FILE",
    "MODALITIES",
    "POOLINGS",
    "ExtractOptions",
    "ExtractReport",
    "extract_features",
    "parse_layers",
]
