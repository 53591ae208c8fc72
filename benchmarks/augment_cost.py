"""What each `augment=` preset costs per training batch, against torchvision applied image by image.

The per-image loop is what a PIL / torchvision DataLoader does for every sample (each image its own
`v2.AutoAugment(CIFAR10)` or `v2.RandAugment()` call; crop/flip and normalisation excluded there, so the
loop is timed at its cheapest). Ours draws per sample too but applies each (op, magnitude) group in one
torchvision call. Both run in this process on the same uint8 batch; the ratio is measured in one run.

    python benchmarks/augment_cost.py                     # CPU, one thread, B = 64 and 128
    python benchmarks/augment_cost.py --device cuda --batches 64 128 512
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baselines.common.augment import AUGMENT_PRESETS, build_augment  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
LOOPS = {"autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
         "randaugment": lambda: v2.RandAugment(num_ops=2, magnitude=10)}


def seconds(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up (first-call dispatch, lazy caches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"ms per batch of 32x32 uint8 images on {device} ({args.threads} thread(s)), {args.repeats} repeats")
    print(f"{'preset':<12} {'B':>5} {'ours':>9} {'per-image loop':>15} {'speed-up':>9}")
    for b in args.batches:
        images = torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, device=device)
        for name in AUGMENT_PRESETS:
            # a cropping preset (imagenet: 224 of 256) crops these small images to 7/8 of their side instead
            crop = {"crop_size": images.shape[-1] * 7 // 8} if AUGMENT_PRESETS[name].get("crop_size") else None
            augment = build_augment(name, MEAN, STD, crop, device=device)
            ours = seconds(lambda: augment(images, train=True), args.repeats, device)
            if name in LOOPS:
                transform = LOOPS[name]()
                loop = seconds(lambda: [transform(image) for image in images], max(1, args.repeats // 4), device)
                print(f"{name:<12} {b:>5} {ours * 1e3:>9.2f} {loop * 1e3:>15.2f} {loop / ours:>8.1f}x")
            else:
                print(f"{name:<12} {b:>5} {ours * 1e3:>9.2f} {'-':>15} {'-':>9}")


if __name__ == "__main__":
    main()
