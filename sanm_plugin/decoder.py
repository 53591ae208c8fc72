"""Self-supervised masking reconstruction decoder (SMR, paper Eq. 9-10).

The decoder maps the feature map of a masked image back to the image, so the encoder must keep
enough information about the masked region to infer it from context. The official decoder is three
linear transposed convolutions sized for 4x4 -> 32x32 and 7x7 -> 224x224 only; ours learns a number
of 2x upsampling stages (from the feature-map size when given) and then resizes to exactly the image
size, so it fits any backbone and image shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import SANMConfig

# Without a known feature size, assume the 8x total stride of CIFAR ResNets (32x32 -> 4x4).
DEFAULT_STAGES = 3
MAX_STAGES = 6
MIN_CHANNELS = 16
# Wider feature maps (ImageNet backbones: 2048 channels) are first reduced by a 1x1 convolution, or the first
# transposed convolution alone would cost more than the backbone's forward.
MAX_INPUT_CHANNELS, REDUCED_CHANNELS = 512, 256


def upsampling_stages(feature_size: tuple[int, int] | None, image_size: tuple[int, int]) -> int:
    """How many 2x stages bring the feature map closest to the image size (log2 of the stride)."""
    if feature_size is None:
        return DEFAULT_STAGES
    stride = min(image_size[0] / feature_size[0], image_size[1] / feature_size[1])
    return int(min(MAX_STAGES, max(0, round(math.log2(max(stride, 1.0))))))


DECODER_KINDS = ("bn", "linear")


class ReconstructionDecoder(nn.Module):
    """[B, K, h, w] features -> [B, C, H, W] image, for any h, w.

    kind='linear' (SANMConfig's default): 4x4 stride-2 transposed convolutions (exact 2x upsampling), halving the
    channels, with biases and nothing between them, the last one producing the image channels (a linear map,
    like the official decoder). kind='bn': the same stages each followed by BN and ReLU, and a 3x3
    convolution maps to the image channels. Either way a bilinear resize fixes any remaining size mismatch.
    """

    def __init__(
        self, feature_channels: int, image_shape: tuple[int, int, int], feature_size: tuple[int, int] | None = None,
        kind: str = SANMConfig.decoder,  # one default, the config's
    ) -> None:
        super().__init__()
        if kind not in DECODER_KINDS:
            raise ValueError(f"decoder kind must be one of {DECODER_KINDS}, got {kind!r}")
        self.image_shape = tuple(int(v) for v in image_shape)
        layers: list[nn.Module] = []
        channels = feature_channels
        if channels > MAX_INPUT_CHANNELS:
            layers.append(nn.Conv2d(channels, REDUCED_CHANNELS, kernel_size=1, bias=kind == "linear"))
            if kind == "bn":
                layers += [nn.BatchNorm2d(REDUCED_CHANNELS), nn.ReLU(inplace=True)]
            channels = REDUCED_CHANNELS
        stages = upsampling_stages(feature_size, self.image_shape[1:])
        for stage in range(stages):
            last = kind == "linear" and stage == stages - 1
            out = self.image_shape[0] if last else max(MIN_CHANNELS, channels // 2)
            layers.append(nn.ConvTranspose2d(channels, out, kernel_size=4, stride=2, padding=1, bias=kind == "linear"))
            if kind == "bn":
                layers += [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        if kind == "bn" or stages == 0:
            layers.append(nn.Conv2d(channels, self.image_shape[0], kernel_size=3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        image = self.layers(feature_maps)
        if tuple(image.shape[-2:]) != self.image_shape[1:]:
            image = F.interpolate(image, size=self.image_shape[1:], mode="bilinear", align_corners=False)
        return image
