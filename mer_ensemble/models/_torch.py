"""Fit, predict, save and load shared by the torch model families.

A family subclasses :class:`TorchModel` and supplies three pieces:

* ``_module_config(X)``: plain values the network is built from (dims, levels seen at fit);
  saved with the weights, so a loaded model is rebuilt without data;
* ``_encode(X)``: the dict of input arrays its network reads (``(n, D)`` or ``(n, T, D)``
  with lengths under :func:`~mer_ensemble.models._inputs.lengths_key`);
* ``_build_module(config)``: the network, a :class:`mer_ensemble.nn.protocol.TrainableModule`
  (see :mod:`mer_ensemble.models.nets`).

Optionally ``_input_key(feature)`` (the input key a feature feeds), which lets ``fit`` take
noisy variants of the training features (``X_variants``, families with ``uses_variants``).

Training is delegated to :class:`mer_ensemble.nn.trainer.Trainer`; the trainer
hyper-parameters come from the family's params (``lr``, ``weight_decay``, ``optimizer``,
``batch_size``, ``epochs``, ``patience``, ``class_weight``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.models._base import FitData, Inputs, MerModel, Probas, WorkSize
from mer_ensemble.models._common import (
    CLASS_WEIGHTS,
    atomic_save,
    check_choice,
    check_fitted,
    check_number,
    class_weights_for,
    from_payload,
    init_args,
    inner_split,
)
from mer_ensemble.models._inputs import (
    check_inputs,
    coerce_levels,
    input_levels,
    lengths_key,
    subset_rows,
    variant_key,
)
from mer_ensemble.nn.protocol import hooks_of

if TYPE_CHECKING:
    from torch import nn

    from mer_ensemble.nn.trainer import Trainer

__all__ = ["TRAINER_DEFAULTS", "TorchModel"]

SAVE_FORMAT = "mer-ensemble/torch-model"

#: trainer hyper-parameters every torch family accepts, with the MER2024 baseline's values;
#: ``val_fraction``: share of the training rows held out for early stopping and the choice
#: between ``candidates`` (parameter overrides tried on the held-out part) when no validation
#: rows are given (0: train ``epochs`` epochs on every row); ``refit``: then train the chosen
#: configuration again on every training row for the epochs found best
TRAINER_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "optimizer": "adam",
    "batch_size": 32,
    "epochs": 100,
    "patience": 10,
    "class_weight": None,
    "val_fraction": 0.15,
    "candidates": [{}],
    "refit": True,
}


@dataclass
class _Trained:
    """A trained network with what rebuilds it, before it becomes the model's fitted state."""

    module: Any
    result: Any
    config: dict[str, Any]
    levels: dict[str, str]

    @property
    def fit_result_best(self) -> float | None:
        return self.result.best_score


