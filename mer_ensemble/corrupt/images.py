"""Images and frame folders made noisy as MER-NOISE did: blurred by a factor drawn per item
(``cv2.pyrDown`` then ``cv2.pyrUp`` back, or a bilinear resize)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError
from mer_ensemble.io import atomic_write_bytes

__all__ = ["IMAGE_EXTENSIONS", "blur", "blur_array", "corrupt_images", "draw_blur_factor"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def blur_array(rgb: np.ndarray, factor: int, method: str = "pyramid") -> np.ndarray:
    """``(H, W, C)`` uint8 blurred by ``factor``, same shape out (factor 1: a copy).

    ``pyramid`` (the organisers'): ``cv2.pyrDown`` log2(factor) times, then ``cv2.pyrUp`` back
    through the same sizes (factor must be a power of two); ``resize``: bilinear down-sampling
    by the factor and back.
    """
    import cv2

    if factor == 1:
        return rgb.copy()
    h, w = rgb.shape[:2]
    if method == "resize":
        small = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    sizes, out = [], rgb
    for _ in range(int(factor).bit_length() - 1):
        sizes.append((out.shape[1], out.shape[0]))
        out = cv2.pyrDown(out)
    for size in reversed(sizes):
        out = cv2.pyrUp(out, dstsize=size)
    return out


def blur(image: Any, factor: int, method: str = "pyramid") -> Any:
    """A PIL image blurred by ``factor`` (:func:`blur_array`), same size and mode."""
    from PIL import Image

    if factor == 1:
        return image.copy()
    if method == "resize":
        w, h = image.size
        small = image.resize((max(1, w // factor), max(1, h // factor)), Image.BILINEAR)
        return small.resize((w, h), Image.BILINEAR)
    return Image.fromarray(blur_array(np.asarray(image), factor, method))


def draw_blur_factor(rng: np.random.Generator, factors: Sequence[int]) -> int:
    """One of ``factors``, drawn with ``rng``."""
    return int(factors[int(rng.integers(0, len(factors)))])


def corrupt_images(kind: str, path: Path, out: Path, rng: np.random.Generator,
                   settings: dict[str, Any]) -> dict[str, Any]:
    """Write a blurred copy of an image (``kind`` ``image``) or of every frame of a frame folder
    (``frames``), one factor for all; returns the record fields."""
    from PIL import Image, UnidentifiedImageError

    factor = draw_blur_factor(rng, settings["blur_factors"])
    frames = [path] if kind == "image" else sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    target = out if kind == "image" else out / path.name
    target.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        if factor == 1:  # an exact copy, not a re-encoded one
            atomic_write_bytes(target / frame.name, frame.read_bytes())
            continue
        try:
            with Image.open(frame) as image:
                image.load()
                blurred = blur(image, factor, settings["blur_method"])
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{frame}: unreadable image ({str(exc).strip()})") from None
        buffer = io.BytesIO()
        blurred.save(buffer, format=image.format or frame.suffix.lstrip(".").upper().replace("JPG", "JPEG"))
        atomic_write_bytes(target / frame.name, buffer.getvalue())
    return {"blur_factor": factor, "frames": len(frames)}
