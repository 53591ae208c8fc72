"""Microseconds per sample of SANM's modulate_batch + regularize_labels, against a per-sample loop.

The reference is our own straightforward loop over samples, written the way the official code does it
(yuanpengtu/SANM `Train_cifar.py`: one activation map, one resize, one box and one label at a time).
Both run in the same process on the same inputs, so the ratio is meaningful on a noisy machine.

    python benchmarks/masking.py                  # one CPU thread, B = 64, 128, 256, both presets
    python benchmarks/masking.py --device cuda    # and on a GPU
"""

from __future__ import annotations

import argparse
import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from sanm_plugin import SANMAugmenter, SANMConfig
from sanm_plugin import activation, masking

CLASSES, CHANNELS, FEATURE, IMAGE = 10, 512, (4, 4), (3, 32, 32)  # PreAct ResNet-18 on CIFAR


def reference_loop(images, feats, logits, quality, weight, labels, config: SANMConfig):
    """One sample at a time, following the official code's steps (Train_cifar.py: attention_erase_map).

    The map is computed batched; then, per sample, it is moved to NumPy, resized, rescaled to uint8
    and searched for its extremes; then, per sample again, the ratio is drawn, the target's arg-max
    is found with a boolean flag mask, and each box is sized, shifted and filled. Resizing uses
    F.interpolate instead of OpenCV, which is not a dependency here.
    """
    height, width = images.shape[2:]
    if config.activation == "cam":
        maps = torch.bmm(weight[logits.argmax(1)].unsqueeze(1), feats.flatten(2)).view(len(images), *feats.shape[2:])
    else:
        maps = (feats**2).sum(1)
    peaks, troughs = [], []
    for i in range(len(images)):
        amap = maps[i].detach().cpu().numpy()
        amap = F.interpolate(torch.from_numpy(amap)[None, None], size=(height, width), mode="bilinear")[0, 0].numpy()
        amap = np.uint8(np.floor(255 * (amap - amap.min()) / (amap.max() - amap.min() + 1e-12)))
        peaks.append(divmod(int(np.argmax(amap)), width))
        troughs.append(divmod(int(np.argmin(amap)), width))
    peaks, troughs = torch.tensor(peaks, device=images.device), torch.tensor(troughs, device=images.device)
    out, out_trough = images.clone(), images.clone()
    targets = torch.zeros(len(images), CLASSES, device=images.device).scatter_(1, labels.view(-1, 1), 1.0)
    for i in range(len(images)):
        g = quality[i]  # a 0-d tensor, as upstream's gmmweight[i]: the ratio and NLR stay tensor arithmetic
        if config.ratio == "paper":
            r, r_t, area = config.mu * (1 - g), config.mu * g, height * width
        else:
            r = random.uniform(0.02, 0.07) + 0.03 * (1 - g)
            r_t, area = r, 0.5 * height * width
        flag = torch.zeros(CLASSES, dtype=torch.bool)
        flag[torch.argmax(targets[i])] = True
        spread = r / CLASSES if config.label_spread == "all" else r / (CLASSES - 1)
        targets[i][flag] -= r - (spread if config.label_spread == "all" else 0.0)
        targets[i][~flag] += spread
        for image, anchor, ratio in ((out, peaks[i], r), (out_trough if config.trough == "separate_image" else out,
                                                        troughs[i], r_t)):
            d = random.uniform(config.delta, 1 / config.delta)
            bh = max(1, int(round(math.sqrt(area * ratio * d))))  # math.sqrt reads the 0-d tensor
            bw = max(1, int(round(math.sqrt(area * ratio / d))))
            row, col = anchor[0], anchor[1]  # 0-d tensors, compared and sliced as tensors (as upstream)
            if config.box == "centered":
                row, col = (row - bh // 2).clamp(min=0), (col - bw // 2).clamp(min=0)
                bottom, right = (anchor[0] - bh // 2 + bh).clamp(max=height), (anchor[1] - bw // 2 + bw).clamp(max=width)
            else:
                if row + bh > height:
                    row = height - bh
                if col + bw > width:
                    col = width - bw
                bottom, right = row + bh, col + bw
            top, left = row, col
            if config.fill == "pixel":
                image[i, :, top:bottom, left:right] = torch.rand(images.shape[1], int(bottom - top), int(right - left))
            else:
                for channel in range(images.shape[1]):
                    image[i, channel, top:bottom, left:right] = random.uniform(0, 1)
    return out, out_trough, targets


def inputs(batch: int, device: str):
    gen = torch.Generator().manual_seed(0)
    tensors = (
        torch.randn(batch, *IMAGE, generator=gen),
        torch.randn(batch, CHANNELS, *FEATURE, generator=gen),
        torch.randn(batch, CLASSES, generator=gen),
        torch.rand(batch, generator=gen),
        torch.randn(CLASSES, CHANNELS, generator=gen),
        torch.randint(0, CLASSES, (batch,), generator=gen),
    )
    return tuple(t.to(device) for t in tensors)


def per_sample_us(fn, batch: int, device: str, min_seconds: float = 0.5) -> float:
    """Best-of-5 mean time per call, divided by the batch size."""
    return interleaved_us([fn], batch, device, min_seconds)[0]


def interleaved_us(fns, batch: int, device: str, min_seconds: float = 0.5, rounds: int = 5) -> list[float]:
    """Best mean time per call of each function, divided by the batch size, timed in alternating rounds.

    Each round times every function once in turn, so a burst of load from elsewhere on a busy machine
    falls on all of them alike, and the best round of each is kept.
    """
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(fn, calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        return time.perf_counter() - start

    counts = []
    for fn in fns:  # warm up, then double the calls until one window lasts min_seconds / rounds
        fn()
        sync()
        calls = 1
        while timed(fn, calls) <= min_seconds / rounds:
            calls *= 2
        counts.append(calls)
    best = [math.inf] * len(fns)
    for _ in range(rounds):
        for i, (fn, calls) in enumerate(zip(fns, counts)):
            best[i] = min(best[i], timed(fn, calls) / calls)
    return [value / batch * 1e6 for value in best]


def breakdown(sanm: SANMAugmenter, tensors, batch: int, device: str, seconds: float = 0.2) -> str:
    """Where the batched time goes, part by part (the same calls modulate_batch makes)."""
    images, feats, logits, quality, weight, labels = tensors
    cfg, (_, h, w) = sanm.config, IMAGE

    def activation_map():
        if cfg.activation == "cam":
            return activation.class_activation_map(feats, logits, weight)
        return activation.energy_map(feats)

    maps = activation_map()
    anchors = activation.extreme_pixels(maps, (h, w))
    boxes = masking.make_boxes(anchors, masking.box_ratios(quality, cfg), cfg, h, w)
    fill_boxes, capacity, separate = masking.fill_plan(boxes, cfg, h, w)
    copies = 2 if separate else 1
    slot_boxes = fill_boxes.transpose(0, 1).reshape(-1, 1, 4) if separate else fill_boxes
    mb = sanm.modulate_batch(images, feats, logits, quality, weight)
    parts = {
        "map": activation_map,
        "peak/trough": lambda: activation.extreme_pixels(maps, (h, w)),
        "boxes": lambda: masking.make_boxes(anchors, masking.box_ratios(quality, cfg), cfg, h, w),
        "fill": lambda: masking.fill_boxes(images, fill_boxes, cfg.fill, capacity, separate,
                                           masking.every_image_boxed(cfg)),
        "(fill: slots": lambda: masking._slot_pixels(slot_boxes, capacity, w, cfg.fill == "channel", False),
        "draws)": lambda: masking.uniform((copies * batch, IMAGE[0], capacity if cfg.fill == "pixel" else 1),
                                          images.device, images.dtype),
        "nlr": lambda: sanm.regularize_labels(labels, mb),
    }
    return ", ".join(f"{name} {per_sample_us(fn, batch, device, seconds):.2f}" for name, fn in parts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="timing per function and batch size (the parts get a fifth); shorter is noisier")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} thread(s); "
          f"features [B, {CHANNELS}, {FEATURE[0]}, {FEATURE[1]}], images [B, {', '.join(map(str, IMAGE))}]")
    print("ours: the hooks as the library's training loops run them (validate=False: no value checks, no host sync);")
    print("checked: the same with SANMConfig's default validate=True (value checks, one host sync per hook on GPUs)")
    print(f"{'preset':9s} {'B':>4s} {'ours us/sample':>15s} {'checked':>8s} {'loop us/sample':>15s} {'speed-up':>9s} "
          f"{'checked':>8s}")
    for name in ("paper", "official"):
        preset = getattr(SANMConfig, name)
        sanm = SANMAugmenter(CLASSES, CHANNELS, IMAGE, preset(validate=False), FEATURE).to(args.device)
        checked = SANMAugmenter(CLASSES, CHANNELS, IMAGE, preset(validate=True), FEATURE).to(args.device)
        for batch in args.batches:
            tensors = inputs(batch, args.device)
            images, feats, logits, quality, weight, labels = tensors

            def hooks(aug: SANMAugmenter):
                return lambda: aug.regularize_labels(labels, aug.modulate_batch(images, feats, logits, quality, weight))

            loop = lambda: reference_loop(*tensors, preset())  # noqa: E731
            fast, safe, slow = interleaved_us([hooks(sanm), hooks(checked), loop], batch, args.device, args.seconds,
                                              rounds=7)
            print(f"{name:9s} {batch:4d} {fast:15.2f} {safe:8.2f} {slow:15.1f} {slow / fast:8.1f}x {slow / safe:7.1f}x")
            if batch == args.batches[-1]:
                print(f"          parts at B={batch} (us/sample): {breakdown(sanm, tensors, batch, args.device, args.seconds / 5)}")


if __name__ == "__main__":
    main()
