"""C2D, Contrast to Divide (Zheltonozhskii et al., WACV 2022; ContrastToDivide/C2D), docs/baselines.md section 5.

DivideMix started from a self-supervised (SimCLR) encoder, which keeps the warm-up from fitting the
noise. Changes relative to DivideMix (5.2): the networks load `pretrained=` (the classifier stays fresh);
a 5-epoch warm-up with gradient-norm clipping at 1.0; GMM max_iter 200; the threshold clipped into the
range of the clean probabilities so neither set is ever empty; sequential co-divide (GMM(f2) -> train
f1 -> GMM(f1) -> train f2); with lambda_u = 0 the unlabeled rows are dropped from the mixed batch; 361
epochs with the lr divided by 10 at epochs 150 and 300. Everything else is DivideMix's code.

`pretrained=auto` pre-trains the encoder first, once per data, model and seed (baselines/common/encoders.py).

SANM points: exactly DivideMix's (see baselines/dividemix.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.common.cli import entry_point
from baselines.common.config import AUTO
from baselines.dividemix import DivideMix, DivideMixConfig


@dataclass
class C2DConfig(DivideMixConfig):
    # DivideMix's keys (docs/baselines.md 4.3, 5.2); warmup_epochs auto = 5, C2D's with a self-supervised start
    gmm_max_iter: int = 200  # C2D's GaussianMixture
    warmup_grad_clip: float = 1.0  # C2D clips the warm-up gradient norm
    drop_unlabeled: bool = True  # with lambda_u = 0, only the labeled rows of the mixed batch are trained on


class C2D(DivideMix):
    name = "c2d"
    config = C2DConfig
    schedule = {"reference_epochs": 361, "lr_milestones": [150, 300]}  # train_cifar.py: StepLR(150, 0.1), 361 epochs
    requires_encoder = True  # pretrained=PATH or auto (encoders.py)

    @property
    def sequential(self) -> bool:
        """C2D fits each GMM just before it is used; the official SANM script co-divides as DivideMix."""
        return self.ctx.cfg.method.recipe != "official"

    @classmethod
    def resolve_warmup(cls, cfg) -> int:
        """5 epochs after the self-supervised start; the official recipe keeps its 10 / 20 (DivideMix's rule)."""
        if cfg.method.warmup_epochs == AUTO and cfg.method.recipe != "official":
            return 5
        return super().resolve_warmup(cfg)

    def threshold(self, prob: torch.Tensor):
        """tau clipped into (min w, max w) so that neither the labeled nor the unlabeled set is empty (the
        official SANM script uses tau as it is); a 0-d tensor, computed without a host sync."""
        tau = self.settings["p_threshold"]
        if self.ctx.cfg.method.recipe == "official":
            return tau
        low, high = prob.min() + 1e-5, prob.max() - 1e-5
        return torch.where(low < high, torch.clamp(torch.full_like(low, tau), low, high), torch.full_like(low, tau))


main = entry_point(C2D, "c2d")

if __name__ == "__main__":
    main()
