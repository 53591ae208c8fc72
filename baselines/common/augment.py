"""Batched training augmentation: random crop with zero padding, horizontal flip, an optional per-sample
policy (AutoAugment / RandAugment, policies.py), normalisation.

The CIFAR recipe of every baseline (DivideMix, C2D, ELR+, CDR ``dataloader_cifar.py``-style loaders) is
``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``, run per image
through PIL in loader workers. Here the same distribution is drawn for a whole uint8 batch on the training device
(docs/runs.md 2.3): the batch is padded once and each sample's window, mirrored or not, is read with one
``torch.gather``. A mirrored crop is the same window read with its column indices reversed, so flipping is free.

The presets are what `augment=<name>` selects (conf/augment/): `weak` (crop + flip, every baseline's CIFAR recipe),
`none` (Co-teaching's un-augmented inputs), `autoaugment` and `randaugment` (crop + flip, then the policy, in the
order of the official SANM's `dataloader_cifar.py`), `c2d_warmup` (its warm-up views; there the colour jitter
comes before the crop, so the zero padding stays black, a difference confined to the border), `imagenet` (the
Clothing1M / WebVision recipe on images decoded at 256: RandomCrop 224 + flip for training, CenterCrop 224 for
evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F

from .policies import PolicyAugment, c2d_warmup

__all__ = ["AUGMENT_PRESETS", "BatchAugment", "augment_settings", "build_augment"]

# Each preset's settings; a key given in the `augment` group (not None) replaces the preset's value.
AUGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "none": {"crop_padding": 0, "flip": False, "policy": None},
    "weak": {"crop_padding": 4, "flip": True, "policy": None},
    "autoaugment": {"crop_padding": 4, "flip": True, "policy": "autoaugment", "fill": 128},
    "randaugment": {"crop_padding": 4, "flip": True, "policy": "randaugment", "num_ops": 2, "magnitude": 10,
                    "cutout": 16, "fill": 0},
    # the official recipe's warm-up views (per image: continuous draws cannot be grouped)
    "c2d_warmup": {"crop_padding": 4, "flip": True, "policy": "c2d_warmup"},
    # Resize(256) happens at decoding (streaming.py); the crop makes the 224-pixel views
    "imagenet": {"crop_padding": 0, "crop_size": 224, "flip": True, "policy": None},
}
_POLICY_KEYS = ("num_ops", "magnitude", "cutout", "fill")
# the policy keys each policy reads; any other one given would be ignored, so it is refused instead
_READS = {"autoaugment": ("fill",), "randaugment": _POLICY_KEYS}


def augment_settings(name: str, overrides: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The preset `name` with the keys of `overrides` that are not None on top; one-line error for a bad name."""
    if name not in AUGMENT_PRESETS:
        raise ValueError(f"augment={name!r} is not a preset; choose one of {', '.join(AUGMENT_PRESETS)}")
    settings = dict(AUGMENT_PRESETS[name])
    for key, value in (overrides or {}).items():
        if key == "name" or value is None:
            continue
        if key in _POLICY_KEYS and key not in _READS.get(settings["policy"], ()):
            users = [p for p, keys in _READS.items() if key in keys]
            raise ValueError(f"augment.{key} has no effect with augment={name}; drop it or pick augment="
                             f"{' / '.join(users)}")
        settings[key] = value
    return settings


def build_augment(name: str, mean: Sequence[float], std: Sequence[float],
                  overrides: Optional[Mapping[str, Any]] = None,
                  device: torch.device | str | None = None) -> "BatchAugment":
    """The BatchAugment of preset `name` (with `overrides`), normalising with `mean` / `std`."""
    s = augment_settings(name, overrides)
    policy = None
    if s["policy"] == "c2d_warmup":
        policy = c2d_warmup()
    elif s["policy"] is not None:
        policy = PolicyAugment(s["policy"], **{key: s[key] for key in _POLICY_KEYS if key in s})
    return BatchAugment(mean, std, crop_padding=s["crop_padding"], flip=s["flip"], policy=policy, device=device,
                        crop_size=s.get("crop_size"))


