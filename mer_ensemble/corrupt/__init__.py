"""Noisy copies of raw media, made the way MER2024 built the MER-NOISE test set
(MERTools ``MER2024/main-noise.py``).

* Audio (``.wav``, ``.flac``, ``.ogg``): mixed with speech or noise at an SNR drawn from the
  integers ``snr_min..snr_max`` dB (5..10 by default, the organisers' draw; ``snr_draw=
  "uniform"`` draws a real number instead). The noise is a random file of ``noise_dir``, or,
  by default, another utterance of the same set (the organisers mixed in other speech). It is
  cut at a random offset (looped when shorter), resampled to the utterance's rate and scaled so
  that ``10·log10(P_speech / P_noise) = snr_db``; a mix that would clip is scaled down as a
  whole (``gain`` < 1, the SNR is unchanged).
* Images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``) and frame folders (a sub-folder of
  images: one clip's face frames): blurred by a factor drawn from ``blur_factors``
  (1, 2 or 4): ``cv2.pyrDown`` log2(factor) times, then ``cv2.pyrUp`` back to the original
  size, as the organisers did (``blur_method="resize"``: a bilinear down- and up-sampling
  instead; factor 1 is an exact copy). A frame folder gets one factor for all its frames.
* Videos (``.mp4``, ``.avi``, ``.mkv``, ...; decoded with PyAV): the audio track is mixed
  as above (the noise: another video's audio track, or ``noise_dir``), and every frame is
  blurred with one factor for the clip; the copy keeps the container, frame rate, frame
  count, timestamps, sample rate and channels (re-encoded: H.264 / AAC, MPEG-4 / PCM in AVI,
  VP8 / Opus in WebM).

Every draw comes from a generator seeded by ``seed`` and the item's name, so a copy is
reproducible and does not depend on which other items are processed. Outputs keep the
input names under ``out``; ``out/corrupt-manifest.csv`` (and ``.json``) records for every
item its kind, noise source, offset, SNR, gain or blur factor and the seed. Inputs are
never written: ``out`` may not be the input folder or lie inside it.

The modules: :mod:`~mer_ensemble.corrupt.run` (the run over a folder and its manifest), then one
per kind of item: :mod:`~mer_ensemble.corrupt.audio`, :mod:`~mer_ensemble.corrupt.images` (images
and frame folders), :mod:`~mer_ensemble.corrupt.video`.
"""

from __future__ import annotations

from mer_ensemble.corrupt.audio import AUDIO_EXTENSIONS, draw_snr, mix_at_snr
from mer_ensemble.corrupt.images import IMAGE_EXTENSIONS, blur, blur_array
from mer_ensemble.corrupt.run import CorruptRecord, CorruptReport, corrupt_media

__all__ = ["AUDIO_EXTENSIONS", "IMAGE_EXTENSIONS", "CorruptRecord", "CorruptReport", "blur", "blur_array",
           "corrupt_media", "draw_snr", "mix_at_snr"]
