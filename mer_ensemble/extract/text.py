"""Text features from a local language-model checkpoint (BERT, RoBERTa, sentence-transformers, LLMs).

Input: a CSV with a name column and a text column (other columns are ignored). Texts are
tokenized with the checkpoint's tokenizer (padded on the right, truncated to ``max_tokens``);
the output frames are the real tokens' summed hidden states, ``(T, D)`` per name, so mean
pooling over them is attention-masked.

Defaults: the last 4 layers summed, mean pooling, no normalisation (the organisers' extractors).
A sentence-transformers checkpoint (``modules.json``) instead defaults to its own recipe: the
last layer, its pooling mode, L2 normalisation when it has a ``Normalize`` module, and its
``max_seq_length``. Explicit options always win.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError, ExtractError
from mer_ensemble.extract._checkpoint import load_model, load_preprocessor
from mer_ensemble.extract._common import (
    ExtractOptions,
    Extractor,
    Item,
    ItemFailure,
    resolve_layers,
    sum_hidden_layers,
)
from mer_ensemble.names import check_name, strip_extension

__all__ = ["DEFAULT_MAX_TOKENS", "TextExtractor", "read_texts", "sentence_transformer_defaults"]

DEFAULT_MAX_TOKENS = 512
_ST_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_lasttoken": "last"}


def read_texts(path: str | Path, name_column: str = "name", text_column: str = "text") -> list[Item]:
    """One item per CSV row: ``Item(name, text)``; the name loses one media extension as the
    layouts strip it (``Track1_Training_00001.mp4`` → ``Track1_Training_00001``), the text is
    kept verbatim (checked when loaded)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"text input CSV not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the text CSV {path}: {exc}") from exc
    missing = [c for c in (name_column, text_column) if c not in table.columns]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(repr(c) for c in missing)}; found {', '.join(map(str, table.columns))} "
            "(choose them with --name-column / --text-column)"
        )
    return [  # a name is the file name without one media extension (MEIJU's FileName holds <name>.mp4)
        Item(check_name(strip_extension(str(name).strip()), f"{path}, line {line}"), str(text))
        for line, (name, text) in enumerate(zip(table[name_column], table[text_column], strict=True), start=2)
    ]


def sentence_transformer_defaults(checkpoint: Path) -> dict[str, Any] | None:
    """Layers, pooling, normalisation and max length from a sentence-transformers folder, else ``None``."""
    modules_file = checkpoint / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        types = [str(m.get("type", "")) for m in modules]
        pooling = None
        for module in modules:
            config_file = checkpoint / str(module.get("path", "")) / "config.json"
            if str(module.get("type", "")).endswith("Pooling") and config_file.is_file():
                flags = json.loads(config_file.read_text(encoding="utf-8"))
                pooling = next((mode for key, mode in _ST_POOLING.items() if flags.get(key)), None)
        max_tokens = None
        st_config = checkpoint / "sentence_bert_config.json"
        if st_config.is_file():
            max_tokens = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError, AttributeError) as exc:
        raise ExtractError(f"unreadable sentence-transformers config in {checkpoint}: {exc}") from exc
    return {
        "layers": (-1,),
        "pooling": pooling,
        "normalize": any(t.endswith("Normalize") for t in types),
        "max_tokens": int(max_tokens) if max_tokens else None,
    }


class TextExtractor(Extractor):
    """Token frames from a text encoder or decoder-only LM; see the module docstring."""

    modality = "text"

    def __init__(self, checkpoint: Path, options: ExtractOptions, device: Any, dtype: Any) -> None:
        self.device = device
        self.batch_size = options.batch_size
        self.window_items = max(4 * options.batch_size, 8)
        self.replacements = options.text_replace
        self.model = load_model(checkpoint, "text", device, dtype, trust_remote_code=options.trust_remote_code)
        self.tokenizer = load_preprocessor(checkpoint, "text", trust_remote_code=options.trust_remote_code)
        if self.tokenizer.pad_token is None:
            fallback = self.tokenizer.eos_token or self.tokenizer.unk_token
            if fallback is None:
                raise ExtractError(f"the tokenizer in {checkpoint} has no pad, eos or unk token to pad batches with")
            self.tokenizer.pad_token = fallback
        self.tokenizer.padding_side = "right"
        config = self.model.config
        is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        self.encoder = self.model.get_encoder() if is_seq2seq else self.model
        self.accepted = set(inspect.signature(self.encoder.forward).parameters)
        n_layers = getattr(config, "encoder_layers", None) if is_seq2seq else None
        n_layers = n_layers or getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)
        self.requested_layers = tuple(options.layers or ())
        self.layers = resolve_layers(self.requested_layers, int(n_layers) + 1, checkpoint) if n_layers else None
        self.max_tokens = options.max_tokens or _model_max_tokens(self.tokenizer, config)
        self.n_truncated = 0

    def load(self, item: Item) -> str:
        """The text after ``text_replace``; :class:`ItemFailure` when it is empty."""
        text = item.source
        for old, new in self.replacements:
            text = text.replace(old, new)
        if not text.strip():
            raise ItemFailure("empty text")
        return text

    def encode(self, batch: list[tuple[str, Any]]) -> dict[str, np.ndarray | str]:
        """Real-token frames ``(T, D)`` per name (special tokens included, padding excluded)."""
        ordered = sorted(batch, key=lambda pair: -len(pair[1]))
        result: dict[str, np.ndarray | str] = {}
        for start in range(0, len(ordered), self.batch_size):
            chunk = ordered[start : start + self.batch_size]
            for (name, _), frames in zip(chunk, self._forward([text for _, text in chunk]), strict=True):
                result[name] = frames
        return result

    def describe(self) -> dict[str, Any]:
        """Token limit, truncation count and the hidden states used."""
        return {
            "max_tokens": self.max_tokens,
            "truncated_items": self.n_truncated,
            "tokens": "all real tokens incl. special tokens; padding masked out",
            "hidden_state_indices": list(self.layers) if self.layers else None,
        }

    def _forward(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        self._count_truncated(texts, encoded["attention_mask"].sum(dim=1).tolist())
        inputs = {key: value.to(self.device) for key, value in encoded.items() if key in self.accepted}
        with torch.inference_mode():
            out = self.encoder(**inputs, output_hidden_states=True)
            if self.layers is None:
                self.layers = resolve_layers(self.requested_layers, len(out.hidden_states))
            hidden = sum_hidden_layers(out.hidden_states, self.layers)
        mask = encoded["attention_mask"].bool()
        return [hidden[row][mask[row].to(hidden.device)].cpu().numpy() for row in range(len(texts))]

    def _count_truncated(self, texts: list[str], lengths: list[int]) -> None:
        """Count texts cut at ``max_tokens`` (only those that reached the limit are re-tokenized)."""
        at_limit = [t for t, n in zip(texts, lengths, strict=True) if n >= self.max_tokens]
        if at_limit:
            full = self.tokenizer(at_limit, truncation=False)["input_ids"]
            self.n_truncated += sum(len(ids) > self.max_tokens for ids in full)


def _model_max_tokens(tokenizer: Any, config: Any) -> int:
    """The tokenizer's limit, capped by the position embeddings and by :data:`DEFAULT_MAX_TOKENS`."""
    limits = [DEFAULT_MAX_TOKENS]
    for value in (getattr(tokenizer, "model_max_length", None), getattr(config, "max_position_embeddings", None)):
        if isinstance(value, int) and 0 < value < 1_000_000:
            limits.append(value)
    return min(limits)
