"""Competition presets: targets, class names and order, metrics, submission format.

Facts follow the organisers' baselines (MERTools for MER2024, MEIJU2025-baseline).
A preset is resolved into a :class:`TaskSpec` once the data is known, because the
``generic`` preset takes its targets and classes from the data or the config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mer_ensemble.errors import ConfigError
from mer_ensemble.metrics import METRICS, combine_scores, get_metric

__all__ = ["PRESETS", "TargetSpec", "TaskSpec", "TaskPreset", "list_tasks", "resolve_task"]

MER2024_CLASSES = ("neutral", "angry", "happy", "sad", "worried", "surprise")
MEIJU_EMOTIONS = ("happy", "surprise", "sad", "disgust", "anger", "fear", "neutral")
MEIJU_INTENTS = (
    "questioning",
    "agreeing",
    "acknowledging",
    "encouraging",
    "consoling",
    "suggesting",
    "wishing",
    "neutral",
)


@dataclass(frozen=True)
class TargetSpec:
    """One prediction target: its label column, ordered class names and metric."""

    name: str
    classes: tuple[str, ...]
    metric: str = "weighted_f1"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def score(self, y_true, y_pred) -> float:  # noqa: ANN001 - arrays
        return get_metric(self.metric)(y_true, y_pred)


@dataclass(frozen=True)
class TaskSpec:
    """A resolved task: targets in order, how they combine, and the submission format.

    ``submission`` is one of ``mer2024`` (``name,discrete``), ``meiju``
    (``filename,emo_pred,int_pred`` + zip) or ``generic`` (``name,<target>...``).
    ``submission_columns`` maps each target to its column in the submission file.
    """

    name: str
    targets: tuple[TargetSpec, ...]
    combine: str = "joint"
    submission: str = "generic"
    name_column: str = "name"
    submission_columns: Mapping[str, str] = field(default_factory=dict)
    submission_filename: str | None = None
    zip_submission: bool = False

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def target(self, name: str) -> TargetSpec:
        for t in self.targets:
            if t.name == name:
                return t
        raise ConfigError(f"unknown target {name!r}; this task has {', '.join(self.target_names)}")

    def combined(self, scores: Mapping[str, float]) -> float:
        return combine_scores([scores[t.name] for t in self.targets], self.combine)

    def column_for(self, target: str) -> str:
        return self.submission_columns.get(target, target)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "targets": [{"name": t.name, "classes": list(t.classes), "metric": t.metric} for t in self.targets],
            "combine": self.combine,
            "submission": self.submission,
        }


@dataclass(frozen=True)
class TaskPreset:
    """What a ``task:`` name fixes before the data is seen."""

    name: str
    targets: tuple[tuple[str, tuple[str, ...] | None, str], ...] | None
    combine: str
    submission: str
    description: str
    name_column: str = "name"
    submission_columns: Mapping[str, str] = field(default_factory=dict)
    submission_filename: str | None = None
    zip_submission: bool = False


def _mer2024(name: str, description: str) -> TaskPreset:
    return TaskPreset(name=name, targets=(("discrete", MER2024_CLASSES, "weighted_f1"),), combine="joint",
                      submission="mer2024", description=description, submission_columns={"discrete": "discrete"})


def _meiju(name: str, metric: str, description: str) -> TaskPreset:
    return TaskPreset(
        name=name,
        targets=(("emotion", MEIJU_EMOTIONS, metric), ("intent", MEIJU_INTENTS, metric)),
        combine="joint",
        submission="meiju",
        description=description,
        name_column="filename",
        submission_columns={"emotion": "emo_pred", "intent": "int_pred"},
        submission_filename="submission.csv",
        zip_submission=True,
    )


PRESETS: dict[str, TaskPreset] = {
    "mer2024-semi": _mer2024("mer2024-semi", "MER2024 MER-SEMI: 6 emotions, weighted F1, CSV name,discrete"),
    "mer2024-noise": _mer2024(
        "mer2024-noise", "MER2024 MER-NOISE: 6 emotions on noisy audio/video, weighted F1, CSV name,discrete"
    ),
    "meiju2025-track1": _meiju(
        "meiju2025-track1", "weighted_f1",
        "MEIJU@2025 Track 1 (low resource): emotion + intent, weighted F1, joint 2EI/(E+I)",
    ),
    "meiju2025-track2": _meiju(
        "meiju2025-track2", "micro_f1", "MEIJU@2025 Track 2 (large): emotion + intent, micro F1, joint 2EI/(E+I)"
    ),
    "generic": TaskPreset(
        name="generic",
        targets=None,
        combine="joint",
        submission="generic",
        description="Targets and classes from the data (class order sorted unless given), weighted F1",
    ),
}


def list_tasks() -> list[str]:
    return sorted(PRESETS)


def resolve_task(
    name: str,
    *,
    targets: Sequence[str] | None = None,
    classes: Mapping[str, Sequence[str]] | None = None,
    observed: Mapping[str, Sequence[str]] | None = None,
    metric: str | Mapping[str, str] | None = None,
    combine: str | None = None,
) -> TaskSpec:
    """Turn a preset name plus config overrides into a :class:`TaskSpec`.

    ``classes`` overrides a target's class list (any preset); ``observed`` holds
    the label values seen in the data, used by ``generic`` for targets whose
    classes are not given (sorted order). ``metric`` overrides the metric for all
    targets (a string) or per target (a mapping).
    """
    if name not in PRESETS:
        raise ConfigError(f"task: unknown task {name!r}; expected one of {', '.join(list_tasks())}")
    preset = PRESETS[name]
    classes = dict(classes or {})
    observed = dict(observed or {})
    if preset.targets is not None:
        if targets and list(targets) != [t[0] for t in preset.targets]:
            raise ConfigError(
                f"data.targets: task {name} fixes targets {[t[0] for t in preset.targets]}; got {list(targets)}"
            )
        base = [(n, tuple(classes.get(n, c)), m) for n, c, m in preset.targets]
    else:
        if not targets:
            raise ConfigError("data.targets: the generic task needs a list of label columns, e.g. [emotion]")
        base = []
        for t in targets:
            if t in classes:
                cls = tuple(classes[t])
            elif t in observed:
                cls = tuple(sorted(set(observed[t])))
            else:
                raise ConfigError(f"data.targets: no labels found for target {t!r} and no data.classes.{t} given")
            base.append((t, cls, "weighted_f1"))
    unknown = set(classes) - {b[0] for b in base}
    if unknown:
        raise ConfigError(f"data.classes: unknown target(s) {sorted(unknown)}; targets are {[b[0] for b in base]}")
    specs = []
    for tname, cls, m in base:
        if isinstance(metric, str):
            m = metric
        elif isinstance(metric, Mapping) and tname in metric:
            m = metric[tname]
        if m not in METRICS:
            raise ConfigError(f"scoring.metric: unknown metric {m!r}; expected one of {', '.join(METRICS)}")
        if len(cls) < 2:
            raise ConfigError(f"target {tname!r} has {len(cls)} class(es) {list(cls)}; need at least 2")
        if len(set(cls)) != len(cls):
            raise ConfigError(f"data.classes.{tname}: duplicate class names in {list(cls)}")
        specs.append(TargetSpec(tname, tuple(str(c) for c in cls), m))
    comb = combine or preset.combine
    if comb not in ("joint", "mean"):
        raise ConfigError(f"scoring.combine: unknown value {comb!r}; expected joint or mean")
    return TaskSpec(
        name=name,
        targets=tuple(specs),
        combine=comb,
        submission=preset.submission,
        name_column=preset.name_column,
        submission_columns=dict(preset.submission_columns),
        submission_filename=preset.submission_filename,
        zip_submission=preset.zip_submission,
    )
