"""The streamed dataset path (baselines/common/streaming.py): decode throughput.

    python benchmarks/streaming.py --workers 0 2 --images 640     # figures for benchmarks/RESULTS.md

Images/s from JPEG files (generated: smooth 400 x 300 photos-like images, about Clothing1M's
size) to `uint8 [B, 3, 256, 256]` batches and on to the 224-pixel training views of `augment=imagenet`, through
`StreamedImages` with N DataLoader workers, for each N given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random image (JPEG-compressible like a photo, unlike white noise)."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.random((1, 3, h // 16, w // 16), dtype=np.float32))
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
    return (fine.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()


def throughput(workers: list[int], images: int, batch: int) -> list[dict]:
    import torch
    from PIL import Image

    from baselines.common.augment import build_augment
    from baselines.common.streaming import ImageFiles, StreamedImages

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for i in range(images):
            Image.fromarray(_photo(rng, 300, 400)).save(Path(tmp) / f"{i}.jpg", quality=90)
            names.append(f"{i}.jpg")
        files = ImageFiles(tmp, names, 256)
        views = build_augment("imagenet", (0.5,) * 3, (0.25,) * 3)
        for n in workers:
            streamed = StreamedImages(files, "cpu", workers=n)
            order = list(torch.randperm(images).split(batch))
            streamed.plan(order[:1])  # start the workers outside the timing (persistent from then on)
            streamed[order[0]]
            start = time.perf_counter()
            streamed.plan(order)
            for chunk in order:
                out = views(streamed[chunk], train=True)
            seconds = time.perf_counter() - start
            rows.append({"workers": n, "images": images, "batch": batch, "seconds": round(seconds, 2),
                         "images_per_s": round(images / seconds, 1), "view_shape": list(out.shape[1:])})
            print(f"workers {n}: {images / seconds:.0f} images/s ({images} images, batch {batch}, "
                  f"{seconds:.1f} s) -> views {list(out.shape[1:])}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    throughput(args.workers, args.images, args.batch)


if __name__ == "__main__":
    main()
