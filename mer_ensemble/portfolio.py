"""``models: auto``: the portfolio a strong team trains first, expanded from the configured features.

From ``data.features`` (modality -> feature folders) it makes, in this order:

1. every feature folder alone: ``linear`` and ``mlp`` (``lin-<feature>``, ``mlp-<feature>``);
2. each modality's features concatenated, when it has several (``lin-<modality>``, ``mlp-<modality>``);
3. all features concatenated, when there are several: ``linear``, ``mlp`` (``lin-all``, ``mlp-all``)
   and ``xgboost`` (``xgb-all``, also with a single feature);
4. ``audio_text_fusion`` over the audio and text features, when both modalities exist (``at-fusion``);
5. ``attention_fusion`` over every modality, utterance or frame level (``attn-fusion``);
6. with ``data.group_by`` set, the same inputs normalised within each group
   (:mod:`mer_ensemble.data.groupnorm`): every feature alone with ``linear`` (``lin-<feature>-grp``)
   and all features with ``linear`` and ``mlp`` (``lin-all-grp``, ``mlp-all-grp``; one feature:
   ``mlp-<feature>-grp``). ``portfolio.group_norm: auto`` drops them when the groups are too small
   to normalise within or the test rows have none (``check`` says so); ``true`` keeps them, ``false``
   never adds them.

7. with ``portfolio.finetune`` naming checkpoints (``{text: <checkpoint>, audio: <checkpoint>}``),
   ``finetune`` runs on the rows' raw inputs: ``ft-text`` (the text checkpoint on ``raw:text``),
   ``ft-audio`` (the audio checkpoint on ``raw:audio``) and, with both, ``ft-joint`` (both encoders
   trained together, fused early). They use ``cv.seeds`` (fine-tuning is the expensive run), and
   :class:`~mer_ensemble.experiment.Experiment` drops those whose raw inputs the data lacks
   (``check`` says so).

Neural runs (``mlp`` and the fusion families) average ``portfolio.seeds`` seeds inside the run.
``portfolio.families`` restricts the families used. Frame-level features need nothing special:
``linear``, ``mlp`` and ``xgboost`` mean-pool them, the fusion families read the frames.
The expansion is plain config entries, so ``models: [auto, {...}]`` mixes it with explicit ones
(an explicit entry with an auto entry's id replaces it) and ``mer-ensemble check`` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mer_ensemble.names import GROUP_SUFFIX

__all__ = ["AUTO", "NEURAL_FAMILIES", "PORTFOLIO_FAMILIES", "expand_models", "finetune_entries", "portfolio_entries"]

#: the marker in ``models:``
AUTO = "auto"
#: families the portfolio may use, in the order their runs are listed
PORTFOLIO_FAMILIES = ("linear", "mlp", "xgboost", "audio_text_fusion", "attention_fusion", "finetune")
#: families whose runs average several seeds
NEURAL_FAMILIES = frozenset({"mlp", "audio_text_fusion", "attention_fusion"})

_PREFIX = {"linear": "lin", "mlp": "mlp", "xgboost": "xgb"}


def portfolio_entries(
    features: Mapping[str, Sequence[str]],
    *,
    seeds: int = 3,
    families: Sequence[str] = PORTFOLIO_FAMILIES,
    group_norm: bool | str = "auto",
    grouped: bool = False,
    finetune: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The ``models:`` entries of the automatic portfolio for ``features`` (modality -> folders) and
    the checkpoints of ``finetune`` (modality -> checkpoint)."""
    wanted = set(families)
    neural_seeds = list(range(seeds))
    out: list[dict[str, Any]] = []

    def add(family: str, run_id: str, inputs: list[str] | None) -> None:
        if family not in wanted:
            return
        entry: dict[str, Any] = {"name": family, "id": run_id, "origin": "auto"}
        if inputs is not None:
            entry["features"] = list(inputs)
        if family in NEURAL_FAMILIES:
            entry["seeds"] = list(neural_seeds)
        out.append(entry)

    all_features = [f for names in features.values() for f in names]
    for feature in all_features:
        for family in ("linear", "mlp"):
            add(family, f"{_PREFIX[family]}-{feature}", [feature])
    several_modalities = sum(1 for names in features.values() if names) > 1
    for modality, names in features.items():
        if len(names) > 1 and several_modalities:
            for family in ("linear", "mlp"):
                add(family, f"{_PREFIX[family]}-{modality}", [modality])
    if len(all_features) > 1:
        for family in ("linear", "mlp"):
            add(family, f"{_PREFIX[family]}-all", None)
    add("xgboost", "xgb-all", None)
    if features.get("audio") and features.get("text"):
        add("audio_text_fusion", "at-fusion", ["audio", "text"])
    add("attention_fusion", "attn-fusion", None)
    if grouped and group_norm is not False:
        for feature in all_features:
            add("linear", f"lin-{feature}-grp", [feature + GROUP_SUFFIX])
        every = [f + GROUP_SUFFIX for f in all_features]
        if len(all_features) > 1:
            add("linear", "lin-all-grp", every)
            add("mlp", "mlp-all-grp", every)
        elif all_features:
            add("mlp", f"mlp-{all_features[0]}-grp", every)
    if "finetune" in wanted:
        out.extend(finetune_entries(finetune or {}))
    return out


def finetune_entries(checkpoints: Mapping[str, str]) -> list[dict[str, Any]]:
    """``ft-text``, ``ft-audio`` and (with both) ``ft-joint`` for ``checkpoints`` (modality -> checkpoint)."""
    out: list[dict[str, Any]] = []
    for modality in ("text", "audio"):
        if checkpoints.get(modality):
            out.append({"name": "finetune", "id": f"ft-{modality}", "origin": "auto", "features": [f"raw:{modality}"],
                        "params": {"checkpoint": checkpoints[modality], "modality": modality}})
    if checkpoints.get("text") and checkpoints.get("audio"):
        out.append({"name": "finetune", "id": "ft-joint", "origin": "auto", "features": ["raw:text", "raw:audio"],
                    "params": {"checkpoint": {"text": checkpoints["text"], "audio": checkpoints["audio"]},
                               "modality": "joint"}})
    return out


def expand_models(
    models: Any, features: Mapping[str, Sequence[str]], portfolio: Mapping[str, Any], *, grouped: bool = False
) -> Any:
    """``models:`` as written (``auto``, or a list mixing ``auto`` with entries) -> a list of entries.

    Anything else is returned unchanged for the config validation to judge.
    """
    if models == AUTO:
        models = [AUTO]
    if not isinstance(models, list) or AUTO not in models or not isinstance(features, Mapping):
        return models
    explicit = [m for m in models if m != AUTO]
    explicit_ids = {(m.get("id") or m.get("name")) for m in explicit if isinstance(m, Mapping)}
    auto = [e for e in portfolio_entries(features, **dict(portfolio), grouped=grouped) if e["id"] not in explicit_ids]
    out: list[Any] = []
    for item in models:
        out.extend(auto if item == AUTO else [item])
    return out
