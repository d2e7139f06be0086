"""Face detection and face crops for ``prepare``.

Two detectors whose weights ship inside PyPI wheels (nothing is downloaded):

* ``dlib`` (default): dlib's HOG + linear SVM frontal face detector, compiled into the
  ``dlib-bin`` wheel; 80 x 80 pixel windows, so frames are up-sampled when faces may be
  smaller (``min_face``). Score: the SVM margin (detections above ``threshold``).
* ``haar``: OpenCV's Viola-Jones cascade ``haarcascade_frontalface_alt2.xml`` from the
  ``opencv-python-headless`` wheel. Score: the last stage's certainty (``levelWeights``).

``docs/benchmarks.md`` ("Face detectors on real photos") holds the measurement that chose the
default. Every detector returns boxes ``(n, 5)`` float32 ``x1, y1, x2, y2, score`` in source
pixels (``x2``/``y2`` exclusive), best first.

:func:`face_crop` turns the largest box into a square crop with a margin, resized to a fixed
size (as OpenFace's aligned faces are used by the organisers' extractors).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from mer_ensemble.errors import ExtractError

__all__ = ["DETECTORS", "DlibDetector", "FaceDetector", "HaarDetector", "face_crop", "iou", "largest", "make_detector"]


class FaceDetector(ABC):
    """Finds faces in an RGB frame ``(H, W, 3)`` uint8."""

    name: ClassVar[str]

    def __init__(self, *, min_face: int = 40, threshold: float | None = None) -> None:
        self.min_face = int(min_face)
        self.threshold = self.default_threshold if threshold is None else float(threshold)

    default_threshold: ClassVar[float] = 0.0

    @abstractmethod
    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Boxes ``(n, 5)`` float32: ``x1, y1, x2, y2, score`` in pixels of ``rgb``, best score first."""

    def describe(self) -> dict[str, Any]:
        """What the prepare manifest records about the detector."""
        return {"detector": self.name, "min_face": self.min_face, "threshold": self.threshold}


def _sorted(boxes: list[list[float]]) -> np.ndarray:
    if not boxes:
        return np.zeros((0, 5), dtype=np.float32)
    array = np.asarray(boxes, dtype=np.float32)
    return array[np.argsort(-array[:, 4], kind="stable")]


class DlibDetector(FaceDetector):
    """dlib's HOG frontal face detector (weights compiled into ``dlib-bin``)."""

    name = "dlib"
    #: the detector's window: faces smaller than this need an up-sampled frame
    WINDOW = 80
    default_threshold = 0.0

    def __init__(self, *, min_face: int = 40, threshold: float | None = None) -> None:
        super().__init__(min_face=min_face, threshold=threshold)
        try:
            import dlib
        except ImportError as exc:
            raise ExtractError("the dlib face detector needs the dlib-bin package: pip install dlib-bin") from exc
        self._detector = dlib.get_frontal_face_detector()
        upsample = 0
        while self.WINDOW / 2**upsample > max(self.min_face, 1) and upsample < 2:
            upsample += 1
        self.upsample = upsample

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb), self.upsample, self.threshold)
        h, w = rgb.shape[:2]
        boxes = [
            [max(r.left(), 0), max(r.top(), 0), min(r.right() + 1, w), min(r.bottom() + 1, h), s]
            for r, s in zip(rects, scores, strict=True)
        ]
        return _sorted([b for b in boxes if b[2] > b[0] and b[3] > b[1]])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "upsample": self.upsample, "model": "dlib HOG frontal_face_detector"}


class HaarDetector(FaceDetector):
    """OpenCV's Haar cascade ``haarcascade_frontalface_alt2.xml`` (shipped in the OpenCV wheel)."""

    name = "haar"
    CASCADE = "haarcascade_frontalface_alt2.xml"
    default_threshold = 0.0

    def __init__(self, *, min_face: int = 40, threshold: float | None = None) -> None:
        super().__init__(min_face=min_face, threshold=threshold)
        import cv2

        path = str(cv2.data.haarcascades) + "/" + self.CASCADE
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ExtractError(
                f"OpenCV's cascade {path} is missing (opencv-python-headless 5.x no longer ships the Haar cascades; "
                "install opencv-python-headless<5 or use the dlib detector)"
            )

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
        found, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=4, minSize=(self.min_face, self.min_face), outputRejectLevels=True
        )
        boxes = [
            [x, y, x + w, y + h, float(s)] for (x, y, w, h), s in zip(found, np.ravel(weights), strict=True)
            if float(s) > self.threshold
        ]
        return _sorted(boxes)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": f"OpenCV {self.CASCADE}"}


class DlibHaarDetector(FaceDetector):
    """dlib's HOG detector, and OpenCV's Haar cascade on the frames where it finds no face.

    The two fail on different frames (dlib on heavy blur, the cascade on tilted heads; see
    ``docs/benchmarks.md``), so the fallback finds more faces; a frame with a face costs one
    detector, a frame without one costs both.
    """

    name = "dlib+haar"

    def __init__(self, *, min_face: int = 40, threshold: float | None = None) -> None:
        super().__init__(min_face=min_face, threshold=threshold)
        self._first = DlibDetector(min_face=min_face, threshold=threshold)
        self._second = HaarDetector(min_face=min_face)

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        boxes = self._first.detect(rgb)
        return boxes if len(boxes) else self._second.detect(rgb)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "upsample": self._first.upsample,
                "model": f"dlib HOG frontal_face_detector, then OpenCV {HaarDetector.CASCADE} where it finds none"}


DETECTORS: dict[str, type[FaceDetector]] = {"dlib": DlibDetector, "haar": HaarDetector, "dlib+haar": DlibHaarDetector}
DEFAULT_DETECTOR = "dlib"


def make_detector(name: str = DEFAULT_DETECTOR, *, min_face: int = 40, threshold: float | None = None) -> FaceDetector:
    """The detector called ``name`` (:data:`DETECTORS`); :class:`ExtractError` for an unknown one."""
    key = str(name).strip().lower()
    if key not in DETECTORS:
        raise ExtractError(f"unknown face detector {name!r}; expected one of {', '.join(DETECTORS)}")
    if min_face < 8:
        raise ExtractError(f"--min-face {min_face}: faces under 8 pixels cannot be detected; use 8 or more")
    return DETECTORS[key](min_face=min_face, threshold=threshold)


def largest(boxes: np.ndarray) -> np.ndarray | None:
    """The box ``(5,)`` with the largest area, or None when there is none."""
    if len(boxes) == 0:
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[int(np.argmax(areas))]


def face_crop(rgb: np.ndarray, box: np.ndarray, *, size: int = 112, margin: float = 0.2) -> np.ndarray:
    """A square ``(size, size, 3)`` uint8 crop around ``box`` (``x1, y1, x2, y2``).

    The square's side is the box's longer side plus ``margin`` of it on each side, centred on
    the box; parts outside the frame are black (as in OpenFace's aligned faces).
    """
    import cv2

    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    right, bottom = left + max(int(round(side)), 1), top + max(int(round(side)), 1)
    h, w = rgb.shape[:2]
    pad = max(0, -left, -top, right - w, bottom - h)
    frame = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)) if pad else rgb
    crop = frame[top + pad : bottom + pad, left + pad : right + pad]
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes ``x1, y1, x2, y2`` (extra columns ignored)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
