"""sanm_plugin: SANM (Tu et al., CVPR 2023) as a plug-in for any noisy-label training loop.

Three hooks on `SANMAugmenter` (modulate_batch, regularize_labels, reconstruction_loss), or all three with
the masked forward in one call (`SANMAugmenter.loss`); label quality G as a function
(`gmm_clean_probability`) or as a module that keeps it for a training set (`LabelQuality`); `FeatureTap`
to get logits and feature maps from any classifier. `sanm_plugin.lightning.SANMCallback` (needs Lightning)
attaches all of it to a LightningModule.
"""

from .augmenter import MaskedBatch, SANMAugmenter, SANMLoss
from .config import SANMConfig
from .data import IndexedDataset
from .labels import soft_cross_entropy
from .quality import LabelQuality, gmm_clean_probability
from .tap import FeatureTap

__all__ = ["SANMAugmenter", "SANMConfig", "MaskedBatch", "SANMLoss", "FeatureTap", "LabelQuality",
           "gmm_clean_probability", "IndexedDataset", "soft_cross_entropy"]
__version__ = "0.1.0"
