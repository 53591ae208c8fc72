"""What a run's plots need beyond metrics.jsonl, saved at a few epochs while it trains.

At each chosen epoch a SANM run writes ``run_dir/diagnostics/epoch_NNN.npz``: every training sample's label
quality G and the last mask ratio SANM gave it, which labels are truly right, and a small fixed gallery of
training images (half with wrong labels) with their activation map and the peak/trough boxes SANM draws on them
now. That is a few hundred kB at CIFAR size, written atomically, so ``python -m baselines.plot`` can draw a run
at any time, also while it trains. The gallery's masks are drawn under a forked RNG: taking a snapshot does not
change what the run trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from sanm_plugin import activation
from sanm_plugin.tap import FeatureTap

from .config import AUTO
from .files import atomic_write

if TYPE_CHECKING:
    from .engine import Network, RunContext

DIAGNOSTICS_DIR = "diagnostics"
AUTO_SNAPSHOTS = 4  # how many epochs plots.epochs=auto spreads over the epochs SANM is active


def snapshot_epochs(setting: Any, epochs: int, sanm_warmup: int | None) -> list[int]:
    """The epochs (counted from 1) at which to save a snapshot.

    `setting` is plots.epochs: `auto` spreads AUTO_SNAPSHOTS epochs evenly from the first epoch SANM is active
    (after `sanm_warmup` epochs) to the last; a list gives them by hand; [] saves none. Without SANM
    (`sanm_warmup` None) there is no G to save, so there are none.
    """
    if sanm_warmup is None:
        return []
    if setting == AUTO:
        first = sanm_warmup + 1
        if first > epochs:
            return []
        return sorted({int(round(e)) for e in np.linspace(first, epochs, min(AUTO_SNAPSHOTS, epochs - first + 1))})
    if isinstance(setting, (str, bytes)) or not isinstance(setting, Sequence):
        raise ValueError(f"plots.epochs must be auto or a list of epochs, got {setting!r}")
    chosen = []
    for value in setting:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= epochs:
            raise ValueError(f"plots.epochs holds {value!r}; each must be an epoch from 1 to trainer.epochs={epochs}")
        chosen.append(value)
    return sorted(set(chosen))


def gallery_indices(is_clean: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """`size` training samples, half of them with a wrong label where there are enough (those first), drawn with
    `seed`: the same images at every epoch and on resume."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"plots.gallery must be an integer >= 0, got {size!r}")
    rng = np.random.default_rng(seed)
    flags = is_clean.cpu().numpy()
    wrong, right = np.flatnonzero(~flags), np.flatnonzero(flags)
    n_wrong = min(len(wrong), size // 2)
    n_right = min(len(right), size - n_wrong)
    picked = [np.sort(rng.choice(wrong, n_wrong, replace=False)), np.sort(rng.choice(right, n_right, replace=False))]
    return torch.from_numpy(np.concatenate(picked))  # the wrong labels first, for the gallery's rows


def _uint8(pixels: torch.Tensor) -> np.ndarray:
    """[0, 1] pixels as uint8 [K, C, H, W], for display."""
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def gallery(ctx: "RunContext", net: "Network", index: torch.Tensor) -> dict[str, np.ndarray]:
    """The gallery images as the network sees them at test time, their activation map (upsampled, scaled to
    [0, 1] per image) and the masks SANM's hook draws for them with their current G."""
    hook, augmenter = net.sanm, net.sanm.augmenter
    index = index.to(ctx.device)
    if hasattr(ctx.train_images, "plan"):  # a streamed dataset decodes what it was told to expect
        ctx.train_images.plan([index], stream="eval")
    views = ctx.augment(ctx.train_images[index], train=False)
    model = net.module
    was_training = model.training
    model.eval()
    try:
        tap = FeatureTap(model)
        logits, feats = tap(views)
        weight = tap.classifier_weight
    finally:
        model.train(was_training)
    quality = hook.clean_prob[index]
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the fill's random draws must not move the run's RNG
        masked = augmenter.modulate_batch(views, feats, logits, quality, weight)
    maps = activation.upsample_bilinear(augmenter.activation_map(feats, logits, weight), tuple(views.shape[-2:]))
    low = maps.flatten(1).min(dim=1).values.view(-1, 1, 1)
    high = maps.flatten(1).max(dim=1).values.view(-1, 1, 1)
    maps = (maps - low) / (high - low).clamp(min=1e-12)
    return {
        "gallery_index": index.cpu().numpy(),
        "gallery_images": _uint8(augmenter.to_pixels(views)),
        "gallery_masked": _uint8(augmenter.to_pixels(masked.images)),
        "gallery_cam": maps.half().cpu().numpy(),
        "gallery_peak_box": masked.peak_box.cpu().numpy(),
        "gallery_trough_box": masked.trough_box.cpu().numpy(),
        "gallery_ratio": masked.ratio.float().cpu().numpy(),
        "gallery_quality": quality.float().cpu().numpy(),
        "gallery_label": ctx.labels[index].cpu().numpy(),
        "gallery_true_label": ctx.true_labels[index].cpu().numpy(),
        "gallery_predicted": logits.argmax(dim=1).cpu().numpy(),
    }


class Snapshots:
    """Saves a run's diagnostics at the chosen epochs, for the first network that has SANM."""

    def __init__(self, ctx: "RunContext", networks: dict[str, "Network"], run_dir: Path) -> None:
        cfg = ctx.cfg
        self.ctx = ctx
        self.folder = Path(run_dir) / DIAGNOSTICS_DIR
        self.net_name, self.net = next(((n, net) for n, net in networks.items() if net.sanm is not None),
                                       (None, None))
        warmup = ctx.sanm_settings.warmup_epochs if self.net is not None else None
        self.epochs = snapshot_epochs(cfg.plots.epochs, cfg.trainer.epochs, warmup)
        self.index = gallery_indices(ctx.is_clean, cfg.plots.gallery, cfg.seed) if self.epochs else None

    def due(self, epoch: int) -> bool:
        return epoch in self.epochs

    def save(self, epoch: int) -> Path:
        """Writes diagnostics/epoch_NNN.npz for `epoch` (counted from 1)."""
        hook = self.net.sanm
        arrays: dict[str, Any] = {
            "epoch": np.array(epoch), "network": np.array(self.net_name),
            "clean_prob": hook.clean_prob.half().cpu().numpy(),
            "mask_ratio": hook.last_ratio.half().cpu().numpy(),
            "is_clean": self.ctx.is_clean.cpu().numpy(),
            "labels_known": np.array(bool(self.ctx.data.labels_known)),
            "class_names": np.array([str(c) for c in (self.ctx.data.class_names or range(self.ctx.num_classes))]),
        }
        if len(self.index):
            arrays.update(gallery(self.ctx, self.net, self.index))
        path = self.folder / f"epoch_{epoch:03d}.npz"
        with atomic_write(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return path
