"""mer-ensemble: k-fold model registries, honest blends, pseudo-labels and valid submissions
for multimodal emotion and intent recognition competitions."""

__version__ = "0.1.0"
