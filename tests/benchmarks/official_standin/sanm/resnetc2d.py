"""Stand-in for the official SANM resnetc2d.py (tests/benchmarks/official_standin/README.md): C2D's standard
ResNet-18 encoder (docs/baselines.md 2.3) under `encoder.`, a classifier `fc`, the linear decoder `recon_module`
(docs/baselines.md 9.4), and the forward returning softmax probabilities (docs/baselines.md 9.6)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes = stride != 1 or in_planes != planes
        self.shortcut = (nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
                         if changes else nn.Sequential())

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, planes = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(planes, width, stride), BasicBlock(width, width, 1)))
            planes = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        featmap = self.layer4(self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x)))))))
        return featmap.mean(dim=(2, 3)), featmap


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()  # 4x4 -> 10x10 -> 15x15 -> 32x32
        self.layer1 = nn.ConvTranspose2d(512, 256, 4, 2)
        self.layer2 = nn.ConvTranspose2d(256, 128, 6, 1)
        self.layer3 = nn.ConvTranspose2d(128, 3, 4, 2)

    def forward(self, featmap):
        return self.layer3(self.layer2(self.layer1(featmap)))


class SupCEResNet(nn.Module):
    def __init__(self, name="resnet18", num_classes=10):
        super().__init__()
        self.encoder, self.fc, self.recon_module = Encoder(), nn.Linear(512, num_classes), Decoder()

    def forward(self, x, return_map=False, recon=False):
        feat, featmap = self.encoder(x)
        if recon:
            return self.recon_module(featmap)
        return featmap, feat, F.softmax(self.fc(feat), dim=-1)
