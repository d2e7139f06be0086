"""Fine-tuning pretrained encoders on raw text and audio: the engine of the ``finetune`` model family.

* :mod:`.checkpoint`: checkpoints named by a folder or ``package:<installed package>``, their
  identity for the run key, their size;
* :mod:`.inputs`: raw rows to batches (tokenized text, 16 kHz audio, length buckets);
* :mod:`.net`: encoders, pooling, early audio-text fusion and the heads;
* :mod:`.lora`: LoRA adapters through ``peft``;
* :mod:`.engine`: building, training and predicting.

Importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from mer_ensemble.finetune.checkpoint import PACKAGE_PREFIX, Checkpoint, checkpoint_identity, resolve_checkpoint

__all__ = ["PACKAGE_PREFIX", "Checkpoint", "checkpoint_identity", "resolve_checkpoint"]
