"""The sections of an experiment config, one pydantic model each: ``data``, ``scoring``, ``cv``,
``models`` entries, ``portfolio``, ``train``, ``blend``, ``pseudo`` and ``media`` (with its
``extractors``). :mod:`mer_ensemble.config` puts them together into a :class:`~mer_ensemble.config.Config`
and reads it from YAML; the names are importable from there too.

Each model checks its own values (run ids, seeds, durations, feature lists, extractor inputs) and
refuses unknown keys, so an error names the section and the key.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mer_ensemble.errors import ConfigError

#: what mer_ensemble.config re-exports (MAX_SEED, check_seeds and StrictModel are for the config modules)
__all__ = [
    "BlendConfig",
    "CVConfig",
    "DataConfig",
    "ExtractorSpec",
    "MediaConfig",
    "ModelSpec",
    "PortfolioConfig",
    "PseudoConfig",
    "ScoringConfig",
    "TrainConfig",
    "parse_duration",
]


class StrictModel(BaseModel):
    """A config model that refuses unknown keys and checks values set after construction."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Where the data lives and how it is laid out."""

    layout: Literal["mer2024", "meiju", "generic"]
    root: str
    features: dict[str, list[str]] = Field(
        description="modality -> feature folder names, e.g. {audio: [whisper-tiny-UTT], text: [minilm-UTT]}"
    )
    targets: list[str] | None = None
    group_by: str | None = None
    classes: dict[str, list[str]] = Field(default_factory=dict)
    feature_root: str | list[str] | None = Field(
        None, description="folder(s) holding the feature folders, searched in order (default <root>/features); "
        "relative paths are relative to data.root, e.g. MEIJU Track 1: [Annotation/features, NoAnnotation/features]",
    )
    label_file: str | None = None
    test_file: str | None = None
    pool_file: str | None = None
    candidate_file: str | None = None
    train_splits: list[Literal["train", "dev"]] = Field(default_factory=lambda: ["train", "dev"])
    max_frames: int = Field(64, ge=1)
    text_column: str | None = Field(None, description="the column holding each row's text (generic labels CSV, "
                                    "MEIJU CSV lists, data.text_file); default text / sentence")
    text_file: str | list[str] | None = Field(None, description="transcript CSV(s) with a name and a text column, "
                                              "relative to data.root (e.g. MER2024: name,english,chinese)")
    audio_dir: str | None = Field(None, description="folder of <name>.wav (.flac, .mp3, .m4a, .ogg) per name, "
                                  "relative to data.root")

    @field_validator("feature_root", "text_file")
    @classmethod
    def _roots_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list; name at least one folder or leave the key out")
        return value
    cache: bool = True
    noise_variants: dict[str, list[str]] = Field(
        default_factory=dict,
        description="feature -> noisy variant folders of it (e.g. {hubert-UTT: [hubert_5_UTT]}), "
        "mixed into training by models with variant_prob > 0",
    )

    @field_validator("features")
    @classmethod
    def _features_not_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value or not any(value.values()):
            raise ValueError("needs at least one modality with one feature folder")
        seen: dict[str, str] = {}
        for modality, names in value.items():
            for name in names:
                if name in seen:
                    raise ValueError(f"feature {name!r} listed twice (under {seen[name]} and {modality})")
                seen[name] = modality
        return value


class ScoringConfig(StrictModel):
    """Metric overrides; by default the task preset decides."""

    metric: str | dict[str, str] | None = None
    combine: Literal["joint", "mean"] | None = None


#: the largest model seed: fold ``k`` of seed ``s`` is seeded with ``s * 1000 + k``, which numpy and
#: scikit-learn need below 2**32
MAX_SEED = (2**32 - 1000) // 1000


def check_seeds(value: list[int] | None, *, empty_ok: bool = False) -> list[int] | None:
    """Model seeds: a non-empty list of distinct whole numbers in ``0..MAX_SEED``."""
    if value is None:
        return None
    if not value and not empty_ok:
        raise ValueError("an empty list; give at least one seed, e.g. [0] (or a count such as 3 for [0, 1, 2])")
    bad = [s for s in value if not 0 <= s <= MAX_SEED]
    if bad:
        raise ValueError(f"seed {bad[0]} is out of range; seeds are whole numbers from 0 to {MAX_SEED} "
                         "(fold k of seed s is seeded with s * 1000 + k, which must stay below 2**32)")
    repeated = sorted({s for s in value if value.count(s) > 1})
    if repeated:
        raise ValueError(f"seed {repeated[0]} is listed twice; give each seed once")
    return value


