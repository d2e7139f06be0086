"""Speech recognition with a local Whisper checkpoint (``mer-ensemble transcribe``).

Every audio file of a folder (``prepare``'s ``audio/``) is transcribed with a Whisper-style
speech-to-text checkpoint saved with ``save_pretrained`` (model, feature extractor and
tokenizer; loaded offline through transformers' ``AutoModelForSpeechSeq2Seq``). Audio is
read as 16 kHz mono; files longer than the model's 30 s window are cut into consecutive
30 s chunks whose texts are joined with a space. Chunks are batched (longest first), on
CUDA in float16 when present.

The output is a CSV ``name,sentence`` like MEIJU's ``NoAnnotation/transcription.csv``, which
``extract -m text --text-column sentence`` and the layouts (as a pool list) read. It is
rewritten atomically after every batch, so a rerun skips the names it already holds; a JSON
sidecar ``<out>.json`` records the checkpoint and settings (a rerun with others is refused),
and files that fail are listed in ``<out stem>-errors.csv`` (exit status 2 from the CLI).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import ExtractError
from mer_ensemble.io import atomic_write_json, atomic_write_text, read_json
from mer_ensemble.media._report import FolderReport

__all__ = ["read_transcripts", "transcribe_folder"]

RATE = 16000
WINDOW_SECONDS = 30.0


def read_transcripts(path: str | Path) -> dict[str, str]:
    """``name -> sentence`` of a transcript CSV (empty when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"name", "sentence"} <= set(reader.fieldnames):
            raise ExtractError(f"{path}: expected the columns name,sentence; found {reader.fieldnames}; "
                               "write to a new file or pass --overwrite")
        return {row["name"]: row["sentence"] for row in reader}


def _write_transcripts(path: Path, rows: dict[str, str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "sentence"])
    writer.writerows(sorted(rows.items()))
    atomic_write_text(path, buffer.getvalue())


def _load(checkpoint: Path, device: Any, dtype: Any) -> tuple[Any, Any]:
    """The seq2seq speech model and its processor (offline); a non-Whisper checkpoint is refused."""
    import transformers
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    from mer_ensemble.extract._checkpoint import _first_line, _version_tuple, load_config, model_modality, offline_mode

    config = load_config(checkpoint)
    if getattr(config, "model_type", None) != "whisper":
        found = model_modality(config) or "unknown"
        raise ExtractError(
            f"checkpoint {checkpoint} is a {getattr(config, 'model_type', 'unknown')} model ({found} input); "
            "transcribe needs a Whisper speech-to-text checkpoint (WhisperForConditionalGeneration + its processor)"
        )
    dtype_key = "dtype" if _version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
    try:
        with offline_mode():
            model = AutoModelForSpeechSeq2Seq.from_pretrained(checkpoint, local_files_only=True, **{dtype_key: dtype})
            processor = AutoProcessor.from_pretrained(checkpoint, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExtractError(f"cannot load the Whisper model and processor in {checkpoint}: {_first_line(exc)}") from exc
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "feature_extractor"):
        raise ExtractError(f"{checkpoint}: the processor has no tokenizer; save WhisperProcessor next to the model")
    return model.to(device).eval(), processor


def _chunks(wave: np.ndarray) -> list[np.ndarray]:
    """Consecutive windows of at most 30 s (one for shorter audio)."""
    size = int(WINDOW_SECONDS * RATE)
    if len(wave) <= size:
        return [wave]
    return [wave[start : start + size] for start in range(0, len(wave), size)]


