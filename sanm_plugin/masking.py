"""Adversarial noisy masking: box sizes, placement and fill (paper Eq. 3-5, official code S3-S6).

Everything is batched: the boxes of all samples are described by [B] tensors and the fill writes only
the pixels inside the boxes. To write a data-dependent number of pixels without a host sync, each
sample gets a fixed budget of `capacity` slots (an upper bound on its boxes' total area, derived from
the config and the image size); slot k of a sample maps to pixel k of its first box, then of its
second, and slots past the boxes' area write to one scratch element that is dropped.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .config import SANMConfig

# Official ratio r = U(0.02, 0.07) + 0.03 * (1 - G) (Train_cifar.py, January 2024 form); area 0.5*r*H*W.
OFFICIAL_RATIO_LOW = 0.02
OFFICIAL_RATIO_HIGH = 0.07
OFFICIAL_RATIO_QUALITY = 0.03
OFFICIAL_AREA_FACTOR = 0.5


def mask_ratios(clean_prob: torch.Tensor, config: SANMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak and trough mask ratios r_i.

    Paper (Eq. 3): r = mu * (1 - G) at the peak, mu * G at the trough, so likely-noisy samples lose
    more of what the network looks at and likely-clean ones more of the background. Official:
    r = U(0.02, 0.07) + 0.03 * (1 - G) at both (the trough box has the peak box's size).
    """
    quality = clean_prob.float()
    if config.ratio == "paper":
        return config.mu * (1.0 - quality), config.mu * quality
    noise = torch.rand_like(quality) * (OFFICIAL_RATIO_HIGH - OFFICIAL_RATIO_LOW) + OFFICIAL_RATIO_LOW
    ratio = noise + OFFICIAL_RATIO_QUALITY * (1.0 - quality)
    return ratio, ratio


def box_area_factor(config: SANMConfig) -> float:
    """Box area as a multiple of r*H*W: 1 in the paper (Eq. 4), 0.5 in the official code (S5)."""
    return OFFICIAL_AREA_FACTOR if config.ratio == "official" else 1.0


def sample_aspect(batch: int, delta: float, device: torch.device) -> torch.Tensor:
    """d ~ U(delta, 1/delta) (Eq. 4)."""
    return torch.rand(batch, device=device) * (1.0 / delta - delta) + delta


def box_sizes(
    area: torch.Tensor, aspect: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer box height and width with height*width ~ area and height/width ~ aspect.

    Sides are rounded half up; a box with positive area keeps at least one pixel so it always covers
    its anchor pixel; sides never exceed the image.
    """
    positive = area > 0
    rows = torch.floor(torch.sqrt(area * aspect) + 0.5).clamp(min=1, max=height)
    cols = torch.floor(torch.sqrt(area / aspect) + 0.5).clamp(min=1, max=width)
    zero = torch.zeros_like(rows)
    return torch.where(positive, rows, zero).long(), torch.where(positive, cols, zero).long()


def place_boxes(
    anchor: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, height: int, width: int, mode: str
) -> torch.Tensor:
    """Box [B, 4] as half-open (top, bottom, left, right) around anchor [B, 2] (row, col).

    'centered': centred on the anchor and clipped to the image (Eq. 4). 'corner': top-left corner at
    the anchor, shifted up/left so that the whole box fits (official S5).
    """
    r, c = anchor[:, 0], anchor[:, 1]
    if mode == "centered":
        top, left = r - rows // 2, c - cols // 2
        bottom, right = (top + rows).clamp(max=height), (left + cols).clamp(max=width)
        top, left = top.clamp(min=0), left.clamp(min=0)
    else:
        top, left = torch.minimum(r, height - rows), torch.minimum(c, width - cols)
        bottom, right = top + rows, left + cols
    return torch.stack((top, bottom, left, right), dim=1)


def fill_capacity(config: SANMConfig, height: int, width: int, boxes_per_image: int) -> int:
    """Upper bound on the total pixel count of one image's boxes, from the config alone.

    A box of area A and aspect d in [delta, 1/delta] has sides at most sqrt(A*d)+1 and sqrt(A/d)+1,
    hence at most A + kappa*sqrt(A) + 1 pixels with kappa = sqrt(delta) + 1/sqrt(delta). For n boxes
    whose areas sum to at most S, Cauchy-Schwarz bounds the total by S + kappa*sqrt(n*S) + n.
    """
    pixels = height * width
    if config.ratio == "official":
        single = OFFICIAL_AREA_FACTOR * (OFFICIAL_RATIO_HIGH + OFFICIAL_RATIO_QUALITY) * pixels
        total = single * boxes_per_image
    else:  # peak and trough ratios are mu*(1-G) and mu*G: each at most mu, together exactly mu
        total = config.mu * pixels
    kappa = math.sqrt(config.delta) + 1.0 / math.sqrt(config.delta)
    bound = total + kappa * math.sqrt(boxes_per_image * total) + boxes_per_image
    return int(min(boxes_per_image * pixels, math.ceil(bound)))


def fill_boxes(images: torch.Tensor, boxes: Sequence[torch.Tensor], fill: str, capacity: int) -> torch.Tensor:
    """Copy of images [B, C, H, W] with every box replaced by U(0, 1) noise.

    fill='pixel' draws one value per pixel and channel (Eq. 5); 'channel' one value per box and
    channel (official S6). Boxes of one image may overlap; a pixel in both gets one of the draws.
    """
    b, c, h, w = images.shape
    device = images.device
    # float64 slot arithmetic: exact for any image size, and much faster than int64 division on CPU
    slot = torch.arange(capacity, device=device, dtype=torch.float64)
    pixel = torch.full((b, capacity), h * w, device=device, dtype=torch.float64)  # h*w = "no pixel"
    box_of_slot = torch.zeros((b, capacity), device=device, dtype=torch.long)
    start = torch.zeros((b, 1), device=device, dtype=torch.float64)
    for number, box in enumerate(boxes):
        top, bottom, left, right = box.double().unsqueeze(2).unbind(dim=1)
        box_w = (right - left).clamp(min=1)
        area = (bottom - top) * (right - left)
        local = slot - start
        inside = (local >= 0) & (local < area)
        row = torch.floor((local + 0.5) / box_w)
        pixel = torch.where(inside, (top + row) * w + left + local - row * box_w, pixel)
        if number:
            box_of_slot.masked_fill_(inside, number)
        start = start + area
    pixel = pixel.long()
    # flat index into [B, C, H, W]; unused slots all write one scratch element past the end
    base = (torch.arange(b * c, device=device) * (h * w)).view(b, c, 1)
    index = (base + pixel.unsqueeze(1)).masked_fill_(pixel.unsqueeze(1) == h * w, b * c * h * w)
    if fill == "pixel":
        values = torch.rand((b, c, capacity), device=device, dtype=images.dtype)
    else:
        per_box = torch.rand((b, c, len(boxes)), device=device, dtype=images.dtype)
        values = per_box.gather(2, box_of_slot.unsqueeze(1).expand(b, c, capacity))
    out = torch.empty(b * c * h * w + 1, device=device, dtype=images.dtype)
    out[:-1] = images.reshape(-1)
    out.scatter_(0, index.reshape(-1), values.reshape(-1))
    return out[:-1].view(b, c, h, w)
