"""Typed experiment config read from YAML, with dotted ``--set`` overrides.

The key names are a contract other tools rely on: ``task``, ``data.layout``,
``data.root``, ``data.features``, ``data.targets``, ``data.group_by``,
``cv.folds``, ``cv.seeds``, ``models``, ``workdir``. Relative paths in
``data.root`` and ``truth.*`` are resolved against the config file's folder; the other
``data.*`` paths (lists, ``feature_root``) and ``media.videos`` / ``media.work`` against
``data.root``.

The sections (``data``, ``cv``, ``train``, ``blend``, ...) are models of their own in
:mod:`mer_ensemble.config_sections`; this module puts them together into :class:`Config`, applies
``--set`` overrides and turns a validation error into one line naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from mer_ensemble import config_sections
from mer_ensemble.config_sections import (
    BlendConfig,
    CVConfig,
    DataConfig,
    MediaConfig,
    ModelSpec,
    PortfolioConfig,
    PseudoConfig,
    ScoringConfig,
    StrictModel,
    TrainConfig,
)
from mer_ensemble.config_sections import ExtractorSpec as ExtractorSpec  # re-exported: callers import it from here
from mer_ensemble.config_sections import parse_duration as parse_duration  # re-exported
from mer_ensemble.errors import ConfigError

#: this module's names and the sections', so ``from mer_ensemble.config import DataConfig`` works as well
__all__ = ["Config", "apply_overrides", "load_config", "parse_config", *config_sections.__all__]


class Config(StrictModel):
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