class _Transcriber:
    def __init__(self, checkpoint: Path, device: Any, dtype: Any, language: str | None, batch_size: int,
                 max_new_tokens: int) -> None:
        self.model, self.processor = _load(checkpoint, device, dtype)
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.language = language
        limit = int(getattr(self.model.config, "max_target_positions", 448)) - 4  # room for the prompt tokens
        self.max_new_tokens = max(1, min(max_new_tokens, limit))
        if language is not None:
            self._check_language(language, checkpoint)

    def _check_language(self, language: str, checkpoint: Path) -> None:
        known = getattr(self.model.generation_config, "lang_to_id", None) or {}
        if not known:
            raise ExtractError(f"--language {language}: the checkpoint {checkpoint} is not multilingual "
                               "(its generation config has no lang_to_id); leave --language out")
        codes = {key.strip("<|>") for key in known}
        if language.lower() not in codes:
            from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

            if TO_LANGUAGE_CODE.get(language.lower()) not in codes:
                raise ExtractError(f"--language {language!r} is not a language of {checkpoint}; "
                                   f"expected a code such as {', '.join(sorted(codes)[:8])}")

    def texts(self, waves: list[np.ndarray]) -> list[str]:
        """One text per wave: the chunks' texts joined by a space."""
        pieces = [(i, j, chunk) for i, wave in enumerate(waves) for j, chunk in enumerate(_chunks(wave))]
        pieces.sort(key=lambda piece: -len(piece[2]))
        decoded: dict[tuple[int, int], str] = {}
        for start in range(0, len(pieces), self.batch_size):
            batch = pieces[start : start + self.batch_size]
            for (i, j, _), text in zip(batch, self._generate([c for _, _, c in batch]), strict=True):
                decoded[(i, j)] = text.strip()
        texts = []
        for i, wave in enumerate(waves):
            parts = [decoded[(i, j)] for j in range(len(_chunks(wave)))]
            texts.append(" ".join(p for p in parts if p))
        return texts

    def _generate(self, waves: list[np.ndarray]) -> list[str]:
        import torch

        from mer_ensemble.extract._checkpoint import offline_mode

        inputs = self.processor.feature_extractor(waves, sampling_rate=RATE, return_tensors="pt",
                                                  return_attention_mask=True)
        features = inputs["input_features"].to(self.device, self.dtype)
        kwargs: dict[str, Any] = {"attention_mask": inputs["attention_mask"].to(self.device),
                                  "max_new_tokens": self.max_new_tokens}
        if self.language is not None:
            kwargs.update(language=self.language, task="transcribe")
        with torch.inference_mode(), offline_mode():
            tokens = self.model.generate(features, **kwargs)
        return self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)


def transcribe_folder(
    inputs: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    language: str | None = None,
    batch_size: int = 8,
    device: str = "auto",
    fp16: bool | None = None,
    max_new_tokens: int = 440,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> FolderReport:
    """Transcribe every audio file of ``inputs`` into the CSV ``out`` (see the module docstring)."""
    from mer_ensemble.extract._checkpoint import checkpoint_fingerprint, require_checkpoint, resolve_device
    from mer_ensemble.extract._common import ItemFailure
    from mer_ensemble.extract._store import write_errors
    from mer_ensemble.extract.audio import list_audio, read_audio
    from mer_ensemble.progress import progress_bar

    started = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise ExtractError(f"--out {out}: the transcripts are a CSV file; end the name in .csv")
    if batch_size < 1:
        raise ExtractError(f"--batch-size must be at least 1, got {batch_size}")
    checkpoint = require_checkpoint(model)
    items = list_audio(inputs)
    settings = {"checkpoint": checkpoint_fingerprint(checkpoint)["config_sha256"], "language": language,
                "chunk_seconds": WINDOW_SECONDS, "sample_rate": RATE}
    sidecar = out.with_suffix(".json")
    if not overwrite and sidecar.is_file():
        previous = read_json(sidecar, ExtractError).get("settings")
        if previous != settings:
            raise ExtractError(f"{out} holds transcripts made with another checkpoint or language; "
                               "write to a new file, or pass --overwrite to redo every file")
    done = {} if overwrite else read_transcripts(out)
    todo = [item for item in items if item.name not in done]
    failures: list[tuple[str, str, str]] = []
    written = 0
    if todo:
        target, dtype = resolve_device(device, fp16)
        transcriber = _Transcriber(checkpoint, target, dtype, language, batch_size, max_new_tokens)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(sidecar, {"settings": settings, "checkpoint": str(checkpoint), "device": str(target),
                                    "dtype": str(dtype).replace("torch.", "")})
        if log:
            log(f"transcribing {len(todo)} files on {target}; {len(items) - len(todo)} already done")
        window = max(4 * batch_size, 8)
        with progress_bar(len(todo), f"transcribe → {out.name}", enabled=None if progress else False) as advance:
            for start in range(0, len(todo), window):
                group, waves = [], []
                for item in todo[start : start + window]:
                    try:
                        waves.append(read_audio(item.source, RATE))
                        group.append(item)
                    except ItemFailure as exc:
                        failures.append((item.name, item.source, str(exc)))
                if group:
                    for item, text in zip(group, transcriber.texts(waves), strict=True):
                        done[item.name] = text
                    written += len(group)
                    _write_transcripts(out, done)
                advance(len(todo[start : start + window]))
    elif not out.exists():
        _write_transcripts(out, done)
    errors_path = write_errors(out.parent, failures, f"{out.stem}-errors.csv")
    return FolderReport(out, len(items), written, len(items) - len(todo), failures, time.perf_counter() - started,
                        errors_path)
