"""Typed experiment config read from YAML, with dotted ``--set`` overrides.

The key names are a contract other tools rely on: ``task``, ``data.layout``,
``data.root``, ``data.features``, ``data.targets``, ``data.group_by``,
``cv.folds``, ``cv.seeds``, ``models``, ``workdir``. Relative paths in
``data.root`` and ``truth.*`` are resolved against the config file's folder; the other
``data.*`` paths (lists, ``feature_root``) and ``media.videos`` / ``media.work`` against
``data.root``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mer_ensemble.errors import ConfigError

__all__ = [
    "BlendConfig",
    "Config",
    "CVConfig",
    "DataConfig",
    "ExtractorSpec",
    "MediaConfig",
    "ModelSpec",
    "PortfolioConfig",
    "PseudoConfig",
    "ScoringConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "parse_duration",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
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


class ScoringConfig(_Strict):
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


class CVConfig(_Strict):
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


class ModelSpec(_Strict):
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


class PortfolioConfig(_Strict):
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


class TrainConfig(_Strict):
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


class BlendConfig(_Strict):
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


class PseudoConfig(_Strict):
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


class ExtractorSpec(_Strict):
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


class MediaConfig(_Strict):
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


class Config(_Strict):
    """A whole experiment."""

    task: str
    data: DataConfig
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    cv: CVConfig = Field(default_factory=CVConfig)
    models: list[ModelSpec] = Field(
        default_factory=list, description="model entries; 'auto' (alone or in the list) adds the portfolio"
    )
    portfolio: PortfolioConfig = Field(default_factory=PortfolioConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    blend: BlendConfig = Field(default_factory=BlendConfig)
    pseudo: PseudoConfig = Field(default_factory=PseudoConfig)
    truth: dict[str, str] = Field(default_factory=dict, description="split -> truth CSV, for scoring only")
    media: MediaConfig | None = None
    workdir: str | None = None

    # set by load_config, not by the YAML
    source: str | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _expand_auto(cls, raw: Any) -> Any:
        """``models: auto`` (or ``auto`` inside the list) becomes the portfolio's entries."""
        if not isinstance(raw, dict) or "models" not in raw:
            return raw
        from mer_ensemble.portfolio import expand_models

        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        portfolio = raw.get("portfolio") if isinstance(raw.get("portfolio"), dict) else {}
        try:
            options = PortfolioConfig.model_validate(portfolio).model_dump()
        except ValidationError:
            options = PortfolioConfig().model_dump()  # the portfolio section's own error is reported by its field
        return {**raw, "models": expand_models(raw["models"], data.get("features") or {}, options,
                                               grouped=bool(data.get("group_by")))}

    @model_validator(mode="after")
    def _unique_run_ids(self) -> Config:
        seen: set[str] = set()
        for spec in self.models:
            if spec.run_id in seen:
                raise ValueError(f"models: duplicate run id {spec.run_id!r}; give each entry a unique id")
            seen.add(spec.run_id)
        return self

    @property
    def stem(self) -> str:
        return Path(self.source).stem if self.source else "config"

    def resolve_path(self, value: str) -> Path:
        """Resolve a data path relative to the config file's folder."""
        path = Path(value).expanduser()
        if not path.is_absolute() and self.source:
            path = (Path(self.source).resolve().parent / path).resolve()
        return path

    def feature_modalities(self) -> dict[str, str]:
        """Feature name -> modality."""
        return {f: m for m, names in self.data.features.items() for f in names}

    def default_workdir(self) -> Path:
        return Path(self.workdir) if self.workdir else Path("runs") / self.stem


_LIST_INDEX = re.compile(r"^\d+$")


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to a raw config dict.

    A numeric path part indexes a list (``models.0.params.hidden=256``).
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected dotted.key=value")
        key, _, text = item.partition("=")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: value {text!r} is not valid YAML ({exc.__class__.__name__})") from None
        parts = key.strip().split(".")
        node: Any = raw
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list) and _LIST_INDEX.match(part):
                idx = int(part)
                if idx >= len(node):
                    raise ConfigError(f"--set {key}: index {idx} out of range (list has {len(node)} items)")
                node = node[idx]
            elif isinstance(node, dict):
                node = node.setdefault(part, {})
                if not isinstance(node, (dict, list)):
                    where = ".".join(parts[: depth + 1])
                    raise ConfigError(f"--set {key}: {where} holds a value, not a section")
            else:
                raise ConfigError(f"--set {key}: cannot descend into {'.'.join(parts[:depth])}")
        last = parts[-1]
        if isinstance(node, list) and _LIST_INDEX.match(last):
            node[int(last)] = value
        else:
            node[last] = value
    return raw


def _format_error(err: dict[str, Any], source: str) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"{source}: unknown key {loc!r}{_allowed_hint(err)}"
    if kind == "missing":
        return f"{source}: missing required key {loc!r}"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if not err.get("loc") or isinstance(err.get("input"), dict):
        return f"{source}: {loc}: {msg}"  # a check over a whole section: the message names the value
    got = repr(err.get("input"))
    return f"{source}: {loc}: {msg} (got {got if len(got) <= 80 else got[:77] + '...'})"


def _allowed_hint(err: dict[str, Any]) -> str:
    loc = [p for p in err.get("loc", ()) if not isinstance(p, int)]
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        if field is None:
            return ""
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return ""
    keys = [k for k in model.model_fields if k != "source"]
    return f"; allowed: {', '.join(keys)}"


def parse_config(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a raw dict into a :class:`Config` (errors name the key and what is allowed)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(_format_error(first, source) + suffix) from None
    cfg.source = source
    from mer_ensemble.tasks import PRESETS

    if cfg.task not in PRESETS:
        raise ConfigError(f"{source}: task: unknown task {cfg.task!r}; expected one of {', '.join(sorted(PRESETS))}")
    return cfg


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config, apply ``--set`` overrides and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    raw = apply_overrides(raw, overrides)
    return parse_config(raw, str(path))