class CVConfig(StrictModel):
    """Fixed folds (data) and model seeds (``0..MAX_SEED``, each once)."""

    folds: int = Field(5, ge=2)
    seeds: list[int] = Field(default_factory=lambda: [0])
    fold_seed: int = 0

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return list(range(value))
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds_in_range(cls, value: list[int]) -> list[int]:
        return check_seeds(value)


#: a run id names files (``store/<id>.json``, ``jobs/<id>/``): letters, digits, ``_ . + -``,
#: starting with a letter or digit (``@`` is kept for pseudo-label rounds, ``lin@r1``)
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")


class ModelSpec(StrictModel):
    """One entry of ``models:``: a registry family, its run id, inputs and parameters."""

    name: str
    id: str | None = None
    features: list[str] | None = None
    targets: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] | None = None
    #: where the entry came from: written in the config, or added by ``models: auto``
    origin: Literal["config", "auto"] = Field("config", exclude=True)

    @field_validator("name", "id")
    @classmethod
    def _safe_run_id(cls, value: str | None) -> str | None:
        if value is not None and not RUN_ID.match(value):
            raise ValueError(
                f"{value!r} is not a safe run id: use letters, digits and _ . + - (starting with a letter or "
                "digit, at most 100 characters), as it names files in the workdir"
            )
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds_in_range(cls, value: list[int] | None) -> list[int] | None:
        return check_seeds(value)

    @property
    def run_id(self) -> str:
        return self.id or self.name


class PortfolioConfig(StrictModel):
    """What ``models: auto`` expands into (see :mod:`mer_ensemble.portfolio`)."""

    seeds: int = Field(3, ge=1, description="seeds averaged inside each neural run")
    families: list[str] = Field(
        default_factory=lambda: ["linear", "mlp", "xgboost", "audio_text_fusion", "attention_fusion", "finetune"]
    )
    group_norm: bool | Literal["auto"] = Field(
        "auto", description="add runs on features normalised within each data.group_by group"
    )
    finetune: dict[Literal["text", "audio"], str] = Field(
        default_factory=dict, description="modality -> checkpoint (a folder, relative to the config file, or "
        "package:<installed package>) to fine-tune on the rows' raw text / audio: adds ft-text, ft-audio and, "
        "with both, ft-joint where the data has those raw inputs"
    )

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        from mer_ensemble.portfolio import PORTFOLIO_FAMILIES

        unknown = [f for f in value if f not in PORTFOLIO_FAMILIES]
        if unknown:
            raise ValueError(f"unknown portfolio families {unknown}; expected some of {list(PORTFOLIO_FAMILIES)}")
        return value


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*"
                       r"(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from a number (seconds) or a text such as ``"20m"``, ``"1h30m"``, ``"90s"``, ``"2.5h"``;
    :class:`ConfigError` naming ``what`` otherwise (and for values <= 0)."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if match and any(match.groups()):
                h, m, s = (float(g) if g else 0.0 for g in match.groups())
                seconds = 3600 * h + 60 * m + s
    if seconds is None or not seconds > 0 or seconds != seconds:
        raise ConfigError(f"{what}: {value!r} is not a duration; expected seconds or e.g. 20m, 1h30m, 90s")
    return seconds


