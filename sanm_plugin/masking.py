"""Adversarial noisy masking: box sizes, placement and fill (paper Eq. 3-5, official code S3-S6).

Everything is batched: the boxes of all samples are described by [B] tensors and the fill writes only
the pixels inside the boxes. To write a data-dependent number of pixels without a host sync, each
sample gets a fixed budget of `capacity` slots (an upper bound on its boxes' total area, derived from
the config and the image size); slot k of a sample maps to pixel k of its first box, then of its
second. Slots past the boxes' area write pixel (0, 0), which is then set to the value it must have.
"""

from __future__ import annotations

import math

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


def sample_aspect(shape: int | tuple[int, ...], delta: float, device: torch.device) -> torch.Tensor:
    """d ~ U(delta, 1/delta) (Eq. 4)."""
    return torch.rand(shape, device=device) * (1.0 / delta - delta) + delta


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
    anchor_row: torch.Tensor, anchor_col: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
    height: int, width: int, mode: str,
) -> torch.Tensor:
    """Boxes [..., 4] as half-open (top, bottom, left, right) around the anchor pixels (any shape).

    'centered': centred on the anchor and clipped to the image (Eq. 4). 'corner': top-left corner at
    the anchor, shifted up/left so that the whole box fits (official S5).
    """
    if mode == "centered":
        top, left = anchor_row - rows // 2, anchor_col - cols // 2
        bottom, right = (top + rows).clamp(max=height), (left + cols).clamp(max=width)
        top, left = top.clamp(min=0), left.clamp(min=0)
    else:
        top, left = torch.minimum(anchor_row, height - rows), torch.minimum(anchor_col, width - cols)
        bottom, right = top + rows, left + cols
    return torch.stack((top, bottom, left, right), dim=-1)


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


def fill_boxes(images: torch.Tensor, boxes: torch.Tensor, fill: str, capacity: int) -> torch.Tensor:
    """Copy of images [B, C, H, W] with the boxes [B, n, 4] of each image replaced by U(0, 1) noise.

    fill='pixel' draws one value per pixel and channel (Eq. 5); 'channel' one value per box and
    channel (official S6). Boxes of one image may overlap; a pixel in both gets one of the draws.
    Slots past the boxes' total area write slot 0's pixel again, with a draw of their own (pixel
    fill) or slot 0's box value (channel fill), so that pixel still ends up as one draw.
    """
    b, c, h, w = images.shape
    pixel, box_of_slot, any_box = _slot_pixels(boxes, capacity, w, with_box_index=fill == "channel")
    if fill == "pixel":
        values = uniform((b, c, capacity), images.device, images.dtype)
    else:
        per_box = uniform((b, c, boxes.shape[1]), images.device, images.dtype)
        values = per_box.gather(2, box_of_slot.unsqueeze(1).expand(b, c, capacity))
    out = images.clone(memory_format=torch.contiguous_format)
    out.view(b, c, h * w).scatter_(2, pixel.unsqueeze(1).expand(b, c, capacity), values)
    # an image without any box had all its slots write pixel (0, 0): put its own value back
    out[:, :, 0, 0] = torch.where(any_box, out[:, :, 0, 0], images[:, :, 0, 0])
    return out


def uniform(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """U(0, 1) samples; on CPU about twice as fast as torch.rand for large float32 draws.

    Each 64-bit integer draw gives two 23-bit mantissas; with the exponent of 1.0 they are floats
    uniform on [1, 2), shifted to [0, 1) in place (torch.rand's float32 has 24-bit resolution).
    """
    count = math.prod(shape)
    if device.type != "cpu" or dtype != torch.float32 or count < 4096:
        return torch.rand(shape, device=device, dtype=dtype)
    bits = torch.empty((count + 1) // 2, dtype=torch.int64).random_().view(torch.int32)[:count]
    return bits.bitwise_and_(0x007FFFFF).bitwise_or_(0x3F800000).view(torch.float32).sub_(1.0).view(shape)


def _slot_pixels(
    boxes: torch.Tensor, capacity: int, width: int, with_box_index: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Per slot [B, capacity]: the flat pixel it writes and its box; and [B, 1] whether any box exists.

    Slot k of box j covers pixel (top + k // bw, left + k % bw) with k counted from the start of
    box j; slots past the last box repeat slot 0's pixel and box (pixel (0, 0) without any box).
    The arithmetic runs in floating point, which on CPU is much faster than int64 division and
    exact here: float32 represents every integer below 2^24 and floor((k + 0.5) / bw) cannot round
    across an integer while k < 2^22; larger images use float64.
    """
    exact = torch.float32 if capacity * width < 2**22 else torch.float64
    top, bottom, left, right = boxes.to(exact).unbind(dim=-1)  # each [B, n]
    box_w = right - left
    area = (bottom - top) * box_w
    end = area.cumsum(dim=1)
    local = torch.arange(capacity, device=boxes.device, dtype=exact) - (end - area).unsqueeze(2)  # [B, n, cap]
    row = torch.floor((local + 0.5) / box_w.clamp(min=1).unsqueeze(2))
    # (top + row) * width + left + (local - row * box_w), folded into fewer passes
    every = row.mul_((width - box_w).unsqueeze(2)).add_(local).add_((top * width + left).unsqueeze(2))
    pixel, box_of_slot = every[:, 0], None
    for j in range(1, boxes.shape[1]):  # box j's slots start where box j-1's end
        started = local[:, j] >= 0
        pixel = torch.where(started, every[:, j], pixel)
        if with_box_index:
            box_of_slot = started.long() * j if box_of_slot is None else torch.where(started, j, box_of_slot)
    if with_box_index and box_of_slot is None:
        box_of_slot = torch.zeros(pixel.shape, dtype=torch.long, device=pixel.device)
    used = local[:, -1] < area[:, -1:]  # slot k < total area
    any_box = end[:, -1:] > 0
    first = torch.where(any_box, pixel[:, :1], 0)
    pixel = torch.where(used, pixel, first).long()
    if with_box_index:
        box_of_slot = torch.where(used, box_of_slot, box_of_slot[:, :1])
    return pixel, box_of_slot, any_box