class TorchModel(MerModel):
    """Base of the torch families (see the module docstring for what a family supplies).

    Fitted state: ``module_`` (the network, on its device, eval mode), ``levels_``
    (feature -> ``"utt"``/``"frame"`` as seen at fit), ``config_`` (build values) and
    ``fit_result_`` (:class:`~mer_ensemble.nn.trainer.FitResult`, not saved) and
    ``best_epoch_``.
    """

    #: rows per forward pass at prediction time
    predict_batch_size: ClassVar[int] = 1024
    uses_gpu: ClassVar[bool] = True
    blend_value: ClassVar[float] = 1.0
    #: share of the machine's matmul rate a fit reaches (fitted to the MER2024-scale runs of
    #: docs/benchmarks.md), for :meth:`prior_seconds`
    prior_efficiency: ClassVar[float] = 0.15

    @classmethod
    def square_layers(cls, params: dict[str, Any], n_modalities: int) -> int:
        """How many ``hidden x hidden`` weight matrices the network has besides its input layer."""
        return 2

    @classmethod
    def n_weights(cls, params: dict[str, Any], dims: Sequence[int], n_modalities: int) -> int | None:
        """Input layer ``sum(dims) x hidden`` plus :meth:`square_layers` ``hidden x hidden`` matrices."""
        hidden = int(params.get("hidden", 128))
        return sum(dims) * hidden + cls.square_layers(params, n_modalities) * hidden * hidden

    @classmethod
    def prior_seconds(cls, params: dict[str, Any], work: WorkSize) -> float:
        """6 FLOPs per weight and training row per epoch over the epochs early stopping typically
        runs (``patience`` + 20, at most ``epochs``), plus 2 per weight and predicted row."""
        rate = max(work.gflops, 1.0) * 1e9
        n_weights = cls.n_weights(params, work.dims, work.n_modalities) or 0
        epochs = int(params.get("epochs", 100))
        patience = params.get("patience")
        expected = min(epochs, int(patience) + 20) if patience else epochs
        flops = 6.0 * n_weights * work.n_fit * expected + 2.0 * n_weights * work.n_predict
        return 1.0 + flops / (rate * cls.prior_efficiency)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check_trainer_params()
        self._check_params()

    # -- what a family supplies -----------------------------------------------------------

    def _check_params(self) -> None:
        """Validate the family's own params and derive what follows from the constructor
        arguments (raise ModelError on a bad value)."""

    def _module_config(self, X: Inputs) -> dict[str, Any]:
        raise NotImplementedError

    def _encode(self, X: Inputs) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _build_module(self, config: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def _prepare_module(self, module: nn.Module, inputs: dict[str, np.ndarray]) -> None:
        """Set statistics of the training rows on a freshly built module (default: nothing)."""

    def _input_key(self, feature: str) -> str | None:
        """The network input key that ``feature`` feeds (None: noisy variants unsupported)."""
        return None

    # -- shared machinery -------------------------------------------------------------------

    def _check_trainer_params(self, candidates: bool = True) -> None:
        p, name = self.params, self.name
        check_number(name, "lr", p["lr"], low=0, open_low=True)
        check_number(name, "weight_decay", p["weight_decay"], low=0)
        check_choice(name, "optimizer", p["optimizer"], ("adam", "adamw"))
        check_number(name, "batch_size", p["batch_size"], low=1, integer=True)
        check_number(name, "epochs", p["epochs"], low=1, integer=True)
        check_number(name, "patience", p["patience"], low=1, integer=True, allow_none=True)
        check_choice(name, "class_weight", p["class_weight"], CLASS_WEIGHTS)
        check_number(name, "val_fraction", p["val_fraction"], low=0, high=0.5)
        check_choice(name, "refit", p["refit"], (True, False))
        if candidates:
            self._check_candidates()

    def _check_candidates(self) -> None:
        """``candidates``: a list of parameter overrides, each a valid configuration of the family."""
        name, candidates = self.name, self.params["candidates"]
        if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
            raise ModelError(f"model {name!r}: candidates={candidates!r} must be a list of parameter mappings")
        fixed = {"candidates", "refit", "val_fraction"}
        for c in candidates:
            unknown = sorted(set(c) - (set(self.defaults) - fixed))
            if unknown:
                raise ModelError(f"model {name!r}: candidates: unknown parameter(s) {unknown}; "
                                 f"allowed: {sorted(set(self.defaults) - fixed)}")
        base = self.params
        try:
            for c in candidates:  # each candidate must itself be a valid configuration
                self.params = {**base, **c}
                self._check_trainer_params(candidates=False)
                self._check_params()
        finally:
            self.params = base

    def _trainer(self) -> Trainer:
        from mer_ensemble.nn.trainer import Trainer

        p = self.params
        return Trainer(
            lr=p["lr"],
            weight_decay=p["weight_decay"],
            optimizer=p["optimizer"],
            batch_size=p["batch_size"],
            max_epochs=p["epochs"],
            patience=p["patience"],
            device=self.device,
            seed=self.seed,
            eval_batch_size=self.predict_batch_size,
        )

    def _inputs(self, X: Inputs) -> dict[str, np.ndarray]:
        """Check ``X`` and encode it at the levels seen at fit."""
        check_inputs(X, self.feature_dims, self.name)
        return self._encode(coerce_levels(X, self.levels_))

    def _check_variant_rows(self, X_variants: Mapping[str, Sequence[Any]], n: int) -> None:
        """Every variant is an input feature's, for the ``n`` training rows (DataError/ModelError otherwise)."""
        for feature, variants in X_variants.items():
            if feature not in self.feature_dims:
                raise DataError(
                    f"model {self.name!r}: noise variants given for {feature!r}, not an input feature "
                    f"({sorted(self.feature_dims)})"
                )
            if self._input_key(feature) is None:
                raise ModelError(f"model {self.name!r} cannot use noisy feature variants")
            for j, variant in enumerate(variants):
                if check_inputs({feature: variant}, {feature: self.feature_dims[feature]}, self.name) != n:
                    raise DataError(f"model {self.name!r}: noise variant {j} of {feature!r} does not have the "
                                    f"{n} training rows")

    def _variant_inputs(
        self, X: Inputs, X_variants: Mapping[str, Sequence[Any]], clean: dict[str, np.ndarray], n: int
    ) -> dict[str, np.ndarray]:
        """Noisy variants of the training rows under reserved keys ``<input>@variant<j>``.

        ``X_variants``: feature -> list of inputs for the same rows as ``X`` (each ``(n, D)``
        or Frames); variant ``j`` of the input fed by ``feature`` is ``X`` with that feature
        replaced, encoded like ``X``. They travel with the training rows through the trainer's
        batching and the network's ``augment`` hook swaps them in (training batches only).
        """
        self._check_variant_rows(X_variants, n)
        out: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for feature, variants in X_variants.items():
            key = self._input_key(feature)
            for j, variant in enumerate(variants):
                where = f"noise variant {j} of {feature!r}"
                encoded = self._encode(coerce_levels({**X, feature: variant}, self.levels_))
                lengths = lengths_key(key)
                if encoded[key].shape != clean[key].shape or (
                    lengths in clean and not np.array_equal(encoded[lengths], clean[lengths])
                ):
                    raise DataError(
                        f"model {self.name!r}: {where} has shape {encoded[key].shape} (or frame counts) "
                        f"unlike the clean input {clean[key].shape}; variants must match frame for frame"
                    )
                out[variant_key(key, counts.get(key, 0))] = encoded[key]
                counts[key] = counts.get(key, 0) + 1
        return out

    def _fit(self, data: FitData) -> None:
        """Train the network.

        Given validation rows, keep the epoch with the best ``score_fn`` (default: mean weighted
        F1 over targets). Otherwise (how ``train-all`` fits) choose inside the training rows: hold
        out ``val_fraction`` of them, train every configuration of ``candidates`` there with early
        stopping, keep the one with the best held-out score (ties: the first), and with ``refit``
        train it again on every training row for the epochs the held-out part found best.
        The choice is recorded in ``selected_``. Noisy variants are used only by families with
        ``uses_variants`` and only on training batches."""
        if data.X_variants and self.uses_variants:
            self._check_variant_rows(data.X_variants, data.n)
        p = self.params
        inner = data
        if data.X_val is None and p["val_fraction"] > 0 and p["patience"] is not None:
            inner = self._hold_out(data)
        if inner.X_val is None:  # nothing to choose on: train once as configured
            self._install(self._train(data, {}))
            return
        tried = []
        for overrides in [dict(c) for c in p["candidates"]] or [{}]:
            trained = self._train(inner, overrides)
            tried.append((trained, overrides))
        scores = [t.fit_result_best for t, _ in tried]
        best = int(np.argmax([s if s is not None else -np.inf for s in scores]))
        trained, overrides = tried[best]
        epochs = int(trained.result.best_epoch)
        self.selected_.update({"best_epoch": epochs, "inner_score": None if scores[best] is None else
                               round(float(scores[best]), 6), "inner_rows": int(inner.n)})
        if len(tried) > 1:
            self.selected_["candidate"] = best
            self.selected_["params"] = overrides
            self.selected_["candidate_scores"] = [None if s is None else round(float(s), 6) for s in scores]
        if p["refit"] and inner is not data:  # refit only after an inner hold-out, not on given rows
            trained = self._train(data, {**overrides, "epochs": max(1, epochs), "patience": None})
            self.selected_["refit_epochs"] = max(1, epochs)
        self._install(trained)
        self.params = {**p, **overrides}

    def _train(self, data: FitData, overrides: dict[str, Any]) -> _Trained:
        """One training run with ``overrides`` on top of the model's parameters (``self.params``
        is left as it was)."""
        from mer_ensemble.nn import resolve_device, seeded

        base = self.params
        self.params = {**base, **overrides}
        try:
            self.levels_ = input_levels(data.X, list(self.feature_dims))
            config = self._module_config(data.X)
            self.config_ = config
            inputs = self._encode(coerce_levels(data.X, self.levels_))
            val_inputs = None if data.X_val is None else self._encode(coerce_levels(data.X_val, self.levels_))
            device = resolve_device(self.device)
            with seeded(self.seed, device):
                module = self._build_module(config)
            self._prepare_module(module, inputs)
            if data.X_variants and self.uses_variants:
                inputs.update(self._variant_inputs(data.X, data.X_variants, inputs, data.n))
            unlabeled = None
            if data.X_unlabeled is not None and hooks_of(module).unlabeled_loss is not None:
                unlabeled = self._inputs(data.X_unlabeled)
            result = self._trainer().fit(
                module,
                inputs,
                data.y,
                val_inputs,
                data.y_val,
                score_fn=data.score_fn,
                class_weights=class_weights_for(data.y, self.targets, self.params["class_weight"]),
                unlabeled_inputs=unlabeled,
            )
        finally:
            self.params = base
        return _Trained(module, result, config, dict(self.levels_))

    def _install(self, trained: _Trained) -> None:
        self.module_, self.fit_result_, self.best_epoch_ = trained.module, trained.result, trained.result.best_epoch
        self.config_, self.levels_ = trained.config, trained.levels
        self.selected_.setdefault("best_epoch", int(trained.result.best_epoch))

    def _hold_out(self, data: FitData) -> FitData:
        """Move an inner validation part of the training rows to ``X_val`` (early stopping only).

        Stratified on the first target, grouped by ``data.groups``, drawn from
        ``data.val_candidates``; unchanged when the rows are too few to split.
        """
        first = next(iter(self.targets))
        train, val = inner_split(data.y[first], fraction=self.params["val_fraction"], seed=self.seed,
                                 groups=data.groups, candidates=data.val_candidates)
        if len(val) == 0:
            return data
        take = lambda X, idx: {f: subset_rows(v, idx) for f, v in X.items()}  # noqa: E731
        variants = None if data.X_variants is None else {
            f: [subset_rows(v, train) for v in vs] for f, vs in data.X_variants.items()
        }
        return replace(
            data, X=take(data.X, train), y={t: v[train] for t, v in data.y.items()}, n=len(train),
            X_val=take(data.X, val), y_val={t: v[val] for t, v in data.y.items()}, X_variants=variants,
            groups=None if data.groups is None else data.groups[train],
            val_candidates=None if data.val_candidates is None else data.val_candidates[train],
        )

    def predict_proba(self, X: Inputs) -> Probas:
        """Probabilities per target, ``(n, n_classes)`` float64 rows summing to 1."""
        from mer_ensemble.nn import predict_proba

        check_fitted(self, "module_")
        return predict_proba(self.module_, self._inputs(X), batch_size=self.predict_batch_size)

    def save(self, path: str) -> None:
        """Write init arguments, build config and weights with ``torch.save``."""
        import torch

        check_fitted(self, "module_")
        payload = {
            "format": SAVE_FORMAT,
            "model": self.name,
            "init": init_args(self),
            "levels": dict(self.levels_),
            "config": self.config_,
            "best_epoch": int(self.best_epoch_),
            "state": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
        }
        atomic_save(path, lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str, device: str | None = None) -> TorchModel:
        """Read a model written by :meth:`save`; ``device`` overrides the saved choice
        (e.g. ``"cpu"`` to use a model trained on a GPU machine)."""
        import torch

        from mer_ensemble.nn import resolve_device

        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError,
                TypeError) as exc:
            # torch's own text for a refused object advises turning the safe loading off: never repeat that advice
            reason = "it holds objects that are not plain tensors" if isinstance(exc, pickle.UnpicklingError) \
                else "damaged, truncated or another format"
            raise ModelError(f"{path}: not a model file written by mer-ensemble ({reason}); nothing was unpickled"
                             ) from None
        try:
            model = from_payload(cls, payload, path)
            if device is not None:
                model.device = device
            model.levels_, model.config_ = dict(payload["levels"]), payload["config"]
            model.best_epoch_ = int(payload["best_epoch"])
            module = model._build_module(model.config_)
            module.load_state_dict(payload["state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: a damaged {cls.name} model file ({type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''})") from None
        model.module_ = module.to(resolve_device(model.device)).eval()
        return model