class TrainConfig(StrictModel):
    """How jobs run.

    ``jobs``: parallel jobs, or ``auto`` (from the cores, the jobs' threads, the machine's memory
    and the amount of work; see :mod:`mer_ensemble.training.resources`). ``threads``: CPU threads
    per job (default: 1 on the CPU; part of the job key, because it changes the numbers).
    ``time_limit``: the default of ``train-all --time-limit`` (seconds, or ``20m``, ``1h30m``).
    """

    jobs: int | Literal["auto"] = "auto"
    threads: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    time_limit: float | None = None

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("must be a whole number >= 1 or 'auto'")

    @field_validator("time_limit", mode="before")
    @classmethod
    def _time_limit(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse_duration(value, "train.time_limit")
        except ConfigError as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from None


class BlendConfig(StrictModel):
    """Blending choices (see ``mer-ensemble blend``).

    ``params`` holds each method's settings under its name and passes them straight to
    the blender (``{optuna: {n_trials: 200}, greedy: {steps: 25}, stacking: {meta: logreg}}``;
    ``mer-ensemble blend --help`` and :mod:`mer_ensemble.ensemble` list what each accepts).
    ``choose``: ``auto`` (= ``ties``: average the methods whose paired per-fold nested difference
    to the best is within ``tie_se`` standard errors), ``simplest`` (the simplest of those),
    ``highest`` (the best nested score) or a method name (see :mod:`mer_ensemble.ensemble.choice`).
    ``storage``: where the final fits keep their Optuna studies (default
    ``sqlite:///<workdir>/optuna.db``).
    """

    #: every method the choice rule compares (measured across 24 settings: docs/benchmarks.md)
    methods: list[str] = Field(default_factory=lambda: ["best", "mean", "vote", "greedy", "subset_greedy", "topk",
                                                        "optuna", "stacking"])
    choose: str = "auto"
    tie_se: float = Field(1.0, ge=0.0, description="methods within this many standard errors of the best tie")
    runs: list[str] | dict[str, list[str]] | None = None
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    storage: str | None = None
    class_bias: bool = False
    zip: bool = Field(False, description="also write <stem>.zip holding the CSV as submission.csv (MER2025's "
                      "Codalab accepts only that name); zipped tasks (MEIJU) always get one")


class PseudoConfig(StrictModel):
    """Pseudo-labelling rounds (see ``mer-ensemble pseudo-label``)."""

    rounds: int = Field(2, ge=1)
    threshold: float = Field(0.9, ge=0.0, le=1.0)
    min_agree: int | None = Field(None, ge=1)
    max_per_class: float | None = Field(None, gt=0)
    runs: list[str] | None = None
    retrain: list[str] | None = None
    use_candidates: bool = True
    use_test: bool = False
    patience: int = Field(1, ge=1)


class ExtractorSpec(StrictModel):
    """How one feature folder of ``media.extractors`` is made (see ``docs/media.md``).

    ``model``: a local checkpoint folder or ``opensmile:<set>``; ``denoise``: ``spectral`` or an
    enhancement checkpoint folder, applied to the audio first (audio and text extractors);
    ``transcribe``: a Whisper checkpoint whose transcripts the text extractor reads
    (``language`` passed on); ``input``: a CSV with name and text columns instead (text, relative
    to ``data.root``); ``options``: ``extract`` options (``layers``, ``pooling``, ``batch_size``,
    ``text_column``...); ``missing``: ``zeros`` gives a video without input for this modality (no
    audio track, no face, no transcript, not decodable) a zero vector, ``skip`` leaves it out.
    """

    modality: Literal["audio", "text", "vision"]
    model: str
    denoise: str | None = None
    transcribe: str | None = None
    language: str | None = None
    input: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    missing: Literal["zeros", "skip"] = "zeros"

    @model_validator(mode="after")
    def _inputs_fit_the_modality(self) -> ExtractorSpec:
        if self.modality != "text" and (self.transcribe or self.input):
            raise ValueError(f"transcribe/input apply to text extractors, not {self.modality}")
        if self.modality == "vision" and self.denoise:
            raise ValueError("denoise applies to audio (and transcribed text), not vision")
        if self.modality == "text" and not (self.transcribe or self.input):
            raise ValueError("a text extractor needs transcribe: <Whisper checkpoint> or input: <CSV with the texts>")
        return self


class MediaConfig(StrictModel):
    """From the organisers' videos to the feature folders (``mer-ensemble features -c``).

    ``videos`` and ``work`` are relative to ``data.root`` (or absolute); ``prepare`` holds
    ``prepare`` options (``fps``, ``face_size``, ``detector``, ``scene_every``...); ``jobs``: videos
    prepared in parallel (default: every core); ``extractors``: feature folder -> how it is made.
    """

    videos: str
    work: str = "prep"
    prepare: dict[str, Any] = Field(default_factory=dict)
    jobs: int | None = Field(None, ge=1)
    extractors: dict[str, ExtractorSpec] = Field(default_factory=dict)
