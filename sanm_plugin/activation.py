"""Activation maps and their extreme pixels (AMG, paper Eq. 1-2).

The class activation map of the predicted class is `A[h, w] = sum_k W[c, k] * F[k, h, w]` (Eq. 1, no
ReLU); the official code uses the class-agnostic energy `sum_k F[k]^2` instead. Either map is upsampled
bilinearly (align_corners=False) to the image size, and its arg-max / arg-min pixels (first in row-major
order on ties) are where the peak and trough boxes go.

Bilinear upsampling is separable and linear, so it is done as two small matrix products with
interpolation matrices built once per size pair; this is several times faster on CPU than
`F.interpolate` for the small maps SANM sees, and gives the same weights. The extremes need even less:
they lie on a small grid of candidate pixels, the only ones `peak_and_trough` interpolates.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


def class_activation_map(
    feature_maps: torch.Tensor, logits: torch.Tensor, classifier_weight: torch.Tensor
) -> torch.Tensor:
    """CAM of each sample's predicted class (Eq. 1).

    Args:
        feature_maps: [B, K, h, w] last convolutional features.
        logits: [B, num_classes]; the arg-max picks the class.
        classifier_weight: [num_classes, K] weight of the linear classifier after global pooling.

    Returns:
        [B, h, w] float32 map.
    """
    predicted = logits.argmax(dim=1)
    weights = classifier_weight.float().index_select(0, predicted)  # [B, K]
    b, k, h, w = feature_maps.shape
    flat = feature_maps.float().reshape(b, k, h * w)
    return torch.bmm(weights.unsqueeze(1), flat).reshape(b, h, w)


def energy_map(feature_maps: torch.Tensor) -> torch.Tensor:
    """Sum of squared channels (official code); its L2 normalisation there does not move the extremes."""
    b, k, h, w = feature_maps.shape
    flat = feature_maps.float().reshape(b, k, h * w)
    return torch.linalg.vecdot(flat, flat, dim=1).reshape(b, h, w)  # no [B, K, h*w] temporary


@lru_cache(maxsize=32)
def _interpolation_matrix(src: int, dst: int, device: torch.device) -> torch.Tensor:
    """[dst, src] weights of 1-D linear interpolation with align_corners=False (F.interpolate's rule)."""
    eye = torch.eye(src, dtype=torch.float32, device=device).unsqueeze(0)  # [1, src, src]: src "channels"
    return F.interpolate(eye, size=dst, mode="linear", align_corners=False)[0].T.contiguous()


# Above this many weights the 2-D interpolation matrix is not worth caching; two products instead.
_KRON_LIMIT = 1 << 22


@lru_cache(maxsize=16)
def _interpolation_matrix_2d(src: tuple[int, int], dst: tuple[int, int], device: torch.device) -> torch.Tensor:
    """[h*w, H*W] weights, so that one matrix product upsamples a whole batch of flattened maps."""
    rows = _interpolation_matrix(src[0], dst[0], device)  # [H, h]
    cols = _interpolation_matrix(src[1], dst[1], device)  # [W, w]
    weights = rows[:, None, :, None] * cols[None, :, None, :]  # [H, W, h, w]
    return weights.reshape(dst[0] * dst[1], src[0] * src[1]).T.contiguous()


def upsample_bilinear(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, h, w] -> [B, H, W], equal to F.interpolate(..., mode='bilinear', align_corners=False)."""
    h, w = maps.shape[-2:]
    if h * w * size[0] * size[1] <= _KRON_LIMIT:
        weights = _interpolation_matrix_2d((h, w), tuple(size), maps.device)
        return torch.mm(maps.reshape(-1, h * w), weights).reshape(-1, *size)
    rows = _interpolation_matrix(h, size[0], maps.device)  # [H, h]
    cols = _interpolation_matrix(w, size[1], maps.device)  # [W, w]
    return torch.matmul(torch.matmul(rows, maps), cols.T)


def extreme_candidates(src: int, dst: int) -> tuple[int, ...]:
    """Output indices where 1-D linear upsampling src -> dst (align_corners=False) can have its extremes.

    The upsampled line is piecewise linear in the output index, with breakpoints where an output pixel
    centre meets an input sample, p_j = (j + 1/2) dst / src - 1/2, and constant before p_0 and after
    p_last (clamped borders). On every stretch between the grid points around consecutive breakpoints it
    is linear, so its largest and smallest values, and the first index holding them, lie in {0} and the
    two grid neighbours of each p_j. Downsampling has no such structure: every index is returned.
    """
    if dst <= src:
        return tuple(range(dst))
    points = {0}
    for j in range(src):
        numerator, denominator = (2 * j + 1) * dst - src, 2 * src  # p_j as an exact fraction
        points.update({numerator // denominator, -(-numerator // denominator)})
    return tuple(sorted(i for i in points if 0 <= i < dst))


@lru_cache(maxsize=16)
def _candidate_matrix(src: tuple[int, int], dst: tuple[int, int], device: torch.device):
    """([h*w, 2*R*C] interpolation weights of the candidate pixels and their negation, [R*C, 2] (row, col))."""
    rows, cols = extreme_candidates(src[0], dst[0]), extreme_candidates(src[1], dst[1])
    row_weights = _interpolation_matrix(src[0], dst[0], device)[list(rows)]  # [R, h]
    col_weights = _interpolation_matrix(src[1], dst[1], device)[list(cols)]  # [C, w]
    weights = row_weights[:, None, :, None] * col_weights[None, :, None, :]  # [R, C, h, w]
    weights = weights.reshape(len(rows) * len(cols), src[0] * src[1]).T.contiguous()
    # the arg-min is the arg-max of the negated values: one product gives both halves
    weights = torch.cat((weights, -weights), dim=1)
    pixels = torch.tensor([(r, c) for r in rows for c in cols], dtype=torch.long, device=device)  # row-major
    return weights, pixels


def extreme_pixels(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, 2, 2] int64: (row, col) of each upsampled map's arg-max (index 0) and arg-min (index 1) pixel.

    Bilinear upsampling is the tensor product of two piecewise-linear 1-D interpolations, so the first
    (row-major) extreme pixel lies on the grid of candidate rows x candidate columns
    (`extreme_candidates`): the first row holding the maximum is a candidate, since between candidates
    the row-wise maximum is convex and can only peak inside a stretch on which it is constant, and the
    same holds for the columns within that row (and for the minimum). Only those (2h+1) x (2w+1)
    pixels are interpolated, instead of all H x W (81 instead of 1024 for 4x4 -> 32x32).
    """
    h, w = maps.shape[-2:]
    weights, pixels = _candidate_matrix((h, w), tuple(size), maps.device)
    batch = maps.shape[0]
    values = torch.mm(maps.reshape(batch, h * w), weights).view(batch, 2, -1)  # [B, 2, R*C]: map, -map
    return pixels[values.argmax(dim=2)]  # argmax returns the first index on ties


def quantised_extreme_pixels(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Like `extreme_pixels`, but as the official code reads them: the whole upsampled map rescaled to
    0..255 per sample and floored to integers, then the first (row-major) arg-max and arg-min. Every pixel
    within 1/255 of the range above the minimum ties with it, so the trough moves towards the top-left; only
    the maximum itself reaches 255, so the peak stays the exact arg-max."""
    upsampled = upsample_bilinear(maps.float(), size).flatten(1)  # [B, H*W]
    low = upsampled.amin(dim=1, keepdim=True)
    span = upsampled.amax(dim=1, keepdim=True) - low
    levels = torch.floor(255 * (upsampled - low) / (span + 1e-12))
    flat = torch.stack((levels.argmax(dim=1), levels.argmin(dim=1)), dim=1)  # first index on ties
    return torch.stack((flat // size[1], flat % size[1]), dim=-1)


def peak_and_trough(maps: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns [B, 2] of each upsampled map's (arg-max, arg-min) pixel, int64 (extreme_pixels)."""
    rows, cols = extreme_pixels(maps, size).unbind(dim=-1)
    return rows, cols
