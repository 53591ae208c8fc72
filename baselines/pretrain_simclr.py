"""SimCLR pre-training of the encoder C2D starts from (docs/baselines.md 5.1; HobbitLong/SupContrast `main_supcon.py`).

Two strong views of each image, the configured model's pooled features, a projection head
Linear(d, d)-ReLU-Linear(d, 128), L2-normalised, NT-Xent at temperature 0.5, SGD with cosine annealing.
Labels are not used for training; `test_acc` is a monitor: the nearest class centroid of the normalised
features of the (noisily labelled) training set. At the end `encoder.pt` holds the encoder without its
classifier, for `python -m baselines.c2d pretrained=<run_dir>/encoder.pt`; `pretrained=auto` runs it for the methods
that start from an encoder, cached (baselines/common/encoders.py).

SANM points: none (pre-training has no labels to regularise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.cli import entry_point
from baselines.common.config import MethodConfig
from baselines.common.contrastive import SimCLRViews, nt_xent
from baselines.common.encoders import save_encoder
from baselines.common.engine import Method
from baselines.common.metrics import EpochMeans


@dataclass
class SimCLRConfig(MethodConfig):
    temperature: float = 0.5  # SupContrast's SimCLR recipe
    projection_dim: int = 128
    min_crop_scale: float = 0.2  # RandomResizedCrop(scale=(0.2, 1))



class PretrainSimCLR(Method):
    name = "pretrain_simclr"
    config = SimCLRConfig
    pretraining = True
    diagnostics = ("loss/nt_xent",)

    def build(self) -> None:
        if self.ctx.sanm_settings is not None:
            raise ValueError("pretrain_simclr uses no labels, so SANM does not apply; drop +sanm=...")
        self.net = self.add_network("net")
        width = self.net.model.num_features
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True),
                                  nn.Linear(width, self.ctx.cfg.method.projection_dim)).to(self.ctx.device)
        self.net.optimizer.add_param_group({"params": list(self.head.parameters())})
        self.views = SimCLRViews(self.ctx.data.mean, self.ctx.data.std, min_scale=self.ctx.cfg.method.min_crop_scale)
        self.centroids = torch.zeros(self.ctx.num_classes, width, device=self.ctx.device)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.model.forward_head(self.net.model.forward_features(images), pre_logits=True)

    def train_epoch(self, epoch: int) -> dict:
        self.net.model.train()
        self.head.train()
        means = EpochMeans()
        for idx in self.ctx.index_batches(epoch, desc="simclr"):
            images = self.ctx.train_images[idx]
            z1 = F.normalize(self.head(self.embed(self.views(images))), dim=1)
            z2 = F.normalize(self.head(self.embed(self.views(images))), dim=1)
            loss = nt_xent(z1, z2, self.ctx.cfg.method.temperature)
            self.net.step(loss)
            means.add({"loss/nt_xent": loss})
        self._update_centroids()
        return means.means()

    @torch.no_grad()
    def _update_centroids(self) -> None:
        """Class means of the normalised training features (noisy labels): the test-time monitor."""
        self.net.model.eval()
        feats = torch.cat([F.normalize(self.embed(self.ctx.augment(self.ctx.train_images[idx], train=False)), dim=1)
                           for idx in torch.arange(self.ctx.num_train, device=self.ctx.device).split(512)])
        sums = torch.zeros_like(self.centroids).index_add_(0, self.ctx.labels, feats)
        self.centroids = F.normalize(sums, dim=1)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(images), dim=1) @ self.centroids.T

    def on_run_end(self) -> None:
        path = self.ctx.run_dir / "encoder.pt"
        save_encoder(self.net.module, path, self.ctx.cfg.model)
        print(f"encoder written to {path}")

    def extra_state(self) -> dict:
        return {"head": self.head.state_dict(), "centroids": self.centroids}

    def load_extra_state(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        self.centroids = state["centroids"].to(self.ctx.device)


main = entry_point(PretrainSimCLR, "pretrain_simclr")

if __name__ == "__main__":
    main()
