"""Per-sample AutoAugment (CIFAR-10 policy) and RandAugment (FixMatch's RandAugmentMC) on uint8 batches.

The official SANM(DivideMix) trains on these views (docs/baselines.md 9.2): each image through PIL draws its own
sub-policy, ops, magnitudes and signs. torchvision's `AutoAugment` / `RandAugment` draw once per call, so a
whole batch passed to them would share one draw. Here every sample draws its own (from a CPU
`torch.Generator`, so a CUDA batch needs no host sync), the samples that drew the same (op, magnitude) are
gathered, and `torchvision.transforms.v2.functional` applies that op to the group in one call: a batch
costs at most a few dozen calls per stage whatever its size (figures: benchmarks/augment_cost.py).

Magnitudes follow the code the official SANM imports: the AutoAugment tables of its `autoaugment.py`
(rotation unsigned, the other geometric and colour ops with a random sign, grey fill 128) and FixMatch's
`RandAugmentMC(n, m)` (ops drawn with replacement from 14, magnitude v ~ U{1, ..., m-1}, each op applied
with p 0.5, then one 16x16 grey (127) cutout). Geometric ops use nearest-neighbour sampling (PIL's default
for rotate and translate; its shear is bicubic).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["AUTOAUGMENT_CIFAR10", "RANDAUGMENT_POOL", "PerImageAugment", "PolicyAugment", "apply_op", "c2d_warmup",
           "cutout"]

# The 25 sub-policies of AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, Table 8 of the appendix):
# (op, probability, magnitude index 0..9) twice; ops without a magnitude carry None.
AUTOAUGMENT_CIFAR10: tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)

# AutoAugment's value at magnitude index i (0..9), before the sign; translations are a share of the side.
_AA_RANGES: dict[str, Callable[[int], float]] = {
    "ShearX": lambda i: 0.3 * i / 9, "ShearY": lambda i: 0.3 * i / 9,
    "TranslateX": lambda i: 150 / 331 * i / 9, "TranslateY": lambda i: 150 / 331 * i / 9,
    "Rotate": lambda i: 30 * i / 9,
    "Color": lambda i: 0.9 * i / 9, "Contrast": lambda i: 0.9 * i / 9,
    "Sharpness": lambda i: 0.9 * i / 9, "Brightness": lambda i: 0.9 * i / 9,
    "Posterize": lambda i: round(8 - 4 * i / 9), "Solarize": lambda i: 256 - 256 * i / 9,
}
_AA_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Color", "Contrast", "Sharpness", "Brightness"}
_ENHANCE = {"Color", "Contrast", "Sharpness", "Brightness"}  # factor 1 + value * sign in AutoAugment

# FixMatch's pool: (op, max_v, bias); the op's value is v * max_v / 10 + bias (int() for the integer ops).
RANDAUGMENT_POOL: tuple[tuple[str, float | None, float | None], ...] = (
    ("AutoContrast", None, None), ("Brightness", 0.9, 0.05), ("Color", 0.9, 0.05), ("Contrast", 0.9, 0.05),
    ("Equalize", None, None), ("Identity", None, None), ("Posterize", 4, 4), ("Rotate", 30, 0),
    ("Sharpness", 0.9, 0.05), ("ShearX", 0.3, 0), ("ShearY", 0.3, 0), ("Solarize", 256, 0),
    ("TranslateX", 0.3, 0), ("TranslateY", 0.3, 0),
)
_RA_INTEGER = {"Posterize", "Rotate", "Solarize"}
_RA_SIGNED = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}


def apply_op(images: torch.Tensor, op: str, value: float, fill: int) -> torch.Tensor:
    """One op with one value on a uint8 group [N, C, H, W], through torchvision.transforms.v2.functional.

    `value` is the op's own unit: an enhancement factor (1 = unchanged), degrees, a shear tangent, a shift in
    pixels, posterize bits, a solarize threshold (pixels >= it are inverted; above 255 none are).
    """
    if op == "Identity":
        return images
    # imported here: torchvision takes seconds to import, and only the strong views need it
    import torchvision.transforms.v2.functional as TF

    if op == "AutoContrast":
        return TF.autocontrast(images)
    if op == "Equalize":
        return TF.equalize(images)
    if op == "Invert":
        return TF.invert(images)
    if op == "Posterize":
        return TF.posterize(images, int(value))
    if op == "Solarize":
        return images if value > 255 else TF.solarize(images, float(value))
    if op == "Brightness":
        return TF.adjust_brightness(images, value)
    if op == "Color":
        return TF.adjust_saturation(images, value)
    if op == "Contrast":
        return TF.adjust_contrast(images, value)
    if op == "Sharpness":
        return TF.adjust_sharpness(images, value)
    if op == "Rotate":
        return TF.rotate(images, value, fill=fill)
    if op in ("ShearX", "ShearY"):
        degrees = math.degrees(math.atan(value))
        shear = [degrees, 0.0] if op == "ShearX" else [0.0, degrees]
        # PIL shears about the top-left corner, as torchvision's own AutoAugment does with center=[0, 0]
        return TF.affine(images, angle=0.0, translate=[0.0, 0.0], scale=1.0, shear=shear, center=[0.0, 0.0],
                         fill=fill)
    if op in ("TranslateX", "TranslateY"):
        shift = [value, 0.0] if op == "TranslateX" else [0.0, value]
        return TF.affine(images, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], fill=fill)
    raise ValueError(f"unknown augmentation op {op!r}")


def cutout(images: torch.Tensor, size: int, value: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """FixMatch's CutoutAbs per sample: a `size` square of `value` whose centre is uniform over the image
    (clipped at the borders, so boxes near an edge are smaller). torchvision's erase takes one box per call."""
    b, _, h, w = images.shape
    cx = torch.rand(b, generator=generator) * w
    cy = torch.rand(b, generator=generator) * h
    x0 = (cx - size / 2).clamp(min=0).long()  # int(max(0, c - v / 2)), as CutoutAbs
    y0 = (cy - size / 2).clamp(min=0).long()
    x1, y1 = (x0 + size).clamp(max=w), (y0 + size).clamp(max=h)
    cols, rows = torch.arange(w), torch.arange(h)
    inside_x = (cols[None] >= x0[:, None]) & (cols[None] < x1[:, None])  # [B, W]
    inside_y = (rows[None] >= y0[:, None]) & (rows[None] < y1[:, None])  # [B, H]
    box = (inside_y[:, :, None] & inside_x[:, None, :]).to(images.device, non_blocking=True)  # [B, H, W]
    return images.masked_fill(box[:, None], value)


