"""The face detectors that ship inside PyPI wheels, measured on real photos (scikit-image's).

* astronaut: ``skimage.data.astronaut()`` (hand-annotated face box) pasted at 5 scales (face
  about 38-125 px high) and random positions onto 640 x 360 crops of real textures and photos
  (brick, grass, gravel, coffee, rocket), as is and under MER-NOISE's blur (pyrDown/pyrUp by 2
  and 4), a rotation of 10 or 20 degrees, darkening, JPEG quality 15 and sensor noise: hit =
  the largest box overlaps the annotation with IoU >= 0.5; false boxes = boxes with IoU < 0.3;
* LFW: the 100 face and 100 non-face 25 x 25 patches of ``skimage.data.lfw_subset()``,
  up-sampled to 100 x 100 on a grey 160 x 160 canvas (faces found / non-faces with a box);
* photos without a person (chelsea the cat, coffee, rocket, hubble, coins, horse, page, text,
  brick, grass, gravel, moon): boxes found (all false);
* speed: milliseconds per 640 x 360 frame.

    OMP_NUM_THREADS=1 python scripts/bench_face_detector.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import markdown_table  # noqa: E402

from mer_ensemble.media.faces import iou, largest, make_detector  # noqa: E402

#: the astronaut's face in skimage.data.astronaut() (hand-annotated: hairline to chin, cheek to cheek)
ASTRONAUT_FACE = np.array([178.0, 72.0, 271.0, 177.0])
W, H = 640, 360


def backgrounds() -> list[np.ndarray]:
    import cv2
    from skimage import data

    out = []
    for name in ("brick", "grass", "gravel", "coffee", "rocket"):
        image = getattr(data, name)()
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        out.append(cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA))
    return out


def paste(background: np.ndarray, scale: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut scaled by ``scale`` at a random place on ``background``; returns (frame, face box)."""
    import cv2
    from skimage import data

    photo = data.astronaut()
    side = int(round(512 * scale))
    small = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    crop_h = min(side, H)
    x0 = int(rng.integers(0, W - side + 1)) if side <= W else 0
    y0 = int(rng.integers(0, H - crop_h + 1))
    frame = background.copy()
    frame[y0 : y0 + crop_h, x0 : x0 + side] = small[:crop_h]
    return frame, ASTRONAUT_FACE * scale + np.array([x0, y0, x0, y0])


def transform(frame: np.ndarray, box: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    if kind.startswith("blur"):
        factor = int(kind[4:])
        small = frame
        for _ in range(factor.bit_length() - 1):
            small = cv2.pyrDown(small)
        for _ in range(factor.bit_length() - 1):
            small = cv2.pyrUp(small)
        return cv2.resize(small, (W, H)), box
    if kind.startswith("rot"):
        angle = float(kind[3:]) * (1 if rng.random() < 0.5 else -1)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        return cv2.warpAffine(frame, matrix, (W, H), borderMode=cv2.BORDER_REFLECT), box
    if kind == "dark":
        return (frame * 0.35).astype(np.uint8), box
    if kind == "jpeg15":
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 15])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy(), box
    if kind == "noise":
        return np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8), box
    return frame, box


def astronaut_cases(reps: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    kinds = ["clean", "blur2", "blur4", "rot10", "rot20", "dark", "jpeg15", "noise"]
    for background in backgrounds():
        for scale in (0.4, 0.6, 0.8, 1.0, 1.2):
            for kind in kinds:
                for _ in range(reps):
                    frame, box = paste(background, scale, rng)
                    frame, box = transform(frame, box, kind, rng)
                    cases.append((kind, np.ascontiguousarray(frame), box))
    return cases


def lfw_cases() -> tuple[list[np.ndarray], list[np.ndarray]]:
    import cv2
    from skimage import data

    patches = data.lfw_subset()  # (200, 25, 25) float in [0, 1]: 100 faces then 100 non-faces
    frames = []
    for patch in patches:
        canvas = np.full((160, 160), 128, dtype=np.uint8)
        canvas[30:130, 30:130] = cv2.resize((patch * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        frames.append(np.stack([canvas] * 3, axis=-1))
    return frames[:100], frames[100:]


def no_person_photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in ("chelsea", "coffee", "rocket", "hubble_deep_field", "coins", "horse", "page", "text", "brick",
                 "grass", "gravel", "moon"):
        image = np.asarray(getattr(data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        out.append(np.ascontiguousarray(image.astype(np.uint8)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="random placements per background, scale and condition")
    parser.add_argument("--detectors", default="dlib+haar,dlib,haar", help="name[:threshold],... e.g. dlib:0.3")
    parser.add_argument("--min-face", type=int, default=40, help="smallest face side searched, in pixels")
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(1)
    cases = astronaut_cases(args.reps)
    kinds = list(dict.fromkeys(kind for kind, _, _ in cases))
    faces, nonfaces = lfw_cases()
    photos = no_person_photos()
    rows, by_kind = [], {}
    for spec in args.detectors.split(","):
        name, _, threshold = spec.partition(":")
        detector = make_detector(name, min_face=args.min_face, threshold=float(threshold) if threshold else None)
        name = spec
        hits, ious, false_boxes, seconds = {k: [] for k in kinds}, [], 0, 0.0
        for kind, frame, truth in cases:
            started = time.perf_counter()
            boxes = detector.detect(frame)
            seconds += time.perf_counter() - started
            best = largest(boxes)
            overlap = iou(best, truth) if best is not None else 0.0
            hits[kind].append(overlap >= 0.5)
            if best is not None and overlap >= 0.5:
                ious.append(overlap)
            false_boxes += sum(iou(b, truth) < 0.3 for b in boxes)
        lfw_hit = sum(len(detector.detect(f)) > 0 for f in faces)
        lfw_false = sum(len(detector.detect(f)) > 0 for f in nonfaces)
        photo_false = sum(len(detector.detect(p)) for p in photos)
        total = sum(sum(v) for v in hits.values()) / len(cases)
        rows.append([name, f"{total:.3f}", f"{np.mean(ious):.3f}", str(false_boxes), f"{lfw_hit}/100",
                     f"{lfw_false}/100", str(photo_false), f"{1000 * seconds / len(cases):.1f}"])
        by_kind[name] = [f"{np.mean(hits[k]):.3f}" for k in kinds]
    markdown_table(f"Face detectors on real photos ({len(cases)} astronaut frames, 640x360)",
                   ["detector", "astronaut found (IoU >= 0.5)", "mean IoU of hits", "false boxes (astronaut frames)",
                    "LFW faces found", "LFW non-faces with a box", f"boxes on {len(photos)} photos without a person",
                    "ms / frame"], rows)
    markdown_table("Astronaut found (IoU >= 0.5) per condition",
                   ["detector", *kinds], [[name, *values] for name, values in by_kind.items()])


if __name__ == "__main__":
    main()
