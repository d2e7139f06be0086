"""``finetune``: a local transformers checkpoint fine-tuned end to end on the rows' raw text and/or audio.

Inside each training fold the family loads the checkpoint (a folder, or ``package:<name>`` for
an installed package that carries one, see :mod:`mer_ensemble.finetune.checkpoint`), adds a
head per target and trains encoder and heads together on the fold's training rows
(:mod:`mer_ensemble.finetune.engine`): text (``modality: text``), speech (``audio``:
wav2vec2, HuBERT, WavLM or a Whisper encoder on the 16 kHz waveform) or both encoders fused
early and trained jointly (``joint``; ``checkpoint: {text: ..., audio: ...}``). Checkpoints of
more than ``lora_above`` weights train LoRA adapters (``lora: auto``) with gradient
checkpointing; smaller ones are fine-tuned fully.

The epochs are chosen by early stopping on an inner split of the training rows (grouped and
drawn from ``val_candidates`` like every family's inner choices), never on the fold's
validation rows; ``refit`` then trains again on every training row for the best epoch count,
otherwise the best epoch's weights are kept. Inputs arrive in ``X`` under ``raw:text`` /
``raw:audio`` as ``(n,)`` object arrays (texts, audio file paths); feature inputs are not used.
Fine-tuned weights live in memory only unless ``keep_weights`` is set, which :meth:`save` needs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from mer_ensemble.data.raw import raw_key
from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import FitData, Inputs, MerModel, Probas
from mer_ensemble.models._common import (
    CLASS_WEIGHTS,
    atomic_save,
    check_choice,
    check_fitted,
    check_number,
    class_weights_for,
    constant_proba,
    from_payload,
    init_args,
    inner_split,
)
from mer_ensemble.models._inputs import check_inputs
from mer_ensemble.models._registry import register_model

__all__ = ["FinetuneModel"]

MODALITIES = {"text": ("text",), "audio": ("audio",), "joint": ("text", "audio")}
SAVE_FORMAT = "mer-ensemble/finetune-model"
#: the encoder assumed by estimates made without a checkpoint: base size (BERT-base: 110M weights, 23M of them
#: token embeddings)
ASSUMED_WEIGHTS, ASSUMED_EMBEDDING = 110_000_000, 23_000_000


class FinetuneModel(MerModel):
    """See the module docstring. Fitted state: ``engine_`` (the network and its input preparation),
    ``constant_`` (target -> class prior for targets with fewer than two known classes),
    ``fit_result_``, ``best_epoch_``."""

    needs_features: ClassVar[bool] = False
    uses_gpu: ClassVar[bool] = True
    blend_value: ClassVar[float] = 1.0
    raw_inputs: ClassVar[tuple[str, ...]] = ("text",)
    raw_required: ClassVar[bool] = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check_params()
        self.raw_inputs = MODALITIES[self.params["modality"]]  # type: ignore[misc] - narrowed per instance
        self.checkpoints_ = self._resolve(self.params)
        self._check_widths()
        if self._settings().lora:  # adapters that match no layer: refused here, before any fold trains
            from mer_ensemble.finetune.lora import check_lora_targets

            for checkpoint in self.checkpoints_.values():
                check_lora_targets(checkpoint, self.params["lora_targets"])

    # -- parameters -----------------------------------------------------------------------------

    @classmethod
    def required_raw(cls, params: Mapping[str, Any], raw: Sequence[str]) -> tuple[str, ...]:
        """Every row needs each raw input, except text with ``missing_text: empty``."""
        relaxed = {"text"} if {**cls.defaults, **params}.get("missing_text") == "empty" else set()
        return tuple(k for k in raw if k not in relaxed)

    def _check_params(self) -> None:
        p, name = self.params, self.name
        check_choice(name, "modality", p["modality"], tuple(MODALITIES))
        check_choice(name, "pooling", p["pooling"], ("mean", "cls", "last"))
        check_choice(name, "fusion", p["fusion"], ("concat", "cross_attention"))
        check_choice(name, "lora", p["lora"], ("auto", True, False))
        check_choice(name, "gradient_checkpointing", p["gradient_checkpointing"], ("auto", True, False))
        for key in ("task_interaction", "freeze_embeddings", "refit", "keep_weights"):
            check_choice(name, key, p[key], (False, True))
        check_choice(name, "class_weight", p["class_weight"], CLASS_WEIGHTS)
        check_choice(name, "missing_text", p["missing_text"], ("error", "empty"))
        for key in ("hidden", "num_heads", "interaction_heads", "lora_r", "batch_size", "epochs", "max_tokens"):
            check_number(name, key, p[key], low=1, integer=True)
        check_number(name, "patience", p["patience"], low=1, integer=True, allow_none=True)
        check_number(name, "lora_above", p["lora_above"], low=0)
        for key in ("lr", "head_lr", "lora_alpha", "max_seconds"):
            check_number(name, key, p[key], low=0, open_low=True)
        for key, high in (("dropout", 0.95), ("lora_dropout", 0.95), ("layer_decay", 1.0), ("warmup", 0.5),
                          ("val_fraction", 0.5)):
            check_number(name, key, p[key], low=0, high=high)
        check_number(name, "weight_decay", p["weight_decay"], low=0)
        targets = p["lora_targets"]
        if targets is not None and (not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)):
            raise ModelError(f"model {name!r}: lora_targets={targets!r} must be a list of module names or None")
        if p["task_interaction"] and len(self.targets) < 2:
            raise ModelError(f"model {name!r}: task_interaction needs at least two targets, got {list(self.targets)}")

    def _check_widths(self) -> None:
        """Attention heads must divide the width they attend over."""
        p, name = self.params, self.name
        joint = len(self.checkpoints_) > 1
        width = int(p["hidden"]) if joint else next(iter(self.checkpoints_.values())).hidden_size
        if joint and p["fusion"] == "cross_attention" and width % int(p["num_heads"]):
            raise ModelError(f"model {name!r}: hidden={width} must be divisible by num_heads={p['num_heads']}")
        if p["task_interaction"] and width % int(p["interaction_heads"]):
            what = "hidden" if joint else "the checkpoint's hidden size"
            raise ModelError(f"model {name!r}: {what} {width} must be divisible by "
                             f"interaction_heads={p['interaction_heads']}")

    @classmethod
    def _checkpoint_specs(cls, params: Mapping[str, Any]) -> dict[str, str]:
        """modality -> checkpoint name, from ``checkpoint`` (a name, or ``{text: ..., audio: ...}``)."""
        wanted, spec = MODALITIES[params["modality"]], params["checkpoint"]
        if spec is None:
            raise ModelError(f"model {cls.name!r}: params.checkpoint is required: a checkpoint folder or "
                             "package:<installed package> (joint: {text: ..., audio: ...})")
        if isinstance(spec, str) and len(wanted) == 1:
            return {wanted[0]: spec}
        if not isinstance(spec, Mapping) or sorted(spec) != sorted(wanted):
            shape = "a checkpoint name" if len(wanted) == 1 else "{text: <checkpoint>, audio: <checkpoint>}"
            raise ModelError(f"model {cls.name!r}: checkpoint={spec!r} with modality {params['modality']!r}: "
                             f"expected {shape}")
        return {m: str(spec[m]) for m in wanted}

    @classmethod
    def _resolve(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        from mer_ensemble.finetune.checkpoint import resolve_checkpoint

        return {m: resolve_checkpoint(spec, m) for m, spec in cls._checkpoint_specs(params).items()}

    def _settings(self) -> Any:
        from mer_ensemble.finetune.engine import Settings

        p = self.params
        lora = p["lora"] if p["lora"] != "auto" else self.n_params_ > p["lora_above"]
        checkpointing = p["gradient_checkpointing"]
        if checkpointing == "auto":
            checkpointing = self.n_params_ > p["lora_above"]
        keys = ("pooling", "fusion", "hidden", "dropout", "num_heads", "task_interaction", "interaction_heads",
                "lora_r", "lora_alpha", "lora_dropout", "freeze_embeddings", "lr", "layer_decay", "head_lr",
                "weight_decay", "warmup", "batch_size", "max_tokens", "max_seconds")
        return Settings(checkpoints=dict(self.checkpoints_), lora=bool(lora),
                        gradient_checkpointing=bool(checkpointing),
                        lora_targets=tuple(p["lora_targets"]) if p["lora_targets"] else None,
                        **{k: p[k] for k in keys})

    @property
    def keeps_model(self) -> bool:  # type: ignore[override] - per instance, from keep_weights
        """A job saves the fitted model beside its result when ``keep_weights`` is set."""
        return bool(self.params["keep_weights"])

    @classmethod
    def resolve_paths(cls, params: dict[str, Any], resolve: Any) -> dict[str, Any]:
        """``checkpoint`` folders through ``resolve`` (a relative folder in a config resolves from
        the config file's folder); ``package:`` names stay as they are."""
        from mer_ensemble.finetune.checkpoint import PACKAGE_PREFIX

        def one(value: Any) -> Any:
            return value if not isinstance(value, str) or value.startswith(PACKAGE_PREFIX) else str(resolve(value))

        spec = params.get("checkpoint")
        if isinstance(spec, Mapping):
            return {**params, "checkpoint": {k: one(v) for k, v in spec.items()}}
        return {**params, "checkpoint": one(spec)} if isinstance(spec, str) else params

    @property
    def n_params_(self) -> int:
        """Weights of the pretrained encoders (from their files)."""
        return sum(c.n_params for c in self.checkpoints_.values())

    # -- what the scheduler and the run key read ------------------------------------------------

    @classmethod
    def run_identity(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """The checkpoints' identities (no machine paths: name, config hash, weight files' sizes),
        for the run key: a changed checkpoint trains again."""
        from mer_ensemble.finetune.checkpoint import checkpoint_identity

        merged = {**cls.defaults, **params}
        return {m: checkpoint_identity(c) for m, c in cls._resolve(merged).items()}

    @classmethod
    def _sizes(cls, params: Mapping[str, Any]) -> list[tuple[str, int, int, str]]:
        """``(modality, weights, token-embedding weights, model type)`` per checkpoint; without a
        checkpoint (a family-level estimate) a base-size encoder (:data:`ASSUMED_WEIGHTS`)."""
        p = {**cls.defaults, **params}
        if p["checkpoint"] is None:
            return [(m, ASSUMED_WEIGHTS, ASSUMED_EMBEDDING if m == "text" else 0, "unknown")
                    for m in MODALITIES[p["modality"]]]
        return [(m, c.n_params, c.embedding_params, c.model_type) for m, c in cls._resolve(p).items()]

    @classmethod
    def n_weights(cls, params: Mapping[str, Any], dims: Any = None, n_modalities: int = 1) -> int | None:
        """Weights of the checkpoints the run fine-tunes."""
        return sum(size[1] for size in cls._sizes(params))

    @classmethod
    def prior_seconds(cls, params: Mapping[str, Any], work: Any) -> float:
        """Seconds of one fold job before any was measured: 6 FLOPs per weight and token (4 with
        LoRA: no weight gradients in the encoder) per training row and epoch, 2 per predicted row,
        at :data:`~mer_ensemble.finetune.cost.PRIOR_EFFICIENCY` of ``work.gflops``; tokens (frames) per row measured on
        ``work.raw_sample`` (:meth:`_typical_lengths`; fixed lengths without one, a Whisper encoder's
        30 s window, :mod:`mer_ensemble.finetune.cost`). ``work`` has ``n_fit``,
        ``n_predict``, ``gflops``, ``on_cuda`` and optionally ``raw_sample``. On the shipped MELD
        config it came within 3% of the measured fold jobs (it was 1.7x pessimistic at 24 tokens)."""
        from mer_ensemble.finetune.cost import fold_seconds

        p = {**cls.defaults, **params}
        sizes = cls._sizes(p)
        lengths = cls._typical_lengths(p, getattr(work, "raw_sample", None) or {})
        total = sum(size[1] for size in sizes)
        lora = p["lora"] if p["lora"] != "auto" else total > p["lora_above"]
        epochs = min(int(p["epochs"]), (int(p["patience"]) + 2) if p["patience"] else int(p["epochs"]))
        train_rows = float(work.n_fit) * epochs * (1.8 if p["refit"] else 1.0)
        return fold_seconds(sizes, lengths, lora=lora, train_rows=train_rows, work=work)

    @classmethod
    def _typical_lengths(cls, p: Mapping[str, Any], sample: Mapping[str, Sequence[Any]]) -> dict[str, float]:
        """Mean tokens per text (the checkpoint's tokenizer on the sampled texts, cut at
        ``max_tokens``) and encoder frames per clip (the sampled files' headers, cut at
        ``max_seconds``); fixed typical lengths where no rows are given or they cannot be measured."""
        from mer_ensemble.finetune.cost import typical_lengths

        specs = cls._checkpoint_specs(p) if p["checkpoint"] is not None else {}
        return typical_lengths(specs, sample, max_tokens=int(p["max_tokens"]), max_seconds=float(p["max_seconds"]))

    # -- fit / predict --------------------------------------------------------------------------

    def _raw(self, X: Inputs) -> tuple[list[str] | None, list[str] | None]:
        from mer_ensemble.finetune.inputs import require_every_row

        out = []
        for key, what in (("text", "text"), ("audio", "audio file")):
            if key not in self.raw_inputs:
                out.append(None)
                continue
            values = np.asarray(X[raw_key(key)], dtype=object)
            if key == "text" and self.params["missing_text"] == "empty":  # a row without text reads as ""
                values = np.array([v if isinstance(v, str) else "" for v in values], dtype=object)
            else:
                require_every_row(values, what, self.name)
            out.append([str(v) for v in values])
        return out[0], out[1]

    def _warn_cut(self, rows: Any, where: str) -> None:
        s = self.engine_.settings
        if rows.truncated:
            warnings.warn(f"model {self.name!r}: {rows.truncated} of {rows.n} {where} text(s) longer than "
                          f"{self.engine_.text.max_tokens} tokens were truncated", stacklevel=3)
        if rows.cropped:
            warnings.warn(f"model {self.name!r}: {rows.cropped} of {rows.n} {where} clip(s) longer than "
                          f"{s.max_seconds:g} s were cut to their first {s.max_seconds:g} s", stacklevel=3)

    def _fit(self, data: FitData) -> None:
        from mer_ensemble.finetune.engine import Finetuner
        from mer_ensemble.nn import seeded

        p = self.params
        self.engine_ = engine = Finetuner(self._settings(), self.targets, device=self.device, name=self.name)
        with seeded(self.seed, engine.device):
            engine.build()
        rows = engine.rows(*self._raw(data.X))
        self._warn_cut(rows, "training")
        self.constant_ = {t: constant_proba(data.y[t], c, 1)[0].tolist() for t, c in self.targets.items()
                          if len(np.unique(data.y[t][data.y[t] >= 0])) < 2}
        train, y_train, val = rows, data.y, None
        if data.X_val is not None:
            val = (engine.rows(*self._raw(data.X_val)), data.y_val)
        elif p["val_fraction"] > 0 and p["patience"] is not None:
            first = next(iter(self.targets))
            inner, held = inner_split(data.y[first], fraction=p["val_fraction"], seed=self.seed, groups=data.groups,
                                      candidates=data.val_candidates)
            if len(held):
                train, y_train = rows.subset(inner), {t: v[inner] for t, v in data.y.items()}
                val = (rows.subset(held), {t: v[held] for t, v in data.y.items()})
        weights = class_weights_for(data.y, self.targets, p["class_weight"])
        with seeded(self.seed, engine.device):
            result = engine.train(train, y_train, epochs=int(p["epochs"]), patience=p["patience"], seed=self.seed,
                                  val=val, score_fn=data.score_fn, class_weights=weights)
        self.selected_.update({"best_epoch": int(result.best_epoch), "epochs_run": int(result.epochs_run),
                               "lora": engine.settings.lora, "trainable_params": int(engine.n_trainable),
                               "truncated_texts": int(rows.truncated), "cropped_clips": int(rows.cropped)})
        if val is not None:
            self.selected_.update({"inner_score": None if result.best_score is None else
                                   round(float(result.best_score), 6), "inner_rows": int(train.n)})
        if p["refit"] and train is not rows:  # refit on every training row for the epochs found best
            with seeded(self.seed, engine.device):
                engine.build()
                result = engine.train(rows, data.y, epochs=max(1, int(result.best_epoch)), patience=None,
                                      seed=self.seed, class_weights=weights)
            self.selected_["refit_epochs"] = int(result.epochs_run)
        self.fit_result_, self.best_epoch_ = result, int(self.selected_["best_epoch"])
        self.module_ = engine.net

    def predict_proba(self, X: Inputs) -> Probas:
        """Probabilities per target, ``(n, n_classes)`` float64 rows summing to 1."""
        check_fitted(self, "engine_")
        check_inputs(X, self.feature_dims, self.name, raw=self.raw_keys)
        rows = self.engine_.rows(*self._raw(X))
        self._warn_cut(rows, "predicted")
        if rows.truncated or rows.cropped:
            selected = getattr(self, "selected_", {})
            selected["truncated_predicted"] = selected.get("truncated_predicted", 0) + int(rows.truncated)
            selected["cropped_predicted"] = selected.get("cropped_predicted", 0) + int(rows.cropped)
        proba = self.engine_.predict(rows) if rows.n else {t: np.zeros((0, c)) for t, c in self.targets.items()}
        for target, prior in self.constant_.items():
            proba[target] = np.tile(np.asarray(prior, dtype=np.float64), (rows.n, 1))
        return proba

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write the fine-tuned weights that changed (every trained parameter, or the LoRA adapters
        and heads) as safetensors with the settings and checkpoint identities in its metadata; the
        frozen weights come from the checkpoint again on :meth:`load`. Needs ``keep_weights``."""
        check_fitted(self, "engine_")
        if not self.params["keep_weights"]:
            raise ModelError(f"model {self.name!r}: fine-tuned weights are not kept (keep_weights: false); "
                             "set keep_weights: true to save the model")
        from safetensors.torch import save_file

        from mer_ensemble.finetune.checkpoint import checkpoint_identity

        meta = {"format": SAVE_FORMAT, "model": self.name, "init": init_args(self), "constant": self.constant_,
                "best_epoch": self.best_epoch_,
                "identity": {m: checkpoint_identity(c) for m, c in self.checkpoints_.items()}}
        tensors = {k: v.contiguous().clone() for k, v in self.engine_.state().items()}
        atomic_save(path, lambda tmp: save_file(tensors, tmp, metadata={"mer-ensemble": json.dumps(meta)}))

    @classmethod
    def load(cls, path: str, device: str | None = None) -> FinetuneModel:
        """Read a model written by :meth:`save`; the checkpoint must be the one it was trained from."""
        from safetensors import SafetensorError, safe_open

        from mer_ensemble.finetune.checkpoint import checkpoint_identity
        from mer_ensemble.finetune.engine import Finetuner

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = json.loads((handle.metadata() or {}).get("mer-ensemble", "null"))
                state = {k: handle.get_tensor(k) for k in handle.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot be read as a finetune model file ({exc})") from None
        model = from_payload(cls, meta, path)
        for modality, checkpoint in model.checkpoints_.items():
            if checkpoint_identity(checkpoint) != meta["identity"][modality]:
                raise ModelError(f"{path}: checkpoint {checkpoint.spec!r} differs from the one the model was "
                                 "trained from (config or weight files changed)")
        if device is not None:
            model.device = device
        model.constant_, model.best_epoch_ = dict(meta["constant"]), int(meta["best_epoch"])
        model.engine_ = Finetuner(model._settings(), model.targets, device=model.device, name=model.name)
        model.module_ = model.engine_.build()
        model.engine_.load_state(state, str(path))
        return model


FinetuneModel.defaults = {
    "checkpoint": None,
    "modality": "text",
    "pooling": "mean",
    "fusion": "concat",
    "hidden": 256,
    "num_heads": 4,
    "dropout": 0.1,
    "task_interaction": False,
    "interaction_heads": 4,
    "lora": "auto",
    "lora_above": 150_000_000,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lora_targets": None,
    "freeze_embeddings": True,
    "gradient_checkpointing": "auto",
    "lr": 1e-4,
    "layer_decay": 0.9,
    "head_lr": 1e-3,
    "weight_decay": 0.01,
    "warmup": 0.1,
    "batch_size": 32,
    "epochs": 6,
    "patience": 1,
    "val_fraction": 0.15,
    "refit": False,
    "class_weight": None,
    "max_tokens": 128,
    "max_seconds": 20.0,
    "keep_weights": False,
    "missing_text": "error",
}

register_model("finetune")(FinetuneModel)
