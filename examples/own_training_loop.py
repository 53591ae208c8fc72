"""SANM around your own training step: three calls on a plain cross-entropy loop (no Hydra, no baselines).

torchvision's resnet18 with its stem adapted to small images (3x3 stride-1 first conv, no max-pool, so a
32x32 input gives a 4x4 feature map and the class activation map has room to move), trained on
scikit-learn's bundled digits (upsampled to 32x32, 3 channels) with 40% of the training labels flipped
to another class. Runs offline on CPU in under two minutes:

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

from sanm_plugin import FeatureTap, SANMAugmenter, gmm_clean_probability


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


def main(epochs: int = 4, train_size: int = 640, batch_size: int = 32, noise: float = 0.4, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = noisy_digits(train_size, noise, seed)
    model = small_image_resnet18(10)
    tap = FeatureTap(model)  # forward -> (logits, [B, 512, 4, 4] feature map)
    sanm = SANMAugmenter(num_classes=10, feature_channels=512, image_shape=(3, 32, 32), feature_size=(4, 4))
    optimizer = torch.optim.Adam([*model.parameters(), *sanm.parameters()], lr=1e-3, weight_decay=5e-4)
    clean_prob = torch.ones(len(x_train))  # label quality G; refitted each epoch after the first
    for epoch in range(epochs):
        start, loss_sum, hits = time.time(), torch.zeros(()), torch.zeros(())
        if epoch > 0:  # per-sample losses of one evaluation pass -> two-component GMM (DivideMix's settings)
            model.eval()
            with torch.no_grad():
                losses = torch.cat([F.cross_entropy(model(x), y, reduction="none")
                                    for x, y in zip(x_train.split(256), y_train.split(256))])
            clean_prob = gmm_clean_probability(losses)
        model.train()
        peaks = set()
        for idx in torch.randperm(len(x_train)).split(batch_size):
            x, y = x_train[idx], y_train[idx]
            logits, feats = tap(x)
            loss = F.cross_entropy(logits, y)
            if epoch > 0:
                mb = sanm.modulate_batch(x, feats.detach(), logits.detach(), clean_prob[idx],
                                         classifier_weight=tap.classifier_weight.detach())  # SANM[1]
                y_r = sanm.regularize_labels(y, mb)  # SANM[2]
                logits_m, feats_m = tap(mb.images)
                loss = loss + torch.sum(-y_r * F.log_softmax(logits_m, dim=1), dim=1).mean()
                loss = loss + sanm.reconstruction_loss(feats_m, x)  # SANM[3]
                peaks.update(map(tuple, mb.peak.tolist()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)  # summed as tensors: one host sync per epoch, not per step
            hits += (logits.argmax(1) == y).sum()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss_sum.item() / len(x_train):.3f}, train accuracy "
              f"{hits.item() / len(x_train):.1%} (against the noisy labels), {time.time() - start:.1f} s", flush=True)
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item() * 100
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
    args = parser.parse_args()
    main(args.epochs, args.train_size, args.batch_size, args.noise, args.seed)
