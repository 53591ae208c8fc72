"""Cross-entropy on the noisy labels (docs/baselines.md section 3), the reference every LNL method beats.

No upstream repo ships it for CIFAR; we train one PreAct ResNet-18 on DivideMix's schedule (SGD 0.02,
momentum 0.9, wd 5e-4, batch 128, lr /10 at epoch 150, 300 epochs). The paper's SANM(CE) row plugs SANM
in with a per-epoch GMM on the training losses (docs/baselines.md 9.7).

SANM points: after the warm-up (`method.warmup_epochs`, default 2), each epoch fits G on one evaluation pass; each
step runs the clean forward, masks the batch with the clean logits and features (SANM[1]), regularises
the noisy one-hot labels (SANM[2], or the detached clean prediction with sanm.target=prediction), and
adds the masked view's soft cross-entropy and the reconstruction loss (SANM[3]); with
sanm.train_on=masked the masked view replaces the clean loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.common.cli import entry_point
from baselines.common.config import MethodConfig
from baselines.common.engine import Batch, Method
from baselines.common.losses import cross_entropy


@dataclass
class CEConfig(MethodConfig):
    """CE has only the keys every method has; robust-loss methods (GCE, SCE) add theirs to a subclass."""


class CE(Method):
    """One network trained on a supervised loss of its logits and the noisy labels: `loss`, cross-entropy here.
    A robust-loss method subclasses CE and overrides `loss`; SANM's masked view is trained with it too."""

    name = "ce"
    config = CEConfig
    default_warmup_epochs = 2  # plain epochs before SANM starts (G needs a network that has learned)
    distributed = True  # torchrun: each rank its slice of every batch
    schedule = {"reference_epochs": 300, "lr_milestones": [150]}  # DivideMix's: lr /10 half-way

    def build(self) -> None:
        self.net = self.add_network("net")

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The supervised loss on class ids [B] or probabilities [B, C]; with SANM also the masked view's, on
        its regularised targets (for CE that is Eq. 8's soft cross-entropy)."""
        return cross_entropy(logits, targets)

    @property
    def loss_key(self) -> str:
        """metrics.jsonl's name of the loss without SANM: loss/ce, or loss/supervised for a loss of its own."""
        return "loss/ce" if type(self).loss is CE.loss else "loss/supervised"

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        net = self.net
        if net.sanm is None or not net.sanm.active(batch.epoch):
            loss = self.loss(net.model(batch.images), batch.labels)
            net.step(loss)
            return {self.loss_key: loss.detach()}
        loss, terms = net.sanm.supervised_loss(
            net.tap, batch.images, batch.index, batch.labels, net.tap.classifier_weight,
            clean_loss=lambda logits: self.loss(logits, batch.labels), masked_loss=self.loss,
        )
        net.step(loss)
        return {"loss/total": loss.detach(), **terms}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.model(images)


main = entry_point(CE, "ce")

if __name__ == "__main__":
    main()
