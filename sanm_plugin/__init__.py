"""sanm_plugin: SANM (Tu et al., CVPR 2023) as a plug-in for any noisy-label training loop.

Three hooks on `SANMAugmenter` (modulate_batch, regularize_labels, reconstruction_loss), the label
quality `gmm_clean_probability`, and `FeatureTap` to get logits and feature maps from any classifier.
"""

from .augmenter import MaskedBatch, SANMAugmenter
from .config import SANMConfig
from .quality import gmm_clean_probability
from .tap import FeatureTap

__all__ = ["SANMAugmenter", "SANMConfig", "MaskedBatch", "FeatureTap", "gmm_clean_probability"]
__version__ = "0.1.0"
