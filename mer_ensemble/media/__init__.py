"""From the videos the organisers ship to the inputs of the feature extractors.

:func:`prepare_videos` (``mer-ensemble prepare``) decodes every video with PyAV into a 16 kHz
mono wav, face crops with their boxes and optional scene frames; :mod:`~mer_ensemble.media.faces`
holds the face detectors, :mod:`~mer_ensemble.media.video` the decoding. Heavy libraries
(av, cv2, dlib) are imported where used.
"""

from __future__ import annotations

from mer_ensemble.media.prepare import MANIFEST, PrepareOptions, PrepareReport, prepare_videos, read_manifest

__all__ = ["MANIFEST", "PrepareOptions", "PrepareReport", "prepare_videos", "read_manifest"]
