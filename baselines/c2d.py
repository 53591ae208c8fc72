"""C2D, Contrast to Divide (Zheltonozhskii et al., WACV 2022; ContrastToDivide/C2D), docs/baselines.md section 5.

DivideMix started from a self-supervised (SimCLR) encoder, which keeps the warm-up from fitting the
noise. Changes relative to DivideMix (5.2): the networks load `pretrained=` (the classifier stays fresh);
a 5-epoch warm-up with gradient-norm clipping at 1.0; GMM max_iter 200; the threshold clipped into the
range of the clean probabilities so neither set is ever empty; sequential co-divide (GMM(f2) -> train
f1 -> GMM(f1) -> train f2); with lambda_u = 0 the unlabeled rows are dropped from the mixed batch; 361
epochs with the lr divided by 10 at epochs 150 and 300. Everything else is DivideMix's code.

`pretrained=auto` (set by +experiment=smoke) runs a short SimCLR pre-training of this run's model first.

SANM points: exactly DivideMix's (see baselines/dividemix.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from baselines.common.checkpoint import capture_rng_state, restore_rng_state
from baselines.common.cli import entry_point
from baselines.common.config import AUTO, RunConfig
from baselines.common.engine import run
from baselines.dividemix import DivideMix, DivideMixConfig
from baselines.pretrain_simclr import PretrainSimCLR, SimCLRConfig

AUTO_PRETRAIN_EPOCHS = 2  # pretrained=auto is for smoke runs; real runs pass a real encoder


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

    def build(self) -> None:
        cfg = self.ctx.cfg
        if cfg.pretrained is None:
            raise ValueError("c2d starts from a SimCLR encoder: pass pretrained=PATH "
                             "(python -m baselines.pretrain_simclr writes <run_dir>/encoder.pt) or pretrained=auto")
        if cfg.pretrained == AUTO:
            self.ctx.pretrained = str(self._pretrain())
        super().build()

    def threshold(self, prob: torch.Tensor):
        """tau clipped into (min w, max w) so that neither the labeled nor the unlabeled set is empty (the
        official SANM script uses tau as it is); a 0-d tensor, computed without a host sync."""
        tau = self.settings["p_threshold"]
        if self.ctx.cfg.method.recipe == "official":
            return tau
        low, high = prob.min() + 1e-5, prob.max() - 1e-5
        return torch.where(low < high, torch.clamp(torch.full_like(low, tau), low, high), torch.full_like(low, tau))

    def _pretrain(self):
        """A short SimCLR run on this run's data and model, kept next to the run (reused on resume and by a rerun).

        The pre-training seeds and draws from the global RNGs; they are put back afterwards, so the classifier
        heads built next start the same whether the encoder was trained now or found from an earlier attempt."""
        cfg = self.ctx.cfg
        run_dir = self.ctx.run_dir / "pretrain_simclr"
        encoder = run_dir / "encoder.pt"
        if not encoder.exists():
            pre = OmegaConf.merge(OmegaConf.structured(RunConfig(method=SimCLRConfig(name=PretrainSimCLR.name))), {
                "dataset": cfg.dataset, "model": cfg.model, "seed": cfg.seed, "device": cfg.device,
                "trainer": {"epochs": AUTO_PRETRAIN_EPOCHS, "batch_size": cfg.trainer.batch_size, "lr": 0.5,
                            "weight_decay": 1e-4, "lr_schedule": "cosine"},
                "overwrite": True, "progress": cfg.progress, "progress_every_s": cfg.progress_every_s,
                "tensorboard": False,
            })
            print(f"pretrained=auto: a {AUTO_PRETRAIN_EPOCHS}-epoch SimCLR pre-training first, in {run_dir}")
            streams = capture_rng_state()
            run(pre, PretrainSimCLR, run_dir=run_dir)
            restore_rng_state(streams)
        return encoder


main = entry_point(C2D, "c2d")

if __name__ == "__main__":
    main()
