"""SCE, symmetric cross-entropy (Wang et al., ICCV 2019): CE plus the reverse cross-entropy.

alpha * CE + beta * RCE with RCE = -sum_c p_c log y_c and log 0 taken as A = -4; the reverse term is bounded
and pulls the network away from confident mistakes. alpha 0.1, beta 1.0 are the paper's CIFAR-10 values.
Everything else is CE's (conf/ce.yaml); with SANM the masked view is trained with SCE too, on its regularised
labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.ce import CE, CEConfig
from baselines.common.cli import entry_point
from baselines.common.losses import symmetric_cross_entropy


@dataclass
class SCEConfig(CEConfig):
    alpha: float = 0.1  # weight of the cross-entropy
    beta: float = 1.0  # weight of the reverse cross-entropy
    log_floor: float = -4.0  # A: what log 0 counts as in the reverse term


class SCE(CE):
    name = "sce"
    config = SCEConfig

    def build(self) -> None:
        m = self.ctx.cfg.method
        if m.alpha < 0 or m.beta < 0 or m.alpha + m.beta == 0:
            raise ValueError(f"method.alpha and method.beta must be >= 0 and not both 0, got {m.alpha}, {m.beta}")
        if m.log_floor >= 0:
            raise ValueError(f"method.log_floor is what log 0 counts as and must be < 0 (the paper's -4), "
                             f"got {m.log_floor}")
        super().build()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        m = self.ctx.cfg.method
        return symmetric_cross_entropy(logits, targets, m.alpha, m.beta, m.log_floor)


main = entry_point(SCE)

if __name__ == "__main__":
    main()
