"""Networks the baselines train: DivideMix's PreAct ResNet-18, the standard ResNet-18 of C2D's SimCLR encoders
and Co-teaching's 9-layer CNN.

All are rebuilt from docs/baselines.md section 2 (`DivideMix: PreResNet.py`, C2D's CIFAR ResNet-18,
`Co-teaching: model.py`) and follow timm's model contract (`forward_features`, `forward_head`,
`get_classifier`, `num_features`), so SANM's CAM reads the feature map and the classifier weight without
hooks (docs/method.md 2.5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "CNN9", "MODELS", "PreActBlock", "PreActResNet18", "ResNet18", "build_model"]


class _TimmContract(nn.Module):
    """Shared head: global average pool, flatten, `self.linear`.

    Adaptive pooling equals upstream's fixed 4x4 (PreAct) or full-size (CNN9) pool at 32x32 and
    still works for other image sizes (image_folder data).
    """

    num_features: int
    linear: nn.Linear
    # model.softmax_output: the official SANM network's quirk, reproduced for parity only (docs/baselines.md 9.6): the
    # head returns softmax probabilities, which every loss then takes for logits
    softmax_output: bool = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map `[B, K, h, w]` -> logits `[B, C]` (probabilities under `softmax_output`), or the pooled
        `[B, K]` if `pre_logits`."""
        pooled = F.adaptive_avg_pool2d(feats, 1).flatten(1)
        if pre_logits:
            return pooled
        logits = self.linear(pooled)
        return torch.softmax(logits, dim=-1) if self.softmax_output else logits

    def get_classifier(self) -> nn.Linear:
        return self.linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class PreActBlock(nn.Module):
    """DivideMix's pre-activation basic block.

    Unlike He et al. (2016), the identity shortcut carries the BN-ReLU'd input `a`, not the raw
    `x`; docs/baselines.md section 2 keeps this quirk so results stay comparable with DivideMix, C2D,
    ELR+ and SANM.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            # In a Sequential so the state_dict key (`shortcut.0.weight`) matches upstream's.
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + self.shortcut(a)


def _stage(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1))


class PreActResNet18(_TimmContract):
    """PreAct ResNet-18 exactly as DivideMix defines it (about 11.2M parameters at width 64).

    Quirks kept from upstream: the stem is conv THEN BN + ReLU, and there is no BN/ReLU after
    `layer4`, so the feature map SANM sees is the raw sum of the last block. Module names match
    upstream's, so its checkpoints load.

    Args:
        num_classes: Output classes.
        width: Channels of the first stage; stages use `width * (1, 2, 4, 8)`. Small widths keep
            tests fast.
        in_channels: Image channels.
    """

    def __init__(self, num_classes: int, width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = _stage(width, width, 1)
        self.layer2 = _stage(width, 2 * width, 2)
        self.layer3 = _stage(2 * width, 4 * width, 2)
        self.layer4 = _stage(4 * width, 8 * width, 2)
        self.num_features = 8 * width
        self.linear = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, C, H, W]` -> `[B, 8 * width, H / 8, W / 8]` (4x4 for CIFAR)."""
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class BasicBlock(nn.Module):
    """The post-activation basic block of He et al. (2016): conv-BN-ReLU-conv-BN, plus the shortcut (identity, or
    a strided 1x1 convolution with BN when the shape changes), then ReLU. Module names are C2D's encoder's."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(_TimmContract):
    """The standard ResNet-18 with a CIFAR stem (3x3 convolution, stride 1, no max-pool): the network of C2D's
    SimCLR checkpoints, which the official SANM script starts both networks from (docs/baselines.md 2.3).

    Its convolutional modules are named as C2D's encoder's (`conv1`, `bn1`, `layer1.0.conv1`, ...,
    `layer2.0.shortcut.0`), so such a checkpoint loads once its `module.encoder.` prefix is dropped
    (baselines/common/encoders.py). Convolutions start from Kaiming-normal weights (fan-out), BN from (1, 0).
    The feature map SANM sees is the last block's output after its ReLU, 8w x 4 x 4 on 32x32 images.

    Args:
        num_classes: Output classes.
        width: Channels of the first stage (64 = C2D's); stages use `width * (1, 2, 4, 8)`.
        in_channels: Image channels.
    """

    def __init__(self, num_classes: int, width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, planes = [], width
        for k, stride in enumerate((1, 2, 2, 2)):
            out = width * 2 ** k
            stages.append(nn.Sequential(BasicBlock(planes, out, stride), BasicBlock(out, out, 1)))
            planes = out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = 8 * width
        self.linear = nn.Linear(self.num_features, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, C, H, W]` -> `[B, 8 * width, H / 8, W / 8]` (4x4 for CIFAR)."""
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _conv_bn(in_channels: int, out_channels: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, 1, padding),  # upstream convs keep their bias
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.01),
    )


