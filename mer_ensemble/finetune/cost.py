"""The cost prior of a ``finetune`` fold job: FLOPs of fine-tuning from the encoders' weights and the
rows' typical length, at a measured fraction of the machine's matmul rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["FRAMES_PER_SECOND", "PRIOR_EFFICIENCY", "fold_seconds", "typical_lengths"]

#: rows' typical length for the cost prior when no rows are seen: tokens of an utterance, encoder frames of a
#: clip (6 s at 50 frames a second; a Whisper encoder always reads its 30 s window)
PRIOR_TOKENS, PRIOR_FRAMES, WHISPER_FRAMES = 24, 300, 1500
#: encoder frames per second of wav2vec2-style encoders (20 ms hop)
FRAMES_PER_SECOND = 50
#: FLOP rate of fine-tuning relative to the machine's single-thread matmul rate (0.68 measured: MiniLM, one MELD
#: fold on one thread, 14 tokens per row)
PRIOR_EFFICIENCY = 0.7


def fold_seconds(sizes: Sequence[tuple[str, int, int, str]], lengths: Mapping[str, float], *, lora: bool,
                 train_rows: float, work: Any) -> float:
    """Seconds of one fold job: 6 FLOPs per non-embedding weight and token (4 with LoRA: no weight
    gradients in the encoder) per training row and epoch (``train_rows``), 2 per predicted row
    (``work.n_predict``), at :data:`PRIOR_EFFICIENCY` of ``work.gflops`` (20x on CUDA). ``sizes``:
    ``(modality, weights, embedding weights, model type)`` per encoder; ``lengths``: tokens / frames per
    row by modality (a Whisper encoder always reads :data:`WHISPER_FRAMES`)."""
    flops = 0.0
    for modality, weights, embedding, model_type in sizes:
        length = WHISPER_FRAMES if model_type == "whisper" else lengths[modality]
        flops += (weights - embedding) * length * ((4.0 if lora else 6.0) * train_rows + 2.0 * float(work.n_predict))
    rate = max(float(work.gflops), 1.0) * 1e9 * (20.0 if getattr(work, "on_cuda", False) else 1.0)
    return 5.0 + flops / (rate * PRIOR_EFFICIENCY)


def typical_lengths(checkpoints: Mapping[str, str], sample: Mapping[str, Sequence[Any]], *, max_tokens: int,
                    max_seconds: float) -> dict[str, float]:
    """Mean tokens per sampled text (the text checkpoint's tokenizer) and encoder frames per sampled
    clip (the files' headers); :data:`PRIOR_TOKENS` / :data:`PRIOR_FRAMES` where nothing is sampled."""
    out = {"text": float(PRIOR_TOKENS), "audio": float(PRIOR_FRAMES)}
    if sample.get("text") and "text" in checkpoints:
        out["text"] = _mean_tokens(checkpoints["text"], max_tokens, tuple(map(str, sample["text"])))
    if sample.get("audio") and "audio" in checkpoints:
        out["audio"] = FRAMES_PER_SECOND * _mean_seconds(max_seconds, tuple(map(str, sample["audio"])))
    return out


@lru_cache(maxsize=16)
def _mean_tokens(checkpoint: str, max_tokens: int, texts: tuple[str, ...]) -> float:
    """Mean token count of ``texts`` with the checkpoint's tokenizer (cut at ``max_tokens``);
    :data:`PRIOR_TOKENS` when the tokenizer cannot be loaded."""
    try:
        from mer_ensemble.extract._checkpoint import load_preprocessor
        from mer_ensemble.finetune.checkpoint import resolve_checkpoint

        tokenizer = load_preprocessor(resolve_checkpoint(checkpoint, "text").folder, "text", trust_remote_code=False)
        ids = tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]
    except Exception:  # noqa: BLE001 - only an estimate: the fit itself reports what is wrong
        return float(PRIOR_TOKENS)
    return float(np.mean([len(row) for row in ids])) if ids else float(PRIOR_TOKENS)


@lru_cache(maxsize=16)
def _mean_seconds(max_seconds: float, paths: tuple[str, ...]) -> float:
    """Mean duration of the audio files ``paths`` (from their headers, cut at ``max_seconds``)."""
    import soundfile as sf

    seconds = []
    for path in paths:
        try:
            info = sf.info(path)
        except Exception:  # noqa: BLE001 - an unreadable file is reported by check and the fit
            continue
        seconds.append(min(info.frames / max(info.samplerate, 1), max_seconds))
    return float(np.mean(seconds)) if seconds else PRIOR_FRAMES / FRAMES_PER_SECOND
