"""Fine-tuning one network on raw rows: build it from checkpoints, train it, predict with it.

:class:`Finetuner` is the engine behind the ``finetune`` model family
(:mod:`mer_ensemble.models.finetune`), which decides what to train on (the inner split, the
epochs, refit or keep-best). Here: loading the encoders offline (:mod:`.checkpoint`), LoRA or
full fine-tuning with frozen embeddings and gradient checkpointing as asked, AdamW with
layer-wise learning-rate decay, a warm-up + linear-decay schedule, length-bucketed batches,
mixed precision on CUDA (:class:`~mer_ensemble.nn.batch_loop.BatchLoop`), and batched
prediction in length order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.errors import ExtractError, ModelError
from mer_ensemble.finetune.checkpoint import Checkpoint
from mer_ensemble.finetune.inputs import AudioInputs, TextInputs, bucketed_batches

if TYPE_CHECKING:
    import torch

    from mer_ensemble.finetune.net import FinetuneNet
    from mer_ensemble.nn.trainer import FitResult

__all__ = ["Finetuner", "Rows", "Settings"]


@dataclass(frozen=True)
class Settings:
    """How to fine-tune (the family's parameters, checked and resolved)."""

    checkpoints: dict[str, Checkpoint]
    pooling: str = "mean"
    fusion: str = "concat"
    hidden: int = 256
    dropout: float = 0.1
    num_heads: int = 4
    task_interaction: bool = False
    interaction_heads: int = 4
    lora: bool = False
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | None = None
    freeze_embeddings: bool = True
    gradient_checkpointing: bool = False
    lr: float = 5e-5
    layer_decay: float = 0.9
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    batch_size: int = 32
    max_tokens: int = 128
    max_seconds: float = 20.0


@dataclass
class Rows:
    """Raw rows ready for batching: token ids and/or audio paths with their lengths.

    ``sort_key`` ``(n,)``: the length batches are bucketed by (audio samples when there is
    audio, else tokens); ``truncated``/``cropped``: texts cut at ``max_tokens``, clips cut at
    ``max_seconds``; ``waves``: clips read so far (kept for the training rows).
    """

    n: int
    text_ids: list[np.ndarray] | None = None
    audio_paths: list[str] | None = None
    sort_key: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    truncated: int = 0
    cropped: int = 0
    waves: dict[int, np.ndarray] | None = None

    def subset(self, index: np.ndarray) -> Rows:
        """Rows ``index`` (clips read so far come along)."""
        index = np.asarray(index, dtype=np.int64)
        waves = None
        if self.waves is not None:
            waves = {j: self.waves[int(i)] for j, i in enumerate(index) if int(i) in self.waves}
        return Rows(len(index), None if self.text_ids is None else [self.text_ids[i] for i in index],
                    None if self.audio_paths is None else [self.audio_paths[i] for i in index],
                    self.sort_key[index], waves=waves)


class Finetuner:
    """Builds, trains and runs one :class:`~mer_ensemble.finetune.net.FinetuneNet`.

    ``targets``: target -> n_classes in task order; ``name``: the family name errors carry.
    """

    def __init__(self, settings: Settings, targets: Mapping[str, int], *, device: str, name: str) -> None:
        from mer_ensemble.nn import resolve_device

        self.settings = settings
        self.targets = dict(targets)
        self.device = resolve_device(device)
        self.name = name
        self.text: TextInputs | None = None
        self.audio: AudioInputs | None = None
        self.net: FinetuneNet | None = None
        self.n_params = 0
        self.n_trainable = 0

    # -- building -------------------------------------------------------------------------------

    def _load(self, modality: str, checkpoint: Checkpoint) -> tuple[Any, Any]:
        """``(model, preprocessor)`` of one checkpoint, offline, float32 (the encoder of a seq2seq model)."""
        import torch

        from mer_ensemble.extract._checkpoint import load_model, load_preprocessor

        try:
            model = load_model(checkpoint.folder, modality, torch.device("cpu"), torch.float32, trust_remote_code=False)
            processor = load_preprocessor(checkpoint.folder, modality, trust_remote_code=False)
        except ExtractError as exc:
            raise ModelError(f"model {self.name!r}: checkpoint {checkpoint.spec!r}: {exc}") from None
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        return model, processor

    def _inputs_for(self, modality: str, model: Any, processor: Any) -> str:
        """Set the text or audio input preparation; returns the branch kind."""
        from mer_ensemble.extract.audio import _receptive_field
        from mer_ensemble.extract.text import _model_max_tokens

        if modality == "text":
            limit = _model_max_tokens(processor, model.config)
            self.text = TextInputs(processor, min(self.settings.max_tokens, limit))
            return "text"
        whisper = getattr(model, "main_input_name", "") == "input_features"
        if whisper and not hasattr(processor, "n_samples"):
            raise ModelError(f"model {self.name!r}: checkpoint {self.settings.checkpoints[modality].spec!r} reads "
                             "spectrograms but is not Whisper-style; audio checkpoints read raw samples "
                             "(wav2vec2, HuBERT, WavLM) or are Whisper encoders")
        self.audio = AudioInputs(processor, whisper=whisper, max_seconds=self.settings.max_seconds,
                                 min_samples=_receptive_field(model.config))
        return "whisper" if whisper else "raw"

    def _adapt(self, modality: str, encoder: Any) -> Any:
        """Frozen embeddings, LoRA adapters and gradient checkpointing, as the settings ask."""
        from mer_ensemble.finetune.lora import add_lora, lora_targets

        s, checkpoint = self.settings, self.settings.checkpoints[modality]
        if s.lora:
            targets = lora_targets(encoder, checkpoint.model_type, s.lora_targets, checkpoint.spec)
            encoder = add_lora(encoder, targets, r=s.lora_r, alpha=s.lora_alpha, dropout=s.lora_dropout)
        elif s.freeze_embeddings:
            if modality == "text":
                encoder.get_input_embeddings().weight.requires_grad_(False)
            elif hasattr(encoder, "freeze_feature_encoder"):
                encoder.freeze_feature_encoder()
            else:  # Whisper: its two convolutions over the log-mel frames
                for conv in ("conv1", "conv2"):
                    for p in getattr(encoder, conv).parameters() if hasattr(encoder, conv) else ():
                        p.requires_grad_(False)
        if s.gradient_checkpointing and getattr(encoder, "supports_gradient_checkpointing", False):
            if hasattr(encoder, "activation_checkpointing_enable"):  # transformers >= 5
                encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return encoder

    def build(self) -> FinetuneNet:
        """Load the encoders (fresh pretrained weights) and build the network on the device."""
        from mer_ensemble.finetune.net import EncoderBranch, FinetuneNet

        s = self.settings
        branches, dims = {}, {}
        for modality, checkpoint in s.checkpoints.items():
            model, processor = self._load(modality, checkpoint)
            kind = self._inputs_for(modality, model, processor)
            dims[modality] = checkpoint.hidden_size
            branches[modality] = EncoderBranch(self._adapt(modality, model), kind, s.pooling)
        self.net = FinetuneNet(branches, dims, list(self.targets.items()), fusion=s.fusion, hidden=s.hidden,
                               dropout=s.dropout, num_heads=s.num_heads, task_interaction=s.task_interaction,
                               interaction_heads=s.interaction_heads).to(self.device)
        self.n_params = sum(p.numel() for p in self.net.parameters())
        self.n_trainable = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        return self.net

    # -- rows -----------------------------------------------------------------------------------

    def rows(self, texts: Sequence[str] | None, audio_paths: Sequence[str] | None) -> Rows:
        """Tokenize the texts and read the clips' lengths (files checked readable) of ``n`` rows."""
        n = len(texts) if texts is not None else len(audio_paths or [])
        out = Rows(n)
        if texts is not None and self.text is not None:
            out.text_ids, out.truncated = self.text.encode(texts)
            out.sort_key = np.array([len(t) for t in out.text_ids], dtype=np.int64)
        if audio_paths is not None and self.audio is not None:
            out.audio_paths = [str(p) for p in audio_paths]
            out.sort_key = self.audio.durations(out.audio_paths, self.name)
            out.cropped = int((out.sort_key >= self.audio.max_samples).sum())
        return out

    def _batch(self, rows: Rows, index: np.ndarray, keep_waves: bool) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        if rows.text_ids is not None:
            inputs.update(self.text.collate([rows.text_ids[i] for i in index], self.device))
        if rows.audio_paths is not None:
            waves = []
            for i in index:
                wave = rows.waves.get(int(i)) if rows.waves is not None else None
                if wave is None:
                    wave = self.audio.read(rows.audio_paths[i], self.name)[0]
                    if keep_waves:
                        rows.waves = rows.waves if rows.waves is not None else {}
                        rows.waves[int(i)] = wave
                waves.append(wave)
            inputs.update(self.audio.collate(waves, self.device))
        return inputs

    # -- training and prediction ----------------------------------------------------------------

    def _optimizer(self, steps: int) -> tuple[Any, Any]:
        import torch

        from mer_ensemble.nn.schedule import layerwise_groups, warmup_linear

        s, net = self.settings, self.net
        groups: list[dict[str, Any]] = []
        for modality in net.modalities:
            config = net.branches[modality].encoder.config
            n_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "encoder_layers", 0) or 1)
            groups += layerwise_groups(net.encoder_parameters(modality), (), n_layers=n_layers, lr=s.lr,
                                       decay=s.layer_decay, head_lr=s.head_lr, weight_decay=s.weight_decay)
        groups += layerwise_groups((), net.head_parameters(), n_layers=0, lr=s.lr, decay=1.0, head_lr=s.head_lr,
                                   weight_decay=s.weight_decay)
        try:  # one fused kernel per step (CUDA; the CPU since torch 2.4) instead of several per group
            optimizer = torch.optim.AdamW(groups, lr=s.lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            optimizer = torch.optim.AdamW(groups, lr=s.lr)
        schedule = warmup_linear(steps, int(round(s.warmup * steps)))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def train(self, rows: Rows, y: Mapping[str, np.ndarray], *, epochs: int, patience: int | None, seed: int,
              val: tuple[Rows, Mapping[str, np.ndarray]] | None = None,
              score_fn: Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], float] | None = None,
              class_weights: Mapping[str, np.ndarray] | None = None) -> FitResult:
        """Train the built network on ``rows`` (labels ``y``: target -> ``(n,)``, -1 unknown) for at
        most ``epochs``; with ``val`` the best epoch by ``score_fn`` on it is kept."""
        import torch

        from mer_ensemble.nn import amp_dtype, default_score, supervised_loss
        from mer_ensemble.nn.batch_loop import BatchLoop

        s = self.settings
        rng = np.random.default_rng(seed)
        per_epoch = -(-rows.n // s.batch_size)
        optimizer, scheduler = self._optimizer(per_epoch * epochs)
        labels = {t: torch.as_tensor(np.asarray(v, dtype=np.int64)) for t, v in y.items()}
        weights = {t: torch.as_tensor(w, dtype=torch.float32, device=self.device)
                   for t, w in (class_weights or {}).items()}

        def batches(epoch: int) -> Any:
            for index in bucketed_batches(rows.sort_key, s.batch_size, rng):
                yield (self._batch(rows, index, keep_waves=True),
                       {t: v[index].to(self.device) for t, v in labels.items()})

        evaluate = None
        if val is not None:
            val_rows, val_y = val
            score = score_fn or default_score
            evaluate = lambda: score(val_y, self.predict(val_rows, keep_waves=True))  # noqa: E731
        loop = BatchLoop(epochs=epochs, patience=patience, grad_clip=1.0, dtype=amp_dtype(self.device))
        return loop.fit(self.net, optimizer, batches, lambda out, lab: supervised_loss(out, lab, weights),
                        scheduler=scheduler, evaluate=evaluate)

    def predict(self, rows: Rows, *, keep_waves: bool = False) -> dict[str, np.ndarray]:
        """Probabilities per target ``(n, n_classes)`` float64, batched in length order."""
        import torch

        from mer_ensemble.nn import amp_dtype
        from mer_ensemble.nn.trainer import _autocast

        net = self.net
        net.eval()
        out = {t: np.zeros((rows.n, c), dtype=np.float64) for t, c in self.targets.items()}
        with torch.no_grad(), _autocast(self.device, amp_dtype(self.device)):
            for index in bucketed_batches(rows.sort_key, 2 * self.settings.batch_size, None):
                logits = net(self._batch(rows, index, keep_waves))
                for t, value in logits.items():
                    out[t][index] = torch.softmax(value.double(), dim=1).cpu().numpy()
        return out

    def state(self) -> dict[str, torch.Tensor]:
        """What the fit changed: the parameters that train and the buffers, on the CPU."""
        from mer_ensemble.nn.batch_loop import trainable_state

        return {k: v.cpu() for k, v in trainable_state(self.net).items()}

    def load_state(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        """Put a :meth:`state` back into a freshly built network; :class:`ModelError` when it does
        not fit (another checkpoint, other settings)."""
        trained = {name for name, p in self.net.named_parameters() if p.requires_grad}
        missing = sorted(trained - set(state))
        result = self.net.load_state_dict(dict(state), strict=False)
        if result.unexpected_keys or missing:
            raise ModelError(f"{where}: the saved weights do not fit the network built from the checkpoint "
                             f"(unexpected {result.unexpected_keys[:3]}, missing {missing[:3]})")