class CNN9(_TimmContract):
    """Co-teaching's 9-layer CNN (`Co-teaching: model.py`).

    Upstream calls `F.dropout2d` without `training=`, which on current PyTorch is active in eval
    too; docs/baselines.md section 2 recommends `nn.Dropout2d`, active only in training, as here.

    Args:
        num_classes: Output classes.
        in_channels: Image channels.
        dropout: Channel dropout after each max-pool (0.25 upstream).
        width: Channels of the first three convs (128 upstream); the others keep upstream's ratios.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.25, width: int = 128) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"cnn9 width must be >= 1, got {width}")
        # upstream's channels 128/256/512/256/128 at width 128; smaller widths scale them all (CPU runs)
        a, b, c = width, 2 * width, 4 * width
        # Sizes at 32x32: 32 -> pool 16 -> pool 8 -> c7 6 -> c8 4 -> c9 2 (unpadded 3x3 convs).
        self.features = nn.Sequential(
            _conv_bn(in_channels, a, 1),
            _conv_bn(a, a, 1),
            _conv_bn(a, a, 1),
            nn.MaxPool2d(2),
            nn.Dropout2d(dropout),
            _conv_bn(a, b, 1),
            _conv_bn(b, b, 1),
            _conv_bn(b, b, 1),
            nn.MaxPool2d(2),
            nn.Dropout2d(dropout),
            _conv_bn(b, c, 0),
            _conv_bn(c, b, 0),
            _conv_bn(b, a, 0),
        )
        self.num_features = a
        self.linear = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, C, H, W]` -> `[B, 128, H / 4 - 6, W / 4 - 6]` (2x2 for CIFAR)."""
        return self.features(x)


MODELS: dict[str, type[_TimmContract]] = {"preact_resnet18": PreActResNet18, "resnet18": ResNet18, "cnn9": CNN9}


LIBRARY_MODELS = ("torchvision", "timm")  # any architecture of these libraries, by model.arch (backbones.py)


def build_model(name: str, num_classes: int, weights: str | None = None, softmax_output: bool = False,
                **kwargs: Any) -> nn.Module:
    """Build a model by its config name (`model.name` in conf/model/*.yaml): ours, or a torchvision / timm
    architecture (`arch=`); `weights` is a state dict file to start from; `softmax_output` reproduces the official
    SANM network's quirk (our models only: the forward returns probabilities, docs/baselines.md 9.6)."""
    from .backbones import build_timm, build_torchvision, load_weights

    if softmax_output and name not in MODELS:
        raise ValueError(f"model.softmax_output=true (the official SANM network's quirk) is built into this library's "
                         f"models ({', '.join(sorted(MODELS))}), not model={name}; drop it or use one of them")
    if name == "torchvision":
        return build_torchvision(kwargs.get("arch"), num_classes, weights)
    if name == "timm":
        return build_timm(kwargs.get("arch"), num_classes, weights)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted([*MODELS, *LIBRARY_MODELS]))}")
    model = MODELS[name](num_classes, **kwargs)
    model.softmax_output = softmax_output
    return load_weights(model, weights, "linear") if weights else model