def _flags(names: list[str], members: set[str]) -> torch.Tensor:
    return torch.tensor([name in members for name in names])


def _autoaugment_tables() -> list[dict]:
    """Per stage, each sub-policy's op, probability and unsigned value, as lookups a batch draws from at once."""
    tables = []
    for stage in range(2):
        ops = [sub[stage] for sub in AUTOAUGMENT_CIFAR10]
        names = [op for op, _, _ in ops]
        base = [_AA_RANGES[op](index) if index is not None and op in _AA_RANGES else 0.0 for op, _, index in ops]
        tables.append({"names": names, "prob": torch.tensor([p for _, p, _ in ops], dtype=torch.float64),
                       "base": torch.tensor(base, dtype=torch.float64), "signed": _flags(names, _AA_SIGNED),
                       "enhance": _flags(names, _ENHANCE), "tx": _flags(names, {"TranslateX"}),
                       "ty": _flags(names, {"TranslateY"})})
    return tables


def _randaugment_table() -> dict:
    names = [op for op, _, _ in RANDAUGMENT_POOL]
    return {"names": names, "has_value": torch.tensor([m is not None for _, m, _ in RANDAUGMENT_POOL]),
            "max_v": torch.tensor([m or 0.0 for _, m, _ in RANDAUGMENT_POOL], dtype=torch.float64),
            "bias": torch.tensor([b or 0.0 for _, _, b in RANDAUGMENT_POOL], dtype=torch.float64),
            "integer": _flags(names, _RA_INTEGER), "signed": _flags(names, _RA_SIGNED),
            "tx": _flags(names, {"TranslateX"}), "ty": _flags(names, {"TranslateY"}),
            "solarize": _flags(names, {"Solarize"})}


_AA_TABLES = _autoaugment_tables()
_RA_TABLE = _randaugment_table()


@dataclass(frozen=True)
class _Draw:
    """One stage of a batch: the op, value and whether to apply it, per sample (all on the CPU)."""

    ops: list[str]
    values: list[float]
    applied: list[bool]


