"""Synthetic demo datasets written in the real MER2024 and MEIJU@2025 file layouts.

:func:`make_demo` draws labels with the competitions' class imbalance, then builds
three modality features (audio, text, video) from one low-rank latent model, so
that the ranking of models on the demo data means something:

- a class signal per modality whose strength differs (emotion: audio strong, text
  medium, video weak; MEIJU intent: text strong, audio medium, video weak);
- class-specific confusions: per modality some classes share (almost) the same
  mean, so a pair may be separable in one modality only (e.g. MER2024 happy vs
  surprise is hardly audible but readable from text and video);
- a cross-modal interaction: for one confusable pair per target, the sign of the
  product of an audio and a text latent coordinate decides between the two
  classes; each coordinate alone is uninformative, so only a model that reads
  audio and text jointly and non-linearly can use it;
- per-speaker offsets and expressiveness gains, per-utterance intensity and noise
  level, content factors unrelated to the labels, embedding of the latent code
  into the feature dimension with isotropic noise and a per-dimension affine
  distortion (features are not standardised, like real embeddings);
- a few percent of label noise on the released labels; truth files hold the
  clean labels of the test and unlabelled rows.

Train, pool and test rows are drawn from the same distribution. The output is
deterministic for a seed: labels and names do not depend on ``dims``.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mer_ensemble.errors import DataError
from mer_ensemble.tasks import MEIJU_EMOTIONS, MEIJU_INTENTS, MER2024_CLASSES

__all__ = [
    "DEFAULT_DIMS",
    "DEFAULT_SIZES",
    "FEATURE_FOLDERS",
    "FRAME_RANGES",
    "LABEL_NOISE",
    "LAYOUTS",
    "MODALITIES",
    "make_demo",
    "parse_dims",
]

LAYOUTS = ("mer2024", "meiju")
MODALITIES = ("audio", "text", "video")
DEFAULT_DIMS: dict[str, int] = {"audio": 1024, "text": 768, "video": 512}
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "mer2024": {"n_train": 1200, "n_pool": 3000, "n_test": 400},
    "meiju": {"n_train": 800, "n_pool": 1200, "n_test": 300},
}
FEATURE_FOLDERS: dict[str, dict[str, str]] = {
    "mer2024": {
        "audio": "chinese-hubert-large-UTT",
        "text": "chinese-roberta-wwm-ext-large-UTT",
        "video": "clip-vit-base-patch32-UTT",
    },
    "meiju": {"audio": "hubert-large-FRA", "text": "roberta-large-FRA", "video": "clip-vit-base-FRA"},
}
#: Frames per utterance, inclusive ranges, for the frame-level (MEIJU) layout.
FRAME_RANGES: dict[str, tuple[int, int]] = {"audio": (8, 24), "text": (4, 16), "video": (4, 12)}
#: Fraction of released labels replaced by another class.
LABEL_NOISE = 0.03
#: Share of the labelled MEIJU rows, relative to ``n_train``, written as the validation list.
MEIJU_VALIDATION_SHARE = 0.15
MIN_DIM = 8

_GENERATOR_VERSION = 1
_CHUNK_ROWS = 256
_CLASS_DIMS_MIN = 8
_SPEAKER_DIMS = 4
_CONTENT_DIMS = 16
_CONTENT_STD = 3.0
_SPEAKER_STD = 1.5
_SPEAKER_CLASS_STD = 0.35
_INTERACTION_STRENGTH = 2.5
_LATENT_NOISE_STD = 1.0
_ISO_NOISE_STD = 0.3
_FRAME_NOISE_STD = 1.5
_ROWS_PER_SPEAKER = 25


# --------------------------------------------------------------------------- design tables


@dataclass(frozen=True)
class _TargetDesign:
    """How one label target shows in the three modalities.

    ``strength``: distance between two unmerged class means in noise units, per modality.
    ``merges``: per modality, ``(classes, residual)``: the classes' means are pulled to their
    group mean, keeping ``residual`` of their distance from it (0 = indistinguishable).
    ``boosts``: per modality, classes whose mean is pushed further from the centre.
    ``interaction``: a class pair decided by the sign of (audio coordinate × text coordinate).
    """

    name: str
    classes: tuple[str, ...]
    strength: Mapping[str, float]
    merges: Mapping[str, tuple[tuple[tuple[str, ...], float], ...]] = field(default_factory=dict)
    boosts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    interaction: tuple[str, str] | None = None


MER2024_PRIORS = (0.28, 0.18, 0.22, 0.14, 0.12, 0.06)
MER2024_VALENCE = {"neutral": 0.0, "angry": -2.8, "happy": 2.8, "sad": -3.2, "worried": -1.8, "surprise": 1.2}

MEIJU_EMOTION_PRIORS = (0.20, 0.08, 0.12, 0.05, 0.12, 0.05, 0.38)
MEIJU_INTENT_BASE = (0.18, 0.10, 0.14, 0.08, 0.07, 0.10, 0.05, 0.28)
#: Emotion -> intent affinities that multiply the base intent prior (then renormalised).
MEIJU_AFFINITY: dict[str, dict[str, float]] = {
    "happy": {"wishing": 3.0, "encouraging": 2.0, "agreeing": 1.5, "neutral": 0.6},
    "surprise": {"questioning": 3.0, "acknowledging": 1.3},
    "sad": {"consoling": 5.0, "encouraging": 1.5, "questioning": 0.7},
    "disgust": {"suggesting": 1.5, "questioning": 1.5, "agreeing": 0.4},
    "anger": {"questioning": 2.0, "suggesting": 1.5, "agreeing": 0.4, "consoling": 0.5},
    "fear": {"consoling": 3.0, "questioning": 1.5},
    "neutral": {"neutral": 2.0, "acknowledging": 1.5, "questioning": 1.2},
}

_MER2024_DESIGN = _TargetDesign(
    name="discrete",
    classes=MER2024_CLASSES,
    strength={"audio": 4.2, "text": 2.85, "video": 1.7},
    merges={
        # audio carries arousal: the high-arousal classes are hard to tell apart by voice alone
        "audio": ((("happy", "surprise", "angry"), 0.45), (("sad", "worried"), 0.1)),
        # text carries valence: neutral/worried/surprise wording overlaps
        "text": ((("neutral", "worried"), 0.25), (("neutral", "surprise"), 0.5), (("sad", "worried"), 0.1)),
        "video": ((("neutral", "sad", "worried"), 0.4),),
    },
    boosts={"video": {"happy": 1.5}},
    interaction=("sad", "worried"),
)
_MEIJU_EMOTION_DESIGN = _TargetDesign(
    name="emotion",
    classes=MEIJU_EMOTIONS,
    strength={"audio": 2.9, "text": 2.0, "video": 1.5},
    merges={
        "audio": ((("happy", "surprise"), 0.3), (("anger", "disgust"), 0.1)),
        "text": ((("fear", "sad"), 0.3), (("anger", "disgust"), 0.1)),
        "video": ((("neutral", "sad", "fear"), 0.4),),
    },
    boosts={"video": {"happy": 1.6}},
    interaction=("anger", "disgust"),
)
_MEIJU_INTENT_DESIGN = _TargetDesign(
    name="intent",
    classes=MEIJU_INTENTS,
    strength={"audio": 1.7, "text": 2.8, "video": 0.9},
    merges={
        "audio": ((("agreeing", "acknowledging"), 0.1), (("suggesting", "neutral"), 0.3)),
        "text": ((("agreeing", "acknowledging"), 0.1), (("encouraging", "wishing"), 0.35)),
        "video": ((("questioning", "neutral", "suggesting"), 0.4),),
    },
    boosts={"audio": {"questioning": 1.5}},
    interaction=("agreeing", "acknowledging"),
)


def _meiju_intent_given_emotion() -> np.ndarray:
    """``(n_emotions, n_intents)`` row-stochastic matrix P(intent | emotion)."""
    table = np.tile(np.asarray(MEIJU_INTENT_BASE, dtype=np.float64), (len(MEIJU_EMOTIONS), 1))
    for e, emotion in enumerate(MEIJU_EMOTIONS):
        for intent, factor in MEIJU_AFFINITY[emotion].items():
            table[e, MEIJU_INTENTS.index(intent)] *= factor
    return table / table.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- arguments


def parse_dims(dims: str | Mapping[str, int] | None) -> dict[str, int]:
    """Feature dimension per modality from ``"audio=1024,text=768,video=512"`` or a mapping.

    Modalities left out keep their default (:data:`DEFAULT_DIMS`). Raises
    :class:`DataError` naming the offending item.
    """
    out = dict(DEFAULT_DIMS)
    if dims is None:
        return out
    if isinstance(dims, str):
        items: list[tuple[str, object]] = []
        for raw in dims.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise DataError(f"--dims: item {item!r} is not modality=dim (e.g. audio=1024)")
            items.append((key.strip(), value.strip()))
    else:
        items = list(dims.items())
    seen: set[str] = set()
    for key, value in items:
        if key not in MODALITIES:
            raise DataError(
                f"--dims: unknown modality {key!r} in {key}={value}; expected one of {', '.join(MODALITIES)}"
            )
        if key in seen:
            raise DataError(f"--dims: modality {key!r} given twice")
        seen.add(key)
        try:
            dim = int(str(value))
        except ValueError:
            raise DataError(f"--dims: {key}={value}: the dimension must be an integer") from None
        if dim < MIN_DIM:
            raise DataError(f"--dims: {key}={value}: the dimension must be at least {MIN_DIM}")
        out[key] = dim
    return out


def _check_sizes(layout: str, n_train: int | None, n_pool: int | None, n_test: int | None) -> dict[str, int]:
    sizes = dict(DEFAULT_SIZES[layout])
    for key, value in (("n_train", n_train), ("n_pool", n_pool), ("n_test", n_test)):
        if value is not None:
            sizes[key] = int(value)
    flag = {"n_train": "--n-train", "n_pool": "--n-pool", "n_test": "--n-test"}
    minimum = {"n_train": 20, "n_pool": 0, "n_test": 1}
    for key, low in minimum.items():
        if sizes[key] < low:
            raise DataError(f"{flag[key]}: got {sizes[key]}; must be at least {low}")
    return sizes


# --------------------------------------------------------------------------- label drawing


def _stratified(n: int, priors: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` class indices whose counts follow ``priors`` (largest remainder), shuffled.

    Every class gets at least one row when ``n`` allows it.
    """
    p = np.asarray(priors, dtype=np.float64)
    p = p / p.sum()
    counts = np.floor(p * n).astype(np.int64)
    order = np.argsort(-(p * n - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    if n >= len(p):
        while (counts == 0).any():
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
    return rng.permutation(np.repeat(np.arange(len(p)), counts))


def _add_label_noise(labels: np.ndarray, priors: Sequence[float], rate: float, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``labels`` with a ``rate`` share flipped to another class drawn by prior."""
    noisy = labels.copy()
    flip = rng.random(len(labels)) < rate
    p = np.asarray(priors, dtype=np.float64)
    for i in np.flatnonzero(flip):
        q = p.copy()
        q[labels[i]] = 0.0
        noisy[i] = rng.choice(len(p), p=q / q.sum())
    return noisy


# --------------------------------------------------------------------------- latent model


def _class_means(design: _TargetDesign, modality: str, rng: np.random.Generator) -> np.ndarray:
    """``(n_classes, k)`` class means in one modality's class subspace (noise units)."""
    n = len(design.classes)
    k = max(n, _CLASS_DIMS_MIN)
    basis, _ = np.linalg.qr(rng.standard_normal((k, n)))
    means = basis.T / np.sqrt(2.0)  # every pair at distance 1
    means -= means.mean(axis=0)
    for group, residual in design.merges.get(modality, ()):
        idx = [design.classes.index(c) for c in group]
        centre = means[idx].mean(axis=0)
        means[idx] = centre + residual * (means[idx] - centre)
    for cls, factor in design.boosts.get(modality, {}).items():
        means[design.classes.index(cls)] *= factor
    return means * design.strength[modality]


@dataclass
class _Rows:
    """Per-row quantities shared by all modalities (labels are clean)."""

    labels: dict[str, np.ndarray]
    n_speakers: int
    speaker: np.ndarray
    gain: np.ndarray
    interaction: dict[str, tuple[np.ndarray, np.ndarray]]
    duration: np.ndarray


def _draw_rows(designs: Sequence[_TargetDesign], labels: dict[str, np.ndarray], rng: np.random.Generator) -> _Rows:
    n = len(next(iter(labels.values())))
    n_speakers = max(4, round(n / _ROWS_PER_SPEAKER))
    speaker = rng.integers(0, n_speakers, size=n)
    speaker_gain = rng.uniform(0.7, 1.3, size=n_speakers)
    gain = speaker_gain[speaker] * rng.lognormal(0.0, 0.2, size=n)
    interaction: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for design in designs:
        if design.interaction is None:
            continue
        y = labels[design.name]
        first, second = (design.classes.index(c) for c in design.interaction)
        sign_audio = rng.choice([-1.0, 1.0], size=n)
        sign_text = rng.choice([-1.0, 1.0], size=n)
        sign_text[y == first] = sign_audio[y == first]
        sign_text[y == second] = -sign_audio[y == second]
        magnitude = 1.0 + 0.3 * np.abs(rng.standard_normal((2, n)))
        interaction[design.name] = (
            _INTERACTION_STRENGTH * sign_audio * magnitude[0],
            _INTERACTION_STRENGTH * sign_text * magnitude[1],
        )
    return _Rows(labels, n_speakers, speaker, gain, interaction, rng.random(n))


@dataclass
class _Modality:
    """One modality's generator: latent code per row, then embedding into ``dim``."""

    name: str
    dim: int
    blocks: list[np.ndarray]  # per target: (n_classes, k) class means
    speaker_class: list[np.ndarray]  # per target: (n_speakers, k) offsets in the class subspace
    speaker_nuisance: np.ndarray  # (n_speakers, _SPEAKER_DIMS)
    projection: np.ndarray  # (latent_dim, dim) float32
    scale: np.ndarray  # (dim,)
    bias: np.ndarray  # (dim,)
    rng: np.random.Generator

    def latent(self, rows: _Rows, designs: Sequence[_TargetDesign], idx: np.ndarray) -> np.ndarray:
        """``(len(idx), latent_dim)`` latent code of rows ``idx``."""
        spk = rows.speaker[idx]
        parts = []
        for design, means, offsets in zip(designs, self.blocks, self.speaker_class, strict=True):
            y = rows.labels[design.name][idx]
            within = self.rng.standard_normal((len(idx), means.shape[1])) * _LATENT_NOISE_STD
            parts.append(rows.gain[idx, None] * means[y] + offsets[spk] + within)
        if self.name in ("audio", "text"):
            pick = 0 if self.name == "audio" else 1
            for design in designs:
                if design.name in rows.interaction:
                    coord = rows.interaction[design.name][pick][idx, None]
                    parts.append(coord + self.rng.standard_normal((len(idx), 1)) * _LATENT_NOISE_STD)
        parts.append(self.speaker_nuisance[spk])
        content_std = _CONTENT_STD / np.sqrt(np.arange(1, _CONTENT_DIMS + 1))
        parts.append(self.rng.standard_normal((len(idx), _CONTENT_DIMS)) * content_std)
        return np.concatenate(parts, axis=1)

    def clean(self, rows: _Rows, designs: Sequence[_TargetDesign], idx: np.ndarray) -> np.ndarray:
        """``(len(idx), dim)`` float32 utterance vectors before the affine distortion."""
        z = self.latent(rows, designs, idx).astype(np.float32)
        noise_level = _ISO_NOISE_STD * self.rng.lognormal(0.0, 0.25, size=(len(idx), 1)).astype(np.float32)
        noise = self.rng.standard_normal((len(idx), self.dim), dtype=np.float32)
        return z @ self.projection + noise_level * noise

    def distort(self, x: np.ndarray) -> np.ndarray:
        """Per-dimension affine map, in place where possible, float32."""
        x *= self.scale
        x += self.bias
        return x


def _make_modality(
    name: str,
    dim: int,
    designs: Sequence[_TargetDesign],
    n_speakers: int,
    structure_rng: np.random.Generator,
    rng: np.random.Generator,
) -> _Modality:
    blocks = [_class_means(d, name, structure_rng) for d in designs]
    speaker_class = [rng.standard_normal((n_speakers, b.shape[1])) * _SPEAKER_CLASS_STD for b in blocks]
    speaker_nuisance = rng.standard_normal((n_speakers, _SPEAKER_DIMS)) * _SPEAKER_STD
    n_interactions = sum(d.interaction is not None for d in designs) if name in ("audio", "text") else 0
    latent_dim = sum(b.shape[1] for b in blocks) + n_interactions + _SPEAKER_DIMS + _CONTENT_DIMS
    if dim >= latent_dim:
        projection, _ = np.linalg.qr(rng.standard_normal((dim, latent_dim)))
    else:
        projection = rng.standard_normal((dim, latent_dim))
        projection /= np.linalg.norm(projection, axis=0, keepdims=True)
    scale = rng.lognormal(0.0, 0.3, size=dim)
    bias = rng.normal(0.0, 0.5, size=dim)
    return _Modality(
        name=name,
        dim=dim,
        blocks=blocks,
        speaker_class=speaker_class,
        speaker_nuisance=speaker_nuisance,
        projection=projection.T.astype(np.float32),
        scale=scale.astype(np.float32),
        bias=bias.astype(np.float32),
        rng=rng,
    )


# --------------------------------------------------------------------------- writing


class _NpyWriter:
    """Writes C-ordered float32 ``.npy`` files fast, caching the header per shape."""

    def __init__(self) -> None:
        self._headers: dict[tuple[int, ...], bytes] = {}

    def write(self, path: Path, array: np.ndarray) -> None:
        header = self._headers.get(array.shape)
        if header is None:
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                buf,
                {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                    "fortran_order": False,
                    "shape": array.shape,
                },
            )
            header = self._headers[array.shape] = buf.getvalue()
        with open(path, "wb") as fh:
            fh.write(header)
            fh.write(np.ascontiguousarray(array, dtype=np.float32).tobytes())


def _chunks(n: int) -> Iterator[np.ndarray]:
    for start in range(0, n, _CHUNK_ROWS):
        yield np.arange(start, min(start + _CHUNK_ROWS, n))


def _frame_counts(duration: np.ndarray, modality: str, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` frames per row: tied to the utterance duration, jittered, within the range."""
    low, high = FRAME_RANGES[modality]
    raw = low + duration * (high - low) + rng.normal(0.0, 1.5, size=len(duration))
    return np.clip(np.rint(raw), low, high).astype(np.int64)


def _write_features(
    root: Path,
    names: Sequence[str],
    folders: Mapping[str, str],
    modalities: Sequence[_Modality],
    rows: _Rows,
    designs: Sequence[_TargetDesign],
    frames_rng: np.random.Generator | None,
) -> None:
    """Write every row's feature file per modality; frame level when ``frames_rng`` is given."""
    writer = _NpyWriter()
    for mod in modalities:
        folder = root / "features" / folders[mod.name]
        folder.mkdir(parents=True)
        counts = _frame_counts(rows.duration, mod.name, frames_rng) if frames_rng is not None else None
        for idx in _chunks(len(names)):
            clean = mod.clean(rows, designs, idx)
            if counts is None:
                values = mod.distort(clean)
                for j, i in enumerate(idx):
                    writer.write(folder / f"{names[i]}.npy", values[j])
                continue
            lengths = counts[idx]
            frames = np.repeat(clean, lengths, axis=0)
            frames += _FRAME_NOISE_STD * mod.rng.standard_normal(frames.shape, dtype=np.float32)
            frames = mod.distort(frames)
            ends = np.cumsum(lengths)
            for j, i in enumerate(idx):
                writer.write(folder / f"{names[i]}.npy", frames[ends[j] - lengths[j] : ends[j]])


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    _write_lines(path, [",".join(header)] + [",".join(str(v) for v in row) for row in rows])


# --------------------------------------------------------------------------- layouts


@dataclass
class _Plan:
    """What a layout writes: row names, designs, clean labels and the label files."""

    names: list[str]
    designs: tuple[_TargetDesign, ...]
    labels: dict[str, np.ndarray]
    level: str
    sizes: dict[str, int]
    priors: dict[str, dict[str, float]]
    extra_meta: dict[str, object]
    write_labels: Callable[[Path], None]
    readme: str


def _mer2024_plan(sizes: Mapping[str, int], seed_seqs: Mapping[str, np.random.SeedSequence]) -> _Plan:
    n_train, n_pool, n_test = sizes["n_train"], sizes["n_pool"], sizes["n_test"]
    n_total = n_train + n_pool + n_test
    label_rng = np.random.default_rng(seed_seqs["labels"])
    y = np.concatenate([_stratified(n, MER2024_PRIORS, label_rng) for n in (n_train, n_pool, n_test)])
    released = _add_label_noise(y[:n_train], MER2024_PRIORS, LABEL_NOISE, label_rng)
    valence_mean = np.array([MER2024_VALENCE[c] for c in MER2024_CLASSES])
    valence = np.clip(valence_mean[y[:n_train]] + label_rng.normal(0.0, 0.9, size=n_train), -5.0, 5.0)

    name_rng = np.random.default_rng(seed_seqs["names"])
    ids = name_rng.permutation(n_total) + 1
    names = [f"sample_{i:08d}" for i in ids]
    pool = slice(n_train, n_train + n_pool)
    test = slice(n_train + n_pool, n_total)
    pool_names = sorted(names[pool])
    candidate = sorted(names[test] + sorted(name_rng.choice(pool_names, size=n_pool // 2, replace=False).tolist()))

    def write_labels(root: Path) -> None:
        cls = MER2024_CLASSES
        train_rows = sorted((names[i], cls[released[i]], f"{valence[i]:.2f}") for i in range(n_train))
        _write_csv(root / "label-disdim.csv", ("name", "discrete", "valence"), train_rows)
        _write_csv(root / "test-names.csv", ("name",), [(n,) for n in sorted(names[test])])
        _write_csv(root / "pool-names.csv", ("name",), [(n,) for n in pool_names])
        _write_csv(root / "candidate-names.csv", ("name",), [(n,) for n in candidate])
        for fname, part in (("truth-test.csv", test), ("truth-pool.csv", pool)):
            rows = sorted((names[i], cls[y[i]]) for i in range(n_total)[part])
            _write_csv(root / fname, ("name", "discrete"), rows)

    folders = FEATURE_FOLDERS["mer2024"]
    readme = f"""\
Synthetic demo data in the MER2024 (MER-SEMI) layout, written by mer-ensemble demo-data.
The features are random: they come from a latent model, not from any audio, text or video.

label-disdim.csv     name,discrete,valence   {n_train} labelled train rows ({LABEL_NOISE:.0%} label noise)
test-names.csv       name                    {n_test} test names
pool-names.csv       name                    {n_pool} unlabelled pool names (test names excluded)
candidate-names.csv  name                    {len(candidate)} names: all test names + half of the pool
truth-test.csv       name,discrete           clean test labels (scoring only)
truth-pool.csv       name,discrete           clean pool labels (scoring only)
features/<feature>/<name>.npy  float32 (D,) utterance-level vectors for every name:
  {folders["audio"]} (audio), {folders["text"]} (text),
  {folders["video"]} (video)
demo-meta.json       sizes, dimensions, seed, class priors, generator settings

Classes: {", ".join(MER2024_CLASSES)} (imbalanced like the real set; priors in demo-meta.json).
Train, pool and test rows follow one distribution. Audio is the most informative modality, then
text, then video; some class pairs are separable in one modality only, and sad vs worried mostly
from audio and text read jointly (an interaction no single modality shows).
"""
    return _Plan(
        names=names,
        designs=(_MER2024_DESIGN,),
        labels={"discrete": y},
        level="utt",
        sizes={"train": n_train, "pool": n_pool, "test": n_test, "candidates": len(candidate)},
        priors={"discrete": dict(zip(MER2024_CLASSES, MER2024_PRIORS, strict=True))},
        extra_meta={"valence_means": MER2024_VALENCE},
        write_labels=write_labels,
        readme=readme,
    )


def _meiju_plan(sizes: Mapping[str, int], seed_seqs: Mapping[str, np.random.SeedSequence]) -> _Plan:
    n_train, n_pool, n_test = sizes["n_train"], sizes["n_pool"], sizes["n_test"]
    n_valid = max(1, round(MEIJU_VALIDATION_SHARE * n_train))
    parts = (("Training", n_train), ("Validation", n_valid), ("Testing", n_test), ("NoAnnotation", n_pool))
    names = [f"Track1_{part}_{j:05d}" for part, n in parts for j in range(1, n + 1)]
    n_total = len(names)
    n_labelled = n_train + n_valid

    label_rng = np.random.default_rng(seed_seqs["labels"])
    emotion = np.concatenate([_stratified(n, MEIJU_EMOTION_PRIORS, label_rng) for _, n in parts])
    given = _meiju_intent_given_emotion()
    cumulative = np.cumsum(given[emotion], axis=1)
    intent = (label_rng.random((n_total, 1)) > cumulative).sum(axis=1).clip(0, len(MEIJU_INTENTS) - 1)
    intent_prior = np.asarray(MEIJU_EMOTION_PRIORS) @ given
    released_emotion = _add_label_noise(emotion[:n_labelled], MEIJU_EMOTION_PRIORS, LABEL_NOISE, label_rng)
    released_intent = _add_label_noise(intent[:n_labelled], intent_prior, LABEL_NOISE, label_rng)

    bounds = np.cumsum([0] + [n for _, n in parts])
    split_of = {part: range(bounds[k], bounds[k + 1]) for k, (part, _) in enumerate(parts)}

    def write_labels(root: Path) -> None:
        emo, itn = MEIJU_EMOTIONS, MEIJU_INTENTS
        for part in ("Training", "Validation"):
            _write_lines(
                root / f"{part}_files.txt",
                [f"{names[i]}.mp4 {emo[released_emotion[i]]} {itn[released_intent[i]]}" for i in split_of[part]],
            )
        _write_lines(root / "Testing_files.txt", [f"{names[i]}.mp4" for i in split_of["Testing"]])
        _write_lines(root / "NoAnnotation_files.txt", [f"{names[i]}.mp4" for i in split_of["NoAnnotation"]])
        truth = [
            (names[i], split, emo[emotion[i]], itn[intent[i]])
            for part, split in (("Testing", "test"), ("NoAnnotation", "unlabeled"))
            for i in split_of[part]
        ]
        _write_csv(root / "truth.csv", ("name", "split", "emotion", "intent"), truth)

    folders = FEATURE_FOLDERS["meiju"]
    ranges = ", ".join(f"{m} {lo}-{hi}" for m, (lo, hi) in FRAME_RANGES.items())
    readme = f"""\
Synthetic demo data in the MEIJU@2025 Track 1 layout, written by mer-ensemble demo-data.
The features are random: they come from a latent model, not from any audio, text or video.

Training_files.txt      <name>.mp4 <emotion> <intent>   {n_train} labelled rows ({LABEL_NOISE:.0%} label noise)
Validation_files.txt    <name>.mp4 <emotion> <intent>   {n_valid} labelled rows
Testing_files.txt       <name>.mp4                      {n_test} test rows
NoAnnotation_files.txt  <name>.mp4                      {n_pool} unlabelled pool rows
truth.csv               name,split,emotion,intent       clean labels of test and pool rows (scoring only)
features/<feature>/<name>.npy  float32 (T, D) frame-level arrays for every name, T varying
  ({ranges}); mean pooling over T recovers the utterance signal:
  {folders["audio"]} (audio), {folders["text"]} (text), {folders["video"]} (video)
demo-meta.json          sizes, dimensions, seed, class priors, generator settings

Emotions: {", ".join(MEIJU_EMOTIONS)}.
Intents: {", ".join(MEIJU_INTENTS)}
(correlated with the emotion, e.g. sad -> consoling; P(intent | emotion) in demo-meta.json).
Train, validation, pool and test rows follow one distribution. Emotion is clearest in audio,
intent in text; video is weak for both. Some class pairs are separable in one modality only, and
anger vs disgust and agreeing vs acknowledging mostly from audio and text read jointly.
"""
    return _Plan(
        names=names,
        designs=(_MEIJU_EMOTION_DESIGN, _MEIJU_INTENT_DESIGN),
        labels={"emotion": emotion, "intent": intent},
        level="frame",
        sizes={"train": n_train, "validation": n_valid, "pool": n_pool, "test": n_test},
        priors={
            "emotion": dict(zip(MEIJU_EMOTIONS, MEIJU_EMOTION_PRIORS, strict=True)),
            "intent": {c: round(float(p), 4) for c, p in zip(MEIJU_INTENTS, intent_prior, strict=True)},
        },
        extra_meta={
            "intent_given_emotion": {
                e: {c: round(float(p), 4) for c, p in zip(MEIJU_INTENTS, row, strict=True)}
                for e, row in zip(MEIJU_EMOTIONS, given, strict=True)
            },
            "frame_ranges": {m: list(r) for m, r in FRAME_RANGES.items()},
        },
        write_labels=write_labels,
        readme=readme,
    )


def _design_meta(design: _TargetDesign) -> dict[str, object]:
    return {
        "strength": dict(design.strength),
        "merged": {m: [{"classes": list(g), "residual": r} for g, r in groups] for m, groups in design.merges.items()},
        "interaction_audio_x_text": list(design.interaction) if design.interaction else None,
    }


# --------------------------------------------------------------------------- entry point


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise DataError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not overwrite:
            raise DataError(f"{out}: folder exists and is not empty; pass --overwrite to replace it")


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing an existing one."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f"{out.name}.old-{secrets.token_hex(4)}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def make_demo(
    out: str | os.PathLike[str],
    layout: str = "mer2024",
    n_train: int | None = None,
    n_pool: int | None = None,
    n_test: int | None = None,
    dims: str | Mapping[str, int] | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in ``layout``'s real file layout to ``out`` and return its path.

    ``layout``: ``mer2024`` (utterance-level ``(D,)`` features, ``label-disdim.csv`` ...) or
    ``meiju`` (frame-level ``(T, D)`` features, ``Training_files.txt`` ...). Sizes left as
    ``None`` take the layout's defaults (:data:`DEFAULT_SIZES`); ``dims`` maps modality to
    feature dimension (string ``"audio=1024,text=768,video=512"`` or a mapping, defaults
    :data:`DEFAULT_DIMS`). The folder is built under a temporary sibling name and renamed
    into place; an existing non-empty ``out`` is refused unless ``overwrite``.
    """
    if layout not in LAYOUTS:
        raise DataError(f"--layout: unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if seed < 0:
        raise DataError(f"--seed: got {seed}; must be a non-negative integer")
    sizes = _check_sizes(layout, n_train, n_pool, n_test)
    dim_of = parse_dims(dims)
    out = Path(os.path.abspath(out))
    _prepare_out(out, overwrite)

    root_seq = np.random.SeedSequence([seed, LAYOUTS.index(layout)])
    streams = ("labels", "names", "rows", "structure", "frames", *MODALITIES)
    seed_seqs = dict(zip(streams, root_seq.spawn(len(streams)), strict=True))
    plan = (_mer2024_plan if layout == "mer2024" else _meiju_plan)(sizes, seed_seqs)

    rows = _draw_rows(plan.designs, plan.labels, np.random.default_rng(seed_seqs["rows"]))
    n_speakers = rows.n_speakers
    structure_rng = np.random.default_rng(seed_seqs["structure"])
    modalities = [
        _make_modality(m, dim_of[m], plan.designs, n_speakers, structure_rng, np.random.default_rng(seed_seqs[m]))
        for m in MODALITIES
    ]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        plan.write_labels(tmp)
        frames_rng = np.random.default_rng(seed_seqs["frames"]) if plan.level == "frame" else None
        _write_features(tmp, plan.names, FEATURE_FOLDERS[layout], modalities, rows, plan.designs, frames_rng)
        meta = {
            "generator": "mer_ensemble.data.demo",
            "version": _GENERATOR_VERSION,
            "synthetic": True,
            "layout": layout,
            "seed": seed,
            "sizes": plan.sizes,
            "dims": dim_of,
            "level": plan.level,
            "features": dict(FEATURE_FOLDERS[layout]),
            "priors": plan.priors,
            "label_noise": LABEL_NOISE,
            "n_speakers": n_speakers,
            "targets": {d.name: _design_meta(d) for d in plan.designs},
            **plan.extra_meta,
        }
        (tmp / "demo-meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.txt").write_text(plan.readme, encoding="utf-8")
        _prepare_out(out, overwrite)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
