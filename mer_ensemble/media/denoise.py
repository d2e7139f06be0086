"""Speech enhancement before feature extraction (``mer-ensemble denoise``).

Two methods; both write every audio file of ``inputs`` to ``out`` under the same name, with
the same length, sample rate, channels and sample format:

* ``spectral`` (no weights): non-stationary spectral gating with ``noisereduce``, each
  channel on its own (``strength`` = its ``prop_decrease``: 1 removes the estimated noise
  fully, 0.5 half of it).
* a local enhancement checkpoint (``--model FOLDER``) for GPU teams, e.g. a MossFormer2 or
  SepFormer model exported with torch. The folder holds ``enhancer.json``, the contract::

      {
        "format": "mer-ensemble enhancer v1",
        "model": "model.pt2",         # in the folder: torch.export (.pt2) or TorchScript (torch.jit.save)
        "sample_rate": 16000,         # the rate the model reads and writes
        "output": "waveform",         # "waveform": (B, T) out; "sources": (B, S, T) or (B, T, S)
        "speech_source": 0,           # with "sources": the index of speech, or "loudest"
        "chunk_seconds": 10.0         # optional: long audio in chunks (0: the whole file at once)
      }

  The model is called as ``model(wave)`` on ``wave`` ``(B, T)`` float32 in [-1, 1] at
  ``sample_rate`` (mono) and must return the enhanced speech as said by ``output``, with
  ``T`` samples (longer outputs are cut, shorter ones padded with zeros). Chunks overlap by
  a quarter of a second and are cross-faded. Files are resampled to and from the model's
  rate; multi-channel files are averaged to mono first and written with the enhanced signal
  in every channel. On CUDA the model runs under float16 autocast unless ``fp16`` is False.

Resumable like ``extract``: existing outputs are skipped, and ``out/denoise.json`` records the
method (a rerun with another is refused); unreadable files are listed in ``out/errors.csv``.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError, ExtractError
from mer_ensemble.io import atomic_write_bytes, atomic_write_json, read_json
from mer_ensemble.media._report import FolderReport

__all__ = ["CONTRACT", "Enhancer", "denoise_folder", "load_enhancer", "spectral_gate"]

CONTRACT = "enhancer.json"
FORMAT = "mer-ensemble enhancer v1"
OVERLAP_SECONDS = 0.25
SETTINGS = "denoise.json"


def spectral_gate(wave: np.ndarray, rate: int, strength: float = 1.0) -> np.ndarray:
    """``noisereduce``'s non-stationary spectral gating of ``(n,)`` or ``(n, channels)`` samples;
    same shape out."""
    import noisereduce

    def one(channel: np.ndarray) -> np.ndarray:
        cleaned = noisereduce.reduce_noise(y=channel, sr=rate, stationary=False, prop_decrease=strength)
        return np.asarray(cleaned, dtype=np.float64)[: len(channel)]

    if wave.ndim == 1:
        return one(wave)
    return np.stack([one(wave[:, c]) for c in range(wave.shape[1])], axis=1)


class Enhancer:
    """A loaded enhancement checkpoint (see the module docstring for the folder's contract)."""

    def __init__(self, folder: Path, spec: dict[str, Any], module: Any, device: Any, autocast: bool) -> None:
        self.folder, self.spec, self.module = folder, spec, module
        self.device, self.autocast = device, autocast
        self.rate = int(spec["sample_rate"])
        self.chunk = int(round(float(spec.get("chunk_seconds") or 0) * self.rate))

    def __call__(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """Enhanced ``(n,)`` float64 from mono ``(n,)`` samples at ``rate`` (same length out)."""
        from mer_ensemble.extract.audio import resample

        model_in = resample(np.asarray(wave, dtype=np.float32), rate, self.rate)
        model_out = self._chunked(model_in)
        back = resample(model_out, self.rate, rate).astype(np.float64)
        return _fit(back, len(wave))

    def _chunked(self, wave: np.ndarray) -> np.ndarray:
        if not self.chunk or len(wave) <= self.chunk:
            return _fit(self._forward(wave[None, :])[0], len(wave))
        overlap = min(int(OVERLAP_SECONDS * self.rate), self.chunk // 4)
        hop = self.chunk - overlap
        starts = list(range(0, max(len(wave) - overlap, 1), hop))
        pieces = np.zeros((len(starts), self.chunk), dtype=np.float32)
        for row, start in enumerate(starts):
            part = wave[start : start + self.chunk]
            pieces[row, : len(part)] = part
        outputs = self._forward(pieces)
        total = np.zeros(starts[-1] + self.chunk, dtype=np.float64)
        weight = np.zeros_like(total)
        fade = np.ones(self.chunk)
        if overlap:
            ramp = np.linspace(0.0, 1.0, overlap + 2)[1:-1]
            fade[:overlap], fade[-overlap:] = ramp, ramp[::-1]
        for row, start in enumerate(starts):
            total[start : start + self.chunk] += outputs[row] * fade
            weight[start : start + self.chunk] += fade
        return (total / np.maximum(weight, 1e-8))[: len(wave)].astype(np.float32)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """``(B, T)`` in, ``(B, T)`` enhanced out (float32)."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.autocast):
            result = self.module(tensor)
        if isinstance(result, (tuple, list)):
            result = result[0]
        out = result.float().cpu().numpy()
        if self.spec.get("output", "waveform") == "sources":
            out = self._speech(out, batch.shape[1])
        if out.ndim != 2 or out.shape[0] != batch.shape[0]:
            raise ExtractError(f"{self.folder}: the model returned shape {tuple(out.shape)} for input "
                               f"{tuple(batch.shape)}; {CONTRACT} says output {self.spec.get('output', 'waveform')!r}")
        return np.stack([_fit(row, batch.shape[1]) for row in out])

    def _speech(self, out: np.ndarray, length: int) -> np.ndarray:
        """``(B, T)`` speech from a separation model's ``(B, S, T)`` or ``(B, T, S)`` sources."""
        if out.ndim != 3:
            raise ExtractError(f"{self.folder}: output 'sources' needs (B, S, T) or (B, T, S), got {out.shape}")
        if abs(out.shape[1] - length) < abs(out.shape[2] - length):
            out = out.transpose(0, 2, 1)  # (B, T, S) -> (B, S, T)
        choice = self.spec.get("speech_source", 0)
        if choice == "loudest":
            index = np.argmax((out**2).mean(axis=2), axis=1)
            return out[np.arange(len(out)), index]
        return out[:, int(choice)]


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    """``wave`` cut or zero-padded to ``length`` samples."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))


def load_enhancer(folder: str | Path, device: str = "auto", fp16: bool | None = None) -> Enhancer:
    """Load an enhancement checkpoint folder; :class:`ExtractError` naming what breaks the contract."""
    from mer_ensemble.extract._checkpoint import resolve_device

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ExtractError(f"--model {folder}: enhancement checkpoint folder not found")
    contract = folder / CONTRACT
    if not contract.is_file():
        hint = " (a transformers checkpoint is for extract, not denoise)" if (folder / "config.json").is_file() else ""
        raise ExtractError(f"{folder}: no {CONTRACT}{hint}; an enhancement checkpoint folder holds {CONTRACT} "
                           "and a TorchScript or torch.export model (see docs/media.md)")
    spec = read_json(contract, ExtractError)
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ExtractError(f"{contract}: 'format' must be {FORMAT!r}")
    for key in ("model", "sample_rate"):
        if key not in spec:
            raise ExtractError(f"{contract}: missing key {key!r}")
    if spec.get("output", "waveform") not in ("waveform", "sources"):
        raise ExtractError(f"{contract}: output {spec.get('output')!r}; expected 'waveform' or 'sources'")
    source = spec.get("speech_source", 0)
    if not (source == "loudest" or (isinstance(source, int) and source >= 0)):
        raise ExtractError(f"{contract}: speech_source {source!r}; expected a source index or 'loudest'")
    if not isinstance(spec["sample_rate"], int) or not 4000 <= spec["sample_rate"] <= 192000:
        raise ExtractError(f"{contract}: sample_rate {spec['sample_rate']!r}; expected an integer rate in Hz")
    target, dtype = resolve_device(device, fp16)
    module = _load_module(folder / str(spec["model"]), target)
    return Enhancer(folder, spec, module, target, autocast=target.type == "cuda" and str(dtype) == "torch.float16")


def _load_module(path: Path, device: Any) -> Any:
    import torch

    if not path.is_file():
        raise ExtractError(f"{path}: the model file named in {CONTRACT} is missing")
    try:
        if path.suffix == ".pt2":
            program = torch.export.load(str(path))
            if device.type != "cpu":
                from torch.export.passes import move_to_device_pass

                program = move_to_device_pass(program, device)
            return program.module()  # an exported graph is always in inference mode (no .eval())
        else:
            import warnings

            with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, but still loads
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError, OSError, zipfile.BadZipFile, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExtractError(
            f"{path}: not a torch.export (.pt2) or TorchScript (torch.jit.save) model: {first}"
        ) from None
    return module.to(device).eval()


def _method_settings(method: str, model: str | Path | None, strength: float) -> dict[str, Any]:
    if model is not None:
        folder = Path(model).expanduser().resolve()
        contract = folder / CONTRACT
        digest = ""
        if contract.is_file():
            import hashlib

            digest = hashlib.sha256(contract.read_bytes()).hexdigest()
        return {"method": "model", "model": str(folder), "contract_sha256": digest}
    if method != "spectral":
        raise ExtractError(f"--method {method!r}: expected 'spectral' (or pass --model for a checkpoint)")
    if not 0 < strength <= 1:
        raise ExtractError(f"--strength {strength}: expected a fraction in (0, 1]")
    return {"method": "spectral", "strength": strength, "library": "noisereduce (non-stationary spectral gating)"}


def denoise_folder(
    inputs: str | Path,
    out: str | Path,
    *,
    method: str = "spectral",
    model: str | Path | None = None,
    strength: float = 1.0,
    device: str = "auto",
    fp16: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> FolderReport:
    """Enhance every audio file of ``inputs`` into ``out`` (see the module docstring)."""
    from mer_ensemble.extract.audio import list_audio
    from mer_ensemble.progress import progress_bar

    started = time.perf_counter()
    inputs, out = Path(inputs), Path(out)
    if out.resolve() == inputs.resolve() or inputs.resolve() in out.resolve().parents:
        raise DataError(f"--out {out} is the input folder or inside it; denoise never overwrites its inputs")
    settings = _method_settings(method, model, strength)
    items = list_audio(inputs)
    if not overwrite and (out / SETTINGS).is_file():
        previous = read_json(out / SETTINGS, ExtractError).get("settings")
        if previous != settings:
            raise ExtractError(f"{out} holds audio denoised with another method ({json.dumps(previous)}); "
                               "write to a new folder or pass --overwrite")
    todo = items if overwrite else [i for i in items if not (out / Path(i.source).name).exists()]
    failures: list[tuple[str, str, str]] = []
    if todo:
        enhance = _method(settings, model, strength, device, fp16)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / SETTINGS, {"settings": settings, "complete": False})
        if log:
            log(f"denoising {len(todo)} files ({settings['method']}); {len(items) - len(todo)} already done")
        with progress_bar(len(todo), f"denoise → {out.name}", enabled=None if progress else False) as advance:
            for item in todo:
                try:
                    _denoise_file(Path(item.source), out, enhance)
                except (DataError, RuntimeError, ValueError) as exc:
                    failures.append((item.name, item.source, str(exc).strip().splitlines()[0]))
                advance(1)
        atomic_write_json(out / SETTINGS, {"settings": settings, "complete": not failures})
    from mer_ensemble.extract._store import write_errors

    errors_path = write_errors(out, failures) if out.exists() else None
    return FolderReport(out, len(items), len(todo) - len(failures), len(items) - len(todo), failures,
                        time.perf_counter() - started, errors_path)


def _method(settings: dict[str, Any], model: str | Path | None, strength: float, device: str,
            fp16: bool | None) -> Callable[[np.ndarray, int], np.ndarray]:
    """``enhance(wave, rate)`` for ``(n,)`` or ``(n, channels)`` float64 samples, same shape out."""
    if settings["method"] == "spectral":
        return lambda wave, rate: spectral_gate(wave, rate, strength)
    enhancer = load_enhancer(model, device, fp16)  # type: ignore[arg-type]

    def enhance(wave: np.ndarray, rate: int) -> np.ndarray:
        mono = wave.mean(axis=1) if wave.ndim == 2 else wave
        cleaned = enhancer(mono, rate)
        return np.repeat(cleaned[:, None], wave.shape[1], axis=1) if wave.ndim == 2 else cleaned

    return enhance


def _denoise_file(path: Path, out: Path, enhance: Callable[[np.ndarray, int], np.ndarray]) -> None:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        wave, rate = sf.read(str(path), dtype="float64", always_2d=False)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError by backend
        raise DataError(f"unreadable audio: {str(exc).strip() or type(exc).__name__}") from None
    if len(wave) == 0:
        raise DataError("empty audio (0 samples)")
    cleaned = enhance(wave, int(rate))
    if cleaned.shape != wave.shape:
        raise DataError(f"the enhanced audio has shape {cleaned.shape}, not the input's {wave.shape}")
    peak = float(np.max(np.abs(cleaned))) if cleaned.size else 0.0
    if peak > 1.0 and info.subtype.startswith("PCM"):
        cleaned = cleaned / peak  # integer formats would clip
    buffer = io.BytesIO()
    sf.write(buffer, cleaned, rate, subtype=info.subtype, format=info.format)
    atomic_write_bytes(out / path.name, buffer.getvalue())
