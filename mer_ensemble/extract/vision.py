"""Vision features from a local image checkpoint (CLIP, SigLIP, ViT, DINOv2, ...).

Input: a folder holding one sub-folder per name with that name's face frames (images, searched
recursively, e.g. OpenFace's ``<name>/<name>_aligned/frame_det_00_000001.bmp``), ordered by
natural sort of their paths. Each frame becomes one image embedding, so the frames are ``(T, D)``
with ``T`` the number of frames; ``-UTT`` is their mean.

The embedding is, in this order of preference: the projected image embedding of a dual
encoder (``get_image_features``, e.g. CLIP's 768-d for ViT-L/14), ``image_embeds`` of a
``*WithProjection`` model, the model's ``pooler_output``, else the mean of its last hidden state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError
from mer_ensemble.extract._checkpoint import load_model, load_preprocessor
from mer_ensemble.extract._common import ExtractOptions, Extractor, Item, ItemFailure, natural_key

__all__ = ["IMAGE_EXTENSIONS", "VisionExtractor", "list_frame_folders", "list_frames"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_frame_folders(folder: str | Path) -> list[Item]:
    """One item per sub-folder of ``folder`` (name = sub-folder name), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"vision input folder not found: {folder}")
    names = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"no per-name frame folders in {folder} (expected {folder}/<name>/<frame images>)")
    return [Item(p.name, str(p)) for p in names]


def list_frames(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (recursive), in natural order; :class:`ItemFailure` when none."""
    folder = Path(folder)
    frames = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not frames:
        raise ItemFailure(f"no frames ({', '.join(IMAGE_EXTENSIONS)} images) in {folder}")
    return sorted(frames, key=lambda p: natural_key(str(p.relative_to(folder))))


def _open_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ItemFailure(f"unreadable frame {path.name}: {exc}") from exc


class VisionExtractor(Extractor):
    """One image embedding per frame; see the module docstring."""

    modality = "vision"

    def __init__(self, checkpoint: Path, options: ExtractOptions, device: Any, dtype: Any) -> None:
        self.device, self.dtype = device, dtype
        self.batch_size = options.batch_size
        self.window_items = 4
        self.model = load_model(checkpoint, "vision", device, dtype, trust_remote_code=options.trust_remote_code)
        self.processor = load_preprocessor(checkpoint, "vision", trust_remote_code=options.trust_remote_code)
        self.embedding = "get_image_features" if hasattr(self.model, "get_image_features") else None
        self.n_frames = 0

    def load(self, item: Item) -> list[Path]:
        """The name's frame paths (images are opened batch by batch in :meth:`encode`)."""
        return list_frames(item.source)

    def encode(self, batch: list[tuple[str, Any]]) -> dict[str, np.ndarray | str]:
        """Frame embeddings ``(T, D)`` per name; one unreadable frame fails its whole name."""
        queue = [(name, path) for name, paths in batch for path in paths]
        failed: dict[str, str] = {}
        rows: dict[str, list[np.ndarray]] = {name: [] for name, _ in batch}
        for start in range(0, len(queue), self.batch_size):
            owners, images = [], []
            for name, path in queue[start : start + self.batch_size]:
                if name in failed:
                    continue
                try:
                    images.append(_open_image(path))
                    owners.append(name)
                except ItemFailure as exc:
                    failed[name] = str(exc)
            if not images:
                continue
            for name, vector in zip(owners, self._embed(images), strict=True):
                rows[name].append(vector)
        self.n_frames += sum(len(paths) for _, paths in batch)
        return {name: failed[name] if name in failed else np.stack(rows[name]) for name, _ in batch}

    def describe(self) -> dict[str, Any]:
        """Which embedding was taken and how many frames were read."""
        return {"embedding": self.embedding, "frames_read": self.n_frames}

    def _embed(self, images: list[Any]) -> np.ndarray:
        """Embeddings ``(B, D)`` float32 of a batch of RGB images."""
        import torch

        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            if self.embedding == "get_image_features":
                result = self.model.get_image_features(pixel_values=pixels)
                vectors = result if isinstance(result, torch.Tensor) else result.pooler_output
            else:
                vectors = self._from_outputs(self.model(pixel_values=pixels))
        return vectors.float().cpu().numpy()

    def _from_outputs(self, outputs: Any) -> Any:
        for key in ("image_embeds", "pooler_output"):
            value = getattr(outputs, key, None)
            if value is not None:
                self.embedding = key
                return value.reshape(value.shape[0], -1)
        self.embedding = "last_hidden_state mean over tokens"
        hidden = outputs.last_hidden_state
        return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(dim=2)
