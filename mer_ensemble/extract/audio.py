"""Audio features from a local speech checkpoint (HuBERT, wav2vec2, WavLM, data2vec-audio, Whisper).

Input: a folder of audio files (``.wav``, ``.flac``, ``.ogg``, ``.mp3``), one per name (the file stem).
Each file is read as mono float32 and resampled to the model's rate with a polyphase
anti-aliasing filter (:func:`scipy.signal.resample_poly`). Audio longer than ``chunk_seconds``
is cut into equal chunks whose frames are concatenated. Output frames are the chosen hidden
states summed (default: the last 4 layers), ``(T, D)`` per file.

Whisper-style encoder-decoder checkpoints run their encoder only: the input is padded to the
encoder's fixed 30 s window as the model requires, and only the frames covering the real
(unpadded) samples are kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError, ExtractError
from mer_ensemble.extract._checkpoint import load_model, load_preprocessor
from mer_ensemble.extract._common import (
    ExtractOptions,
    Extractor,
    Item,
    ItemFailure,
    resolve_layers,
    sum_hidden_layers,
)

__all__ = ["AUDIO_EXTENSIONS", "AudioExtractor", "list_audio", "read_audio", "resample"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def list_audio(folder: str | Path) -> list[Item]:
    """One item per audio file directly in ``folder`` (name = file stem), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"audio input folder not found: {folder}")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {folder}")
    return [Item(p.stem, str(p)) for p in files]


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(n,)`` samples from ``rate_in`` to ``rate_out`` Hz (polyphase FIR, Kaiser window)."""
    if rate_in == rate_out:
        return wave.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    common = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(wave, rate_out // common, rate_in // common).astype(np.float32)


def read_audio(path: str | Path, rate: int) -> np.ndarray:
    """Mono float32 samples ``(n,)`` at ``rate`` Hz; :class:`ItemFailure` if unreadable or empty."""
    import soundfile as sf

    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError by backend
        raise ItemFailure(f"unreadable audio: {str(exc).strip() or type(exc).__name__}") from exc
    if data.shape[0] == 0:
        raise ItemFailure("empty audio (0 samples)")
    wave = data.mean(axis=1)
    if not np.isfinite(wave).all():
        raise ItemFailure("audio holds non-finite samples")
    return resample(wave, int(file_rate), rate)


class AudioExtractor(Extractor):
    """Frames from a speech encoder; see the module docstring for the pooling rules."""

    modality = "audio"

    def __init__(self, checkpoint: Path, options: ExtractOptions, device: Any, dtype: Any) -> None:
        self.device, self.dtype = device, dtype
        self.batch_size = options.batch_size
        self.window_items = max(4 * options.batch_size, 8)
        self.model = load_model(checkpoint, "audio", device, dtype, trust_remote_code=options.trust_remote_code)
        self.processor = load_preprocessor(checkpoint, "audio", trust_remote_code=options.trust_remote_code)
        config = self.model.config
        self.rate = int(getattr(self.processor, "sampling_rate", 16000))
        self.encoder = self.model.get_encoder() if getattr(config, "is_encoder_decoder", False) else self.model
        self.is_whisper = self.model.main_input_name == "input_features"
        if self.is_whisper and not hasattr(self.processor, "hop_length"):
            raise ExtractError(
                f"checkpoint {checkpoint}: {config.model_type} reads spectrogram features but is not Whisper-style; "
                "supported audio models read raw samples (HuBERT, wav2vec2, WavLM) or are Whisper encoders"
            )
        n_layers = getattr(config, "encoder_layers", None) if self.is_whisper else None
        n_layers = n_layers or getattr(config, "num_hidden_layers", None)
        self.layers = resolve_layers(options.layers or (), int(n_layers) + 1, checkpoint) if n_layers else None
        self.requested_layers = tuple(options.layers or ())
        max_seconds = options.chunk_seconds
        if self.is_whisper:
            max_seconds = min(max_seconds, self.processor.n_samples / self.rate)
        self.chunk_samples = max(int(round(max_seconds * self.rate)), 1)
        self.min_samples = _receptive_field(config)
        self.uses_mask = (not self.is_whisper) and bool(getattr(self.processor, "return_attention_mask", False))

    def load(self, item: Item) -> np.ndarray:
        """Samples ``(n,)`` at the model's rate."""
        return read_audio(item.source, self.rate)

    def encode(self, batch: list[tuple[str, Any]]) -> dict[str, np.ndarray | str]:
        """Frames ``(T, D)`` per name; long audio is cut into chunks whose frames are concatenated."""
        segments = [(name, index, seg) for name, wave in batch for index, seg in enumerate(self._split(wave))]
        chunks: dict[str, dict[int, np.ndarray]] = {name: {} for name, _ in batch}
        for group in self._batches(segments):
            outputs = self._forward([seg for _, _, seg in group])
            for (name, index, _), out in zip(group, outputs, strict=True):
                chunks[name][index] = out
        return {name: np.concatenate([parts[i] for i in sorted(parts)], axis=0) for name, parts in chunks.items()}

    def describe(self) -> dict[str, Any]:
        """Sample rate, chunk length and how padding is handled."""
        return {
            "sample_rate": self.rate,
            "resampling": "scipy.signal.resample_poly (Kaiser-windowed polyphase FIR)",
            "chunk_seconds": self.chunk_samples / self.rate,
            "encoder": "whisper encoder, frames of the real (unpadded) length" if self.is_whisper else "full model",
            "batching": "padded with attention mask" if self.uses_mask else "equal-length groups (no attention mask)",
            "hidden_state_indices": list(self.layers) if self.layers else None,
        }

    def _split(self, wave: np.ndarray) -> list[np.ndarray]:
        """Equal chunks of at most ``chunk_samples``, each padded up to the model's minimum length."""
        count = max(math.ceil(len(wave) / self.chunk_samples), 1)
        parts = np.array_split(wave, count) if count > 1 else [wave]
        return [np.pad(p, (0, self.min_samples - len(p))) if len(p) < self.min_samples else p for p in parts]

    def _batches(self, segments: list[tuple[str, int, np.ndarray]]) -> list[list[tuple[str, int, np.ndarray]]]:
        """Batches of similar (or, without an attention mask, equal) length, longest first."""
        ordered = sorted(segments, key=lambda s: -len(s[2]))
        if self.uses_mask or self.is_whisper:
            return [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        groups: dict[int, list[tuple[str, int, np.ndarray]]] = {}
        for seg in ordered:
            groups.setdefault(len(seg[2]), []).append(seg)
        return [g[i : i + self.batch_size] for g in groups.values() for i in range(0, len(g), self.batch_size)]

    def _forward(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            if self.is_whisper:
                hidden, lengths = self._whisper(waves)
            else:
                hidden, lengths = self._raw_samples(waves)
        return [hidden[i, : int(n)].cpu().numpy() for i, n in enumerate(lengths)]

    def _raw_samples(self, waves: Sequence[np.ndarray]) -> tuple[Any, list[int]]:
        """HuBERT / wav2vec2 / WavLM: padded samples (+ mask) in, frames of each real length out."""
        import torch

        values = [self.processor(w, sampling_rate=self.rate, return_tensors="np")["input_values"][0] for w in waves]
        lengths = [len(v) for v in values]
        padded = np.zeros((len(values), max(lengths)), dtype=np.float32)
        mask = np.zeros(padded.shape, dtype=np.int64)
        for row, v in enumerate(values):
            padded[row, : len(v)] = v
            mask[row, : len(v)] = 1
        inputs = {"input_values": torch.from_numpy(padded).to(self.device, self.dtype)}
        if self.uses_mask:
            inputs["attention_mask"] = torch.from_numpy(mask).to(self.device)
        out = self.encoder(**inputs, output_hidden_states=True)
        hidden = sum_hidden_layers(out.hidden_states, self._layers(len(out.hidden_states)))
        total = hidden.shape[1]
        if self.uses_mask and hasattr(self.model, "_get_feat_extract_output_lengths"):
            frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
            return hidden, [max(1, min(int(n), total)) for n in frames]
        return hidden, [total] * len(values)

    def _whisper(self, waves: Sequence[np.ndarray]) -> tuple[Any, list[int]]:
        """Whisper encoder: log-mel of the 30 s padded window in, frames of the real samples out."""
        import torch

        features = self.processor(list(waves), sampling_rate=self.rate, return_tensors="np")["input_features"]
        out = self.encoder(torch.from_numpy(features).to(self.device, self.dtype), output_hidden_states=True)
        hidden = sum_hidden_layers(out.hidden_states, self._layers(len(out.hidden_states)))
        total = hidden.shape[1]
        samples_per_frame = self.processor.hop_length * features.shape[-1] / total
        lengths = [max(1, min(total, math.ceil(len(w) / samples_per_frame))) for w in waves]
        return hidden, lengths

    def _layers(self, n_hidden: int) -> tuple[int, ...]:
        if self.layers is None:
            self.layers = resolve_layers(self.requested_layers, n_hidden)
        return self.layers


def _receptive_field(config: Any) -> int:
    """Fewest samples the convolutional front end needs for one frame (400 for wav2vec2-style models)."""
    kernels = getattr(config, "conv_kernel", None)
    strides = getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return 400
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (int(kernel) - 1) * jump
        jump *= int(stride)
    return field
