"""SANM around your own training step: a plain cross-entropy loop (no Hydra, no baselines), README's ten lines.

torchvision's resnet18 with its stem adapted to small images (3x3 stride-1 first conv, no max-pool, so a
32x32 input gives a 4x4 feature map and the class activation map has room to move), trained on
scikit-learn's bundled digits (upsampled to 32x32, 3 channels) with 40% of the training labels flipped
to another class. The lines marked SANM are all it adds; one warm-up epoch estimates the label quality G
before masking starts. Prints one line per epoch. Runs offline on CPU in under two minutes:

    python examples/own_training_loop.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from sanm_plugin import IndexedDataset, LabelQuality, SANMAugmenter


def noisy_digits(train_size: int, noise: float, seed: int):
    """Digits as normalised [N, 3, 32, 32] tensors; a `noise` share of training labels moved to another class."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    images = (images - images.mean()) / images.std()
    train, test = train_test_split(np.arange(len(images)), test_size=0.2, stratify=digits.target, random_state=seed)
    train = train[:train_size]
    rng = np.random.default_rng(seed)
    labels = digits.target[train].copy()
    flip = rng.choice(len(train), int(noise * len(train)), replace=False)
    labels[flip] = (labels[flip] + rng.integers(1, 10, len(flip))) % 10  # never the true class
    return (images[train].contiguous(), torch.tensor(labels), images[test].contiguous(), torch.tensor(digits.target[test]))


def small_image_resnet18(num_classes: int) -> torch.nn.Module:
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def main(epochs: int = 4, train_size: int = 640, batch_size: int = 32, noise: float = 0.4, seed: int = 0,
         test_size: int | None = None) -> dict:
    """Train and print each epoch; `test_size` evaluates on the first that many of the 360 test digits (all: None)."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = noisy_digits(train_size, noise, seed)
    x_test, y_test = x_test[:test_size], y_test[:test_size]
    train_set = TensorDataset(x_train, y_train)
    model = small_image_resnet18(10)
    loader = DataLoader(IndexedDataset(train_set), batch_size=batch_size, shuffle=True)  # SANM: + each sample's index
    sanm = SANMAugmenter.for_model(model, image_shape=(3, 32, 32))  # SANM: finds the [512, 4, 4] map by a dry forward
    quality = LabelQuality(len(train_set))  # SANM: label quality G, one per training sample
    optimizer = torch.optim.Adam([*model.parameters(), *sanm.parameters()], lr=1e-3, weight_decay=5e-4)  # SANM: decoder
    for epoch in range(epochs):
        start, total, peaks = time.perf_counter(), 0.0, set()
        model.train()
        for x, y, idx in loader:
            logits, feats = sanm.tap(x)  # SANM: the forward, with the feature map
            loss = F.cross_entropy(logits, y)
            quality.record(idx, F.cross_entropy(logits.detach(), y, reduction="none"))  # SANM: losses for G
            if epoch >= 1:  # SANM: one warm-up epoch
                terms = sanm.loss(x, y, quality[idx], logits, feats)  # SANM: masked view + reconstruction
                loss = loss + terms.total
                peaks.update(map(tuple, terms.batch.peak.tolist()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        quality.refresh()  # SANM: G from this epoch's losses (two-component GMM, DivideMix's settings)
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item() * 100
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(train_set):.3f}, test accuracy {accuracy:.1f}%, "
              f"{time.perf_counter() - start:.1f} s")
    print(f"test accuracy {accuracy:.1f}% after {epochs} epochs on {len(x_train)} digits with {noise:.0%} wrong labels; "
          f"the last epoch's masks used {len(peaks)} distinct peak positions")
    return {"test_acc": accuracy, "distinct_peaks": len(peaks)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--noise", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=None, help="the first N test digits (default: all 360)")
    args = parser.parse_args()
    main(args.epochs, args.train_size, args.batch_size, args.noise, args.seed, args.test_size)
