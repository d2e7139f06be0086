"""Raw rows to model batches: text tokenized once, audio read at 16 kHz, length-bucketed batches.

A row's raw inputs arrive as ``(n,)`` object arrays: ``raw:text`` strings and ``raw:audio``
file paths (see :mod:`mer_ensemble.models._inputs`). :class:`TextInputs` tokenizes every text
once (truncated to the model's limit; the truncated rows are counted) and pads each batch
only to its own longest row. :class:`AudioInputs` reads each file as mono float32 resampled
to the model's rate as extraction does (:func:`mer_ensemble.extract.audio.read_audio`),
cropped to ``max_seconds`` (counted), normalised as the checkpoint's feature extractor does,
and batches raw samples (wav2vec2, HuBERT, WavLM; zero padding plus an attention mask where
the checkpoint uses one) or Whisper log-mel windows. :func:`bucketed_batches` groups rows of
similar length so that little padding is computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.errors import DataError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["AudioInputs", "TextInputs", "bucketed_batches", "require_every_row"]

#: batches of one bucket are formed among this many batches' worth of rows sorted by length
BUCKET_BATCHES = 50


def require_every_row(values: np.ndarray, what: str, model: str) -> None:
    """:class:`DataError` naming how many rows (and the first few) have no ``what`` (None, NaN or blank:
    :func:`mer_ensemble.data.raw.missing_rows` of the values as the data layer reads them)."""
    from mer_ensemble.data.raw import missing_rows, text_values

    bad = np.flatnonzero(missing_rows(text_values(values)))
    if len(bad):
        first = ", ".join(str(i) for i in bad[:5])
        raise DataError(f"model {model!r}: {len(bad)} of {len(values)} row(s) have no {what} "
                        f"(rows {first}{', ...' if len(bad) > 5 else ''}); every row needs one")


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Row indices in batches of similar length.

    With ``rng`` (training): rows shuffled, cut into chunks of :data:`BUCKET_BATCHES` batches,
    sorted by length inside each chunk, batched, and the batches shuffled. Without (prediction):
    every row sorted by length, longest first, then batched.
    """
    n = len(lengths)
    if rng is None:
        order = np.argsort(-np.asarray(lengths), kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    batches: list[np.ndarray] = []
    chunk = batch_size * BUCKET_BATCHES
    for start in range(0, n, chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(np.asarray(lengths)[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


class TextInputs:
    """Token ids of texts for one checkpoint's tokenizer (``max_tokens``: the longest kept)."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.unk_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def encode(self, texts: Sequence[str]) -> tuple[list[np.ndarray], int]:
        """``(ids, n_truncated)``: one ``(T_i,)`` int64 array per text, ``T_i <= max_tokens``."""
        texts = [str(t) for t in texts]
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"]
        at_limit = [t for t, row in zip(texts, ids, strict=True) if len(row) >= self.max_tokens]
        truncated = 0
        if at_limit:
            full = self.tokenizer(at_limit, truncation=False)["input_ids"]
            truncated = sum(len(row) > self.max_tokens for row in full)
        return [np.asarray(row, dtype=np.int64) for row in ids], int(truncated)

    def collate(self, rows: Sequence[np.ndarray], device: torch.device) -> dict[str, Tensor]:
        """``text:input_ids`` / ``text:attention_mask``, ``(b, T)`` padded to the batch's longest row."""
        import torch

        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return {"text:input_ids": torch.from_numpy(ids).to(device),
                "text:attention_mask": torch.from_numpy(mask).to(device)}


class AudioInputs:
    """Waveforms for one speech checkpoint's feature extractor.

    ``whisper``: the checkpoint reads log-mel windows (Whisper encoder) instead of raw samples;
    ``uses_mask``: its raw-sample batches carry an attention mask; ``min_samples``: the front
    end's receptive field (shorter clips are zero-padded to it).
    """

    def __init__(self, processor: Any, *, whisper: bool, max_seconds: float, min_samples: int = 400) -> None:
        self.processor = processor
        self.rate = int(getattr(processor, "sampling_rate", 16000))
        self.whisper = whisper
        self.max_samples = max(int(round(float(max_seconds) * self.rate)), 1)
        if whisper:
            self.max_samples = min(self.max_samples, int(processor.n_samples))
        self.min_samples = int(min_samples)
        self.uses_mask = (not whisper) and bool(getattr(processor, "return_attention_mask", False))
        self.normalize = (not whisper) and bool(getattr(processor, "do_normalize", False))

    def durations(self, paths: Sequence[str], model: str) -> np.ndarray:
        """Samples at the model's rate each file will have after cropping, ``(n,)`` int64, from the
        files' headers; :class:`DataError` naming the first unreadable file."""
        import soundfile as sf

        out = np.zeros(len(paths), dtype=np.int64)
        for i, path in enumerate(paths):
            try:
                info = sf.info(str(path))
            except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError by backend
                raise DataError(f"model {model!r}: unreadable audio file {path} (row {i}): "
                                f"{str(exc).strip() or type(exc).__name__}") from None
            samples = int(round(info.frames * self.rate / max(info.samplerate, 1)))
            if samples == 0:
                raise DataError(f"model {model!r}: empty audio file {path} (row {i})")
            out[i] = max(min(samples, self.max_samples), self.min_samples)
        return out

    def read(self, path: str, model: str) -> tuple[np.ndarray, bool]:
        """``(samples, cropped)``: mono float32 ``(s,)`` at the model's rate, cropped to the first
        ``max_seconds``, normalised like the feature extractor, at least ``min_samples`` long."""
        from mer_ensemble.extract._common import ItemFailure
        from mer_ensemble.extract.audio import read_audio

        try:
            wave = read_audio(path, self.rate)
        except ItemFailure as exc:
            raise DataError(f"model {model!r}: audio file {path}: {exc}") from None
        cropped = len(wave) > self.max_samples
        wave = wave[: self.max_samples]
        if self.normalize:
            wave = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
        if len(wave) < self.min_samples:
            wave = np.pad(wave, (0, self.min_samples - len(wave)))
        return wave.astype(np.float32), cropped

    def collate(self, waves: Sequence[np.ndarray], device: torch.device) -> dict[str, Tensor]:
        """Raw samples: ``audio:input_values`` ``(b, S)`` zero-padded, ``audio:samples`` ``(b,)`` and,
        where the checkpoint uses one, ``audio:attention_mask``. Whisper: ``audio:input_features``
        ``(b, mels, 3000)`` for the 30 s window and ``audio:frames`` ``(b,)``, the encoder frames
        that cover each clip's real samples."""
        import torch

        if self.whisper:
            features = self.processor(list(waves), sampling_rate=self.rate, return_tensors="np")["input_features"]
            per_frame = self.processor.n_samples / (features.shape[-1] // 2)  # the encoder halves the mel frames
            frames = [max(1, math.ceil(len(w) / per_frame)) for w in waves]
            return {"audio:input_features": torch.from_numpy(np.ascontiguousarray(features)).to(device),
                    "audio:frames": torch.tensor(frames, dtype=torch.int64, device=device)}
        width = max(len(w) for w in waves)
        values = np.zeros((len(waves), width), dtype=np.float32)
        mask = np.zeros((len(waves), width), dtype=np.int64)
        for i, wave in enumerate(waves):
            values[i, : len(wave)] = wave
            mask[i, : len(wave)] = 1
        out = {"audio:input_values": torch.from_numpy(values).to(device),
               "audio:samples": torch.tensor([len(w) for w in waves], dtype=torch.int64, device=device)}
        if self.uses_mask:
            out["audio:attention_mask"] = torch.from_numpy(mask).to(device)
        return out
