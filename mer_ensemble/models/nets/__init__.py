"""The torch networks of the neural model families, one module per family.

Importing a module here imports torch; the family modules (:mod:`mer_ensemble.models.mlp`,
:mod:`~mer_ensemble.models.attention_fusion`, :mod:`~mer_ensemble.models.audio_text_fusion`)
import them only when a model is built. Every network's ``forward`` takes a dict of input
tensors (rows first) and returns ``{target: logits (b, n_classes)}``; each implements
:class:`mer_ensemble.nn.protocol.TrainableModule`.
"""
