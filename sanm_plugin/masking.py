"""Adversarial noisy masking: box ratios, sizes, placement and fill (paper Eq. 3-5, official code S3-S6).

Everything is batched: the boxes of all samples are small tensors and the fill writes only the pixels
inside the boxes. To write a data-dependent number of pixels without a host sync, each image gets a
fixed budget of `capacity` slots (an upper bound on its boxes' total area, derived from the config and
the image size); slot k of an image maps to pixel k of its first box, then of its second. Slots past
the boxes' area write the last box pixel again, so every written pixel still ends up holding one draw.

Coordinates stay in float32 until the boxes are returned: every value is an integer far below 2^24,
so the arithmetic is exact, and on CPU float ops are much cheaper than int64 ones (no vectorised
integer division). The hooks run a few dozen small tensor ops per batch, so the code below is written
to keep that count low: the peak and trough boxes travel together as [B, 2, ...] tensors.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from ._constant import constant, half_steps
from .config import SANMConfig

# Official ratio r = U(0.02, 0.07) + 0.03 * (1 - G) (Train_cifar.py, January 2024 form); area 0.5*r*H*W.
OFFICIAL_RATIO_LOW = 0.02
OFFICIAL_RATIO_HIGH = 0.07
OFFICIAL_RATIO_QUALITY = 0.03
OFFICIAL_AREA_FACTOR = 0.5


def box_ratios(clean_prob: torch.Tensor, config: SANMConfig) -> torch.Tensor:
    """[B, 2] mask ratios of the (peak, trough) boxes.

    Paper (Eq. 3): r = mu * (1 - G) at the peak, mu * G at the trough, so likely-noisy samples lose
    more of what the network looks at and likely-clean ones more of the background. Official:
    r = U(0.02, 0.07) + 0.03 * (1 - G) at both (the trough box has the peak box's size).
    """
    quality = clean_prob.float().unsqueeze(1)
    if config.ratio == "paper":  # mu + G * (-mu) = mu*(1-G) and 0 + G * mu = mu*G, in one op
        offset, slope = constant((config.mu, 0.0), quality.device), constant((-config.mu, config.mu), quality.device)
        return torch.addcmul(offset, quality, slope)
    noise = torch.rand_like(quality).mul_(OFFICIAL_RATIO_HIGH - OFFICIAL_RATIO_LOW).add_(OFFICIAL_RATIO_LOW)
    ratio = noise.add_(OFFICIAL_RATIO_QUALITY).sub_(quality, alpha=OFFICIAL_RATIO_QUALITY)
    return ratio.expand(-1, 2)


def mask_ratios(clean_prob: torch.Tensor, config: SANMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak and trough mask ratios r_i, each [B] (box_ratios as a pair)."""
    peak, trough = box_ratios(clean_prob, config).unbind(dim=1)
    return peak, trough


def box_area_factor(config: SANMConfig) -> float:
    """Box area as a multiple of r*H*W: 1 in the paper (Eq. 4), 0.5 in the official code (S5)."""
    return OFFICIAL_AREA_FACTOR if config.ratio == "official" else 1.0


def sample_aspect(shape: int | tuple[int, ...], delta: float, device: torch.device) -> torch.Tensor:
    """d ~ U(delta, 1/delta) (Eq. 4)."""
    return torch.empty(shape, device=device).uniform_(delta, 1.0 / delta)


def box_sides(area: torch.Tensor, aspect: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[..., 2] integer-valued (rows, cols) in area's float dtype, rows*cols ~ area, rows/cols ~ aspect.

    Sides are sqrt(area * aspect) and sqrt(area / aspect) rounded half up; a box with positive area
    keeps at least one pixel so it always covers its anchor pixel, and a non-positive (or NaN) area
    gives an empty box; sides never exceed the image.
    """
    squares = torch.stack((area * aspect, area / aspect), dim=-1)
    # fmax drops the NaN of sqrt(negative): such a box is empty like a zero-area one
    half, zero = constant(0.5, area.device, area.dtype), constant(0.0, area.device, area.dtype)
    sides = torch.fmax(squares.sqrt_().add_(half).floor_(), area.gt(zero).unsqueeze(-1))
    return torch.minimum(sides, constant((float(height), float(width)), sides.device, sides.dtype))


def box_sizes(area: torch.Tensor, aspect: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer box heights and widths (int64, area's shape); see box_sides."""
    rows, cols = box_sides(area, aspect, height, width).long().unbind(dim=-1)
    return rows, cols


def place(anchor: torch.Tensor, sides: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """Boxes [..., 4] as half-open (top, bottom, left, right) from [..., 2] (row, col) anchors and sides.

    'centered': centred on the anchor and clipped to the image (Eq. 4). 'corner': top-left corner at
    the anchor, shifted up/left so that the whole box fits (official S5). Keeps sides' dtype.
    """
    anchor = anchor.to(sides.dtype)
    if mode == "centered":
        start = anchor - sides.div(constant(2.0, sides.device, sides.dtype), rounding_mode="floor")
        zero = constant(0.0, sides.device, sides.dtype)
        bounds = constant(((float(height),), (float(width),)), sides.device, sides.dtype)  # [2, 1]: rows, cols
        edges = torch.stack((start, start + sides), dim=-1).clamp_(min=zero, max=bounds)
    else:
        start = torch.minimum(anchor, constant((float(height), float(width)), sides.device, sides.dtype) - sides)
        edges = torch.stack((start, start + sides), dim=-1)
    return edges.flatten(-2)  # (row, col) x (start, end) -> top, bottom, left, right


def place_boxes(
    anchor_row: torch.Tensor, anchor_col: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
    height: int, width: int, mode: str,
) -> torch.Tensor:
    """place() for separate row/column tensors (any shape); int64 boxes [..., 4]."""
    anchor = torch.stack((anchor_row, anchor_col), dim=-1)
    sides = torch.stack((rows, cols), dim=-1).double()
    return place(anchor, sides, height, width, mode).long()


def make_boxes(
    anchors: torch.Tensor, ratios: torch.Tensor, config: SANMConfig, height: int, width: int
) -> torch.Tensor:
    """[B, 2, 4] float (top, bottom, left, right) of the peak and trough boxes.

    anchors: [B, 2, 2] (peak, trough) x (row, col); ratios: [B, 2] (box_ratios). Draws one aspect per
    box; the official trough box copies the peak box's size; trough='off' leaves the trough box empty.
    """
    batch, device = ratios.shape[0], ratios.device
    area = ratios * constant(box_area_factor(config) * height * width, device)
    if config.ratio == "official":  # one size for both boxes
        sides = box_sides(area[:, :1], sample_aspect((batch, 1), config.delta, device), height, width).expand(-1, 2, -1)
    else:
        sides = box_sides(area, sample_aspect((batch, 2), config.delta, device), height, width)
    if config.trough == "off":
        sides = sides * constant(((1.0,), (0.0,)), device)  # [2, 1]: keep the peak box's sides
    return place(anchors, sides, height, width, config.box)


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


def fill_plan(boxes: torch.Tensor, config: SANMConfig, height: int, width: int) -> tuple[torch.Tensor, int, bool]:
    """What fill_boxes gets for the config's trough mode: (boxes to fill, slot budget, separate copies).

    'same_image': both boxes in one image; 'separate_image': each box in a copy of its own (official);
    'off': the peak box alone.
    """
    if config.trough == "same_image":
        return boxes, fill_capacity(config, height, width, 2), False
    separate = config.trough == "separate_image"
    return (boxes if separate else boxes[:, :1]), fill_capacity(config, height, width, 1), separate


def every_image_boxed(config: SANMConfig) -> bool:
    """Whether the config gives every image it fills (every copy, if separate) a non-empty box for any G in [0, 1].

    The paper's peak and trough ratios sum to mu, so one of them is at least mu/2 (far from float32
    underflow when mu > 1e-30); the official ratio is at least 0.02 for each of its boxes.
    """
    return config.ratio == "official" or (config.trough == "same_image" and config.mu > 1e-30)


def fill_boxes(
    images: torch.Tensor, boxes: torch.Tensor, fill: str, capacity: int, separate: bool = False,
    every_image_boxed: bool = False, value_map: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Copy of images [B, C, H, W] with the boxes [B, n, 4] of each image replaced by U(0, 1) noise.

    fill='pixel' draws one value per pixel and channel (Eq. 5); 'channel' one value per box and
    channel (official S6). Boxes of one image may overlap; a pixel in both gets one of the draws.
    capacity bounds the pixels of one image's boxes (fill_capacity): of all n, or of one if separate.

    separate=True puts each box in a copy of its own: the result is [n*B, C, H, W], row j*B + i
    holding image i with box j only (the official code's separate peak- and trough-masked images),
    filled in one pass.

    every_image_boxed=True promises that every image (every copy, if separate) has a non-empty box,
    which saves restoring the one pixel that an image without boxes has its slots write.

    value_map=(scale, shift), each [C], writes u * scale + shift instead of the draw u: U(0, 1) pixel
    intensities put into normalised units (scale = 1/std, shift = -mean/std).
    """
    b, c, h, w = images.shape
    if separate:
        n = boxes.shape[1]
        out = images.repeat(n, 1, 1, 1)  # the n copies in one pass (always a new tensor, unlike reshape)
        boxes, b = boxes.transpose(0, 1).reshape(n * b, 1, 4), n * b
    else:
        out = images.clone(memory_format=torch.contiguous_format)
    pixel, box_of_slot, any_box = _slot_pixels(boxes, capacity, w, fill == "channel", not every_image_boxed)
    if fill == "pixel":
        values = uniform((b, c, capacity), images.device, images.dtype)
    else:
        per_box = uniform((b, c, boxes.shape[1]), images.device, images.dtype)
        if box_of_slot is None:  # one box: its value for every slot
            values = per_box.expand(b, c, capacity)
        else:
            values = per_box.gather(2, box_of_slot.unsqueeze(1).expand(b, c, capacity))
    if value_map is not None:
        scale, shift = value_map
        values = torch.addcmul(shift.view(1, c, 1), values, scale.view(1, c, 1)).to(images.dtype)
    flat = out.view(b, c, h * w)
    if every_image_boxed:
        flat.scatter_(2, pixel.unsqueeze(1).expand(b, c, capacity), values)
        return out
    # an image without any box had all its slots write one pixel (its first box's corner, which an empty
    # box may place just outside the image): keep that pixel's value to put back
    pixel = pixel.clamp_(max=h * w - 1)
    first = pixel[:, :1].unsqueeze(1).expand(b, c, 1)
    before = flat.gather(2, first)
    flat.scatter_(2, pixel.unsqueeze(1).expand(b, c, capacity), values)
    flat.scatter_(2, first, torch.where(any_box.unsqueeze(1), flat.gather(2, first), before))
    return out


def uniform(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """U(0, 1) fill values; on CPU float32, 16-bit ones at under half the cost of torch.rand.

    On CPU the generator (Mersenne Twister) dominates, so each 64-bit draw is split into four 16-bit
    integers k, and the values are (k + 1/2) / 2^16: the midpoints of 2^16 equal cells of (0, 1), a
    grid 256 times finer than 8-bit image intensities, with mean 1/2 like U(0, 1). On GPU (and for
    other dtypes) torch.rand.
    """
    count = math.prod(shape)
    if device.type != "cpu" or dtype != torch.float32 or count < 1024:
        return torch.rand(shape, device=device, dtype=dtype)
    # random_(-2**63, None) draws all 64 bits; plain random_() leaves the sign bit (one int16 in four) at 0
    bits = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), None).view(torch.int16)
    bits = bits if count % 4 == 0 else bits[:count]
    offset, scale = constant(32768.5, device), constant(1.0 / 65536, device)
    return bits.float().add_(offset).mul_(scale).view(shape)  # int16 in [-2^15, 2^15) -> (0, 1)


def _slot_pixels(
    boxes: torch.Tensor, capacity: int, width: int, with_box_index: bool, guard_empty: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per slot [B, capacity]: the flat pixel it writes and (n = 2, if asked) its box; [B, 1] whether any box exists.

    boxes: [B, n, 4] float, n = 1 or 2. Slot k of box j covers pixel (top + k // bw, left + k % bw),
    k counted from the start of box j. Slots past the boxes' total area repeat the last slot's pixel.
    With guard_empty, an image without boxes sends every slot to one pixel (the first box's anchor),
    which the caller restores; without it, every image must have a box (and None is returned for
    the [B, 1] flags).

    Box choice and row split are float arithmetic, far cheaper on CPU than boolean masks, torch.where
    or int64 division: with u = k + 1/2, floor(u / bw) = k // bw exactly in float32 while k < 2^22
    (u / bw stays >= 1/(2 bw) away from every integer); larger budgets use float64. The per-box
    quantities all come from one matrix product, since at these sizes each op costs mostly its launch.
    """
    exact = torch.float32 if capacity * width < 2**22 else torch.float64
    batch, n = boxes.shape[:2]
    if n not in (1, 2):
        raise ValueError(f"boxes must hold 1 or 2 boxes per image ([B, n, 4]), got n = {n}")
    weights, bias = _box_terms(n, width, boxes.device, exact)
    terms = torch.addmm(bias, boxes.to(exact).reshape(batch, 4 * n), weights)  # see _box_terms
    area = terms.narrow(1, 0, n) * terms.narrow(1, n, n)  # [B, n]: rows_j * cols_j
    total = area if n == 1 else area.sum(dim=1, keepdim=True)
    # u = min(k, last used slot) + 1/2: slots past the area repeat the last pixel (with a draw of their own);
    # an image without boxes (only possible when guarded) sends them all to slot 0
    half = constant(0.5, boxes.device, exact)
    last = (total.clamp(min=1) if guard_empty else total) - half
    u = torch.minimum(half_steps(capacity, boxes.device, exact), last)
    box_of_slot = None
    if n == 1:
        slot_w, slot_origin = terms.narrow(1, 2, 1), terms.narrow(1, 3, 1)  # [B, 1]
    else:
        first_area = area.narrow(1, 0, 1)
        second = torch.sub(u, first_area - half).clamp_(0, 1)  # 1.0 in box 1 (k >= area0), else 0.0
        u = torch.addcmul(u, second, first_area, value=-1)  # counted from the start of its own box
        # box 0's (width, origin) plus second * (box 1's minus box 0's): [B, 2, cap] in two ops
        base, change = terms.narrow(1, 4, 2).unsqueeze(2), terms.narrow(1, 6, 2).unsqueeze(2)  # [B, 2, 1]
        slot_w, slot_origin = (second.unsqueeze(1) * change).add_(base).unbind(1)
        if with_box_index:
            box_of_slot = second.long()
    if guard_empty:  # the no-box slot 0 may sit in an empty box: no division by its zero width
        slot_w = slot_w.clamp(min=1)
    row = torch.div(u, slot_w).floor_()
    # top*W + left - 1/2 + u + row*(W - bw)
    pixel = torch.add(u, row, alpha=width).addcmul_(row, slot_w, value=-1).add_(slot_origin)
    pixel = pixel.int().long()  # float -> int32 -> int64 beats float -> int64
    return pixel, box_of_slot, (total > 0) if guard_empty else None


@lru_cache(maxsize=64)
def _box_terms(boxes: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [4n, m] and bias [m] taking one image's n boxes, flattened (top, bottom, left, right per box),
    to: rows_j for each box j, cols_j for each box j; then cols_0 and top_0*W + left_0 - 1/2; for n = 2
    also those two of box 1 minus those of box 0."""
    def box(j: int, top: float = 0.0, bottom: float = 0.0, left: float = 0.0, right: float = 0.0) -> list[float]:
        column = [0.0] * (4 * boxes)
        column[4 * j: 4 * j + 4] = [top, bottom, left, right]
        return column

    cols = [box(j, left=-1.0, right=1.0) for j in range(boxes)]
    origin = [box(j, top=float(width), left=1.0) for j in range(boxes)]
    columns = [box(j, top=-1.0, bottom=1.0) for j in range(boxes)] + cols + [cols[0], origin[0]]
    if boxes == 2:
        columns += [[a - b for a, b in zip(cols[1], cols[0])], [a - b for a, b in zip(origin[1], origin[0])]]
    bias = [0.0] * len(columns)
    bias[2 * boxes + 1] = -0.5
    weights = torch.tensor(columns, device=device, dtype=dtype).T.contiguous()
    return weights, torch.tensor(bias, device=device, dtype=dtype)
