"""LoRA adapters on a pretrained encoder through ``peft`` (chosen by the family's parameters).

:func:`lora_targets` picks the attention projections to adapt: the names given, else peft's
table for the model type, else the first of the usual projection names the encoder has
(``q_proj``/``v_proj`` for Whisper, wav2vec2, HuBERT, WavLM and most decoders,
``query``/``value`` for BERT-style encoders). A name that matches no linear layer is one
:class:`ModelError` naming it and the layers there are; :func:`check_lora_targets` finds that out
when the model is created, from the checkpoint's config alone (the network built on the ``meta``
device, no weights read). :func:`add_lora` injects the adapters in place (the encoder keeps its
forward signature) and freezes every other encoder weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer_ensemble.errors import ModelError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["add_lora", "check_lora_targets", "lora_targets"]

#: projection names tried in order when peft has no table entry for the model type
_USUAL = (("q_proj", "v_proj"), ("query", "value"), ("query_proj", "value_proj"), ("q", "v"), ("c_attn",),
          ("qkv",), ("Wqkv",))


def _linear_names(module: nn.Module) -> set[str]:
    """The last name part of every linear layer (``encoder.layer.0.attention.self.query`` -> ``query``)."""
    from torch import nn

    return {name.rsplit(".", 1)[-1] for name, sub in module.named_modules() if isinstance(sub, nn.Linear) and name}


def lora_targets(module: nn.Module, model_type: str, wanted: Sequence[str] | None, checkpoint: str) -> list[str]:
    """The module names LoRA adapts in ``module`` (see the module docstring)."""
    names = _linear_names(module)
    if wanted:
        missing = [w for w in wanted if w not in names]
        if missing:
            raise ModelError(f"lora_targets {list(missing)} match no linear layer of checkpoint {checkpoint!r} "
                             f"({model_type}); its linear layers are named {sorted(names)}")
        return list(wanted)
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE
    except ImportError:  # pragma: no cover - older peft
        TABLE = {}
    known = TABLE.get(model_type)
    if known and all(k in names for k in known):
        return list(known)
    for pair in _USUAL:
        if all(p in names for p in pair):
            return list(pair)
    raise ModelError(f"LoRA: checkpoint {checkpoint!r} ({model_type}) has none of the usual attention projections "
                     f"({', '.join('/'.join(p) for p in _USUAL)}); name them with lora_targets, from "
                     f"{sorted(names)}, or set lora: false")


def add_lora(module: nn.Module, targets: list[str], *, r: int, alpha: float, dropout: float) -> nn.Module:
    """Inject LoRA adapters (rank ``r``, scale ``alpha / r``) into ``targets`` of ``module`` in place;
    every other weight of ``module`` stops training. Returns ``module``."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ModelError("LoRA needs the peft package: pip install peft (or set lora: false)") from None
    config = LoraConfig(r=int(r), lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=list(targets),
                        bias="none")
    module = inject_adapter_in_model(config, module)
    for name, param in module.named_parameters():
        param.requires_grad_("lora_" in name)
    return module


def check_lora_targets(checkpoint: Any, wanted: Sequence[str] | None) -> list[str]:
    """The module names LoRA would adapt in ``checkpoint`` (a resolved
    :class:`~mer_ensemble.finetune.checkpoint.Checkpoint`), found without loading its weights;
    the :class:`ModelError` of :func:`lora_targets` when they do not match."""
    return list(_targets_of(str(checkpoint.folder), checkpoint.model_type, tuple(wanted or ()), checkpoint.spec))


@lru_cache(maxsize=16)
def _targets_of(folder: str, model_type: str, wanted: tuple[str, ...], spec: str) -> tuple[str, ...]:
    import torch
    from transformers import AutoModel

    from mer_ensemble.errors import ExtractError
    from mer_ensemble.extract._checkpoint import load_config

    try:
        config = load_config(Path(folder))
    except ExtractError as exc:
        raise ModelError(f"checkpoint {spec!r}: {exc}") from None
    with torch.device("meta"):
        module = AutoModel.from_config(config)
    if getattr(config, "is_encoder_decoder", False):
        module = module.get_encoder()
    return tuple(lora_targets(module, model_type, wanted or None, spec))