class PolicyAugment:
    """uint8 [B, C, H, W] -> uint8, each sample through its own draw of `policy`.

    Args:
        policy: 'autoaugment' (CIFAR-10 policy) or 'randaugment' (FixMatch's RandAugmentMC).
        num_ops: RandAugment's n (2 in the official recipe).
        magnitude: RandAugment's m: each op's v ~ U{1, ..., m-1} (10 in the official recipe).
        cutout: side of RandAugment's final grey square (16; 0 = none).
        fill: pixel value the geometric ops fill with (128 in AutoAugment; FixMatch's PIL ops fill 0).
    """

    def __init__(self, policy: str, num_ops: int = 2, magnitude: int = 10, cutout: int = 16,
                 fill: int | None = None) -> None:
        if policy not in ("autoaugment", "randaugment"):
            raise ValueError(f"policy must be 'autoaugment' or 'randaugment', got {policy!r}")
        if num_ops < 1:
            raise ValueError(f"num_ops must be >= 1, got {num_ops}")
        if not 2 <= magnitude <= 10:
            raise ValueError(f"magnitude must be in 2..10 (v is drawn from 1..magnitude-1), got {magnitude}")
        if cutout < 0:
            raise ValueError(f"cutout must be >= 0, got {cutout}")
        self.policy, self.num_ops, self.magnitude, self.cutout = policy, int(num_ops), int(magnitude), int(cutout)
        self.fill = int(fill) if fill is not None else (128 if policy == "autoaugment" else 0)
        if not 0 <= self.fill <= 255:
            raise ValueError(f"fill must be a pixel value in 0..255, got {fill}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 [B, C, H, W], got {images.dtype} {list(images.shape)}")
        draws = (self._autoaugment_draws(images.shape, generator) if self.policy == "autoaugment"
                 else self._randaugment_draws(images.shape, generator))
        for draw in draws:
            images = self._apply_grouped(images, draw)
        if self.policy == "randaugment" and self.cutout > 0:
            images = cutout(images, self.cutout, 127, generator)
        return images

    def _apply_grouped(self, images: torch.Tensor, draw: _Draw) -> torch.Tensor:
        """Applies each sample's op; samples sharing (op, value) go through torchvision in one call."""
        groups: dict[tuple[str, float], list[int]] = {}
        for i, (op, value, applied) in enumerate(zip(draw.ops, draw.values, draw.applied)):
            if applied and op != "Identity":
                groups.setdefault((op, value), []).append(i)
        if not groups:
            return images
        out = images.clone()
        for (op, value), rows in groups.items():
            index = torch.tensor(rows).to(images.device, non_blocking=True)
            out[index] = apply_op(images[index], op, value, self.fill)
        return out

    def _autoaugment_draws(self, shape: torch.Size, generator: torch.Generator | None) -> list[_Draw]:
        b, side_h, side_w = shape[0], shape[-2], shape[-1]
        chosen = torch.randint(len(AUTOAUGMENT_CIFAR10), (b,), generator=generator)
        draws = []
        for table in _AA_TABLES:  # one per stage, indexed by the sub-policy each sample drew
            coin = torch.rand(b, generator=generator)
            signs = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0).double()
            value = table["base"][chosen]
            value = torch.where(table["signed"][chosen], value * signs, value)
            value = torch.where(table["enhance"][chosen], 1.0 + value, value)
            value = torch.where(table["tx"][chosen], value * side_w, torch.where(table["ty"][chosen], value * side_h,
                                                                                 value))
            draws.append(_Draw([table["names"][k] for k in chosen.tolist()], value.tolist(),
                               (coin < table["prob"][chosen]).tolist()))
        return draws

    def _randaugment_draws(self, shape: torch.Size, generator: torch.Generator | None) -> list[_Draw]:
        b, side_h, side_w = shape[0], shape[-2], shape[-1]
        t = _RA_TABLE
        draws = []
        for _ in range(self.num_ops):
            chosen = torch.randint(len(RANDAUGMENT_POOL), (b,), generator=generator)
            levels = torch.randint(1, self.magnitude, (b,), generator=generator)
            coin = torch.rand(b, generator=generator)
            signs = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0).double()
            scaled = levels.double() * t["max_v"][chosen] / 10
            value = torch.where(t["integer"][chosen], scaled.trunc(), scaled) + t["bias"][chosen]
            value = torch.where(t["signed"][chosen], value * signs, value)
            # FixMatch shifts by whole pixels, int(v * side), and solarizes above 256 - v
            value = torch.where(t["tx"][chosen], (value * side_w).trunc(), value)
            value = torch.where(t["ty"][chosen], (value * side_h).trunc(), value)
            value = torch.where(t["solarize"][chosen], 256 - value, value)
            value = torch.where(t["has_value"][chosen], value, torch.zeros_like(value))
            draws.append(_Draw([t["names"][k] for k in chosen.tolist()], value.tolist(), (coin < 0.5).tolist()))
        return draws


class PerImageAugment:
    """uint8 [B, C, H, W] -> uint8: a torchvision v2 transform applied to each image on its own.

    For policies with continuous per-sample parameters, which cannot be grouped into a few calls: one call
    per image, so keep it to short phases (the official recipe's warm-up). Its draws come from torch's
    global RNG, which the engine seeds and checkpoints.
    """

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor], policy: str = "per_image") -> None:
        self.transform, self.policy = transform, policy

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 [B, C, H, W], got {images.dtype} {list(images.shape)}")
        return torch.stack([self.transform(image) for image in images]) if len(images) else images


def c2d_warmup() -> PerImageAugment:
    """The warm-up views of the official SANM (C2D's): ColorJitter(0.4, 0.4, 0.4, hue 0.4) and RandomAffine
    (15 degrees, shifts up to 10%, scale 2/3..3/2, shear 0.1 degrees on each axis), after crop and flip."""
    from torchvision.transforms import v2

    return PerImageAugment(v2.Compose([
        v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4),
        v2.RandomAffine(degrees=15.0, translate=(0.1, 0.1), scale=(2 / 3, 3 / 2), shear=(-0.1, 0.1, -0.1, 0.1)),
    ]), policy="c2d_warmup")