def _crop_flip_indices(
    batch: int,
    h: int,
    w: int,
    pad: int,
    flip: bool,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    out: Optional[tuple[int, int]] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draws each sample's crop window and flip in the coordinates of the ``pad``-padded image.

    Draws, in this order: row offsets, column offsets (uniform over every window of size ``out``, default
    ``(h, w)``, in the padded image: ``[0, 2 * pad]`` for an image-sized window, as torchvision's
    ``RandomCrop(padding=pad)``), then flips (p = 0.5). A part that is off draws nothing, so turning one off does
    not shift the random stream of the other. Randomness comes from ``generator`` on its own device (so a CPU
    generator can drive a CUDA batch), else from the global RNG of ``device``.

    Returns:
        rows [B, out_h] and cols [B, out_w] (int64; a flipped sample's cols run right to left) and flipped [B]
        (bool), all on ``device``.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    draw_on = generator.device if generator is not None else device
    out_h, out_w = out or (h, w)
    span_h, span_w = h + 2 * pad - out_h, w + 2 * pad - out_w
    if span_h > 0 or span_w > 0:
        top = torch.randint(0, span_h + 1, (batch,), generator=generator, device=draw_on).to(device, non_blocking=True)
        left = torch.randint(0, span_w + 1, (batch,), generator=generator, device=draw_on).to(device, non_blocking=True)
    else:
        top = left = torch.zeros(batch, dtype=torch.long, device=device)
    if flip:
        flipped = (torch.rand(batch, generator=generator, device=draw_on) < 0.5).to(device)
    else:
        flipped = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = top[:, None] + torch.arange(out_h, device=device)
    col_steps = torch.arange(out_w, device=device).expand(batch, out_w)
    cols = left[:, None] + torch.where(flipped[:, None], col_steps.flip(1), col_steps)
    return rows, cols, flipped


class BatchAugment:
    """uint8 [B, C, H, W] (any device) -> normalised float32 [B, C, H, W] on the same device.

    Args:
        mean: Per-channel mean in [0, 1] units, as ``torchvision.transforms.Normalize`` takes it.
        std: Per-channel std in [0, 1] units.
        crop_padding: Zero padding (black, in pixel space) around each image before the random crop; 0 turns the
            crop off. 4 is the CIFAR recipe of every baseline.
        flip: Mirror each sample left-right with p = 0.5; Co-teaching trains with neither crop nor flip.
        policy: Applied to the uint8 crops before normalising, each sample its own draw (None = none):
            a PolicyAugment or a PerImageAugment.
        device: Where to keep mean/std up front; they follow the images' device otherwise.
        crop_size: The side of the square views, smaller than the images (224 of the 256 that Clothing1M is
            decoded to): a random window for training, the central one for evaluation. None: the image's size.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 4,
        flip: bool = True,
        policy: Optional[Callable[..., torch.Tensor]] = None,
        device: torch.device | str | None = None,
        crop_size: Optional[int] = None,
    ) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        if crop_size is not None and (isinstance(crop_size, bool) or int(crop_size) != crop_size or crop_size < 1):
            raise ValueError(f"crop_size must be a positive integer or None, got {crop_size!r}")
        self.crop_size = None if crop_size is None else int(crop_size)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)
        self.policy = policy

    def __call__(
        self, images_uint8: torch.Tensor, train: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Augments (when ``train``) and normalises a batch; ``generator`` makes the draw reproducible."""
        self._check(images_uint8)
        crops = self._crops(images_uint8)
        if train and (crops or self.crop_padding > 0 or self.flip):
            images_uint8 = self._crop_flip(images_uint8, generator)
        elif not train and crops:  # evaluation: the central window
            top, left = [(n - c) // 2 for n, c in zip(images_uint8.shape[2:], self._out(images_uint8))]
            images_uint8 = images_uint8[:, :, top:top + self.crop_size, left:left + self.crop_size]
        if train and self.policy is not None:
            images_uint8 = self.policy(images_uint8, generator if generator is None or generator.device.type == "cpu"
                                       else None)
        return self.normalize(images_uint8)

    def output_shape(self, image_shape: Sequence[int]) -> tuple[int, int, int]:
        """(C, H, W) of the views made from images of `image_shape` (C, H, W)."""
        c, h, w = (int(v) for v in image_shape)
        return (c, h, w) if self.crop_size is None else (c, self.crop_size, self.crop_size)

    def _out(self, images: torch.Tensor) -> tuple[int, int]:
        h, w = images.shape[2:]
        return (h, w) if self.crop_size is None else (self.crop_size, self.crop_size)

    def _crops(self, images: torch.Tensor) -> bool:
        if self.crop_size is None:
            return False
        if self.crop_size > min(images.shape[2:]) + 2 * self.crop_padding:
            raise ValueError(f"crop_size {self.crop_size} is larger than the {images.shape[2]}x{images.shape[3]} "
                             "images; decode them larger or crop smaller")
        return True

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """The eval path: ``(x / 255 - mean) / std``, i.e. ``ToTensor`` then ``Normalize``."""
        self._check(images_uint8)
        if self.mean.device != images_uint8.device:
            # Cached so a CPU-built augmenter moves its constants to the GPU once, not every batch.
            self.mean, self.std = self.mean.to(images_uint8.device), self.std.to(images_uint8.device)
        return (images_uint8.float() / 255 - self.mean) / self.std

    def _crop_flip(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b, c, h, w = images.shape
        pad = self.crop_padding
        out_h, out_w = self._out(images)
        # Cropping the uint8 batch moves a quarter of the bytes that cropping the float one would.
        padded = F.pad(images, (pad, pad, pad, pad)) if pad > 0 else images
        rows, cols, _ = _crop_flip_indices(b, h, w, pad, self.flip, generator, images.device, (out_h, out_w))
        padded_w = w + 2 * pad
        flat = (rows[:, :, None] * padded_w + cols[:, None, :]).view(b, 1, out_h * out_w).expand(b, c, out_h * out_w)
        return padded.reshape(b, c, -1).gather(2, flat).view(b, c, out_h, out_w)

    def _check(self, images: torch.Tensor) -> None:
        # A float batch would be divided by 255 a second time and train on near-constant images without an error.
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 [B, C, H, W], got {images.dtype} {list(images.shape)}")
        if images.shape[1] != self.mean.shape[1]:
            raise ValueError(f"images have {images.shape[1]} channels, mean/std have {self.mean.shape[1]}")
