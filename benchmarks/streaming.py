"""The streamed dataset path (baselines/common/streaming.py): decode throughput and the memory of a real-size list.

    python benchmarks/streaming.py                      # both parts, figures for benchmarks/RESULTS.md
    python benchmarks/streaming.py --part throughput --workers 0 2 --images 640
    python benchmarks/streaming.py --part list --entries 1000000

`throughput`: images/s from JPEG files (generated: smooth 400 x 300 photos-like images, about Clothing1M's
size) to `uint8 [B, 3, 256, 256]` batches and on to the 224-pixel training views of `augment=imagenet`, through
`StreamedImages` with N DataLoader workers, for each N given.

`list`: peak RSS of a process that loads a Clothing1M layout whose list files hold `--entries` lines (only a
handful of real image files; the lists are what costs memory), builds the training split's StreamedImages and
plans one epoch of DivideMix's 32k pool, against the same process's RSS before loading.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
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


def _write_clothing1m_lists(root: Path, entries: int) -> None:
    """A Clothing1M layout whose noisy kv and train key list hold `entries` lines; the clean lists are short."""
    from PIL import Image

    rng = np.random.default_rng(0)
    real = [f"images/{k % 10}/{k:02d}/{k:08d}.jpg" for k in range(28)]
    for k, rel in enumerate(real):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(rng, 64, 48)).save(root / rel)
    with open(root / "noisy_label_kv.txt", "w") as kv, open(root / "noisy_train_key_list.txt", "w") as keys:
        for i in range(entries):
            rel = real[i] if i < 14 else f"images/{i % 10}/{(i // 10) % 100:02d}/{i:08d}.jpg"
            kv.write(f"{rel} {i % 14}\n")
            keys.write(f"{rel}\n")
    with open(root / "clean_label_kv.txt", "w") as kv:
        for k, rel in enumerate(real[14:]):
            kv.write(f"{rel} {k % 14}\n")
    (root / "clean_val_key_list.txt").write_text("".join(f"{rel}\n" for rel in real[14:21]))
    (root / "clean_test_key_list.txt").write_text("".join(f"{rel}\n" for rel in real[21:]))


def _list_child(root: str) -> None:
    """Run in a fresh process: load, build the streamed split and plan an epoch; print RSS figures as JSON."""
    import torch

    from baselines.common.data import load_dataset
    from baselines.common.streaming import StreamedImages

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    data = load_dataset("clothing1m", root=root, options={"decode_size": 256})
    loaded = time.perf_counter() - start
    streamed = StreamedImages(data.train_images, "cpu", workers=0)
    pool = torch.randperm(len(data.train_images))[:32000]
    streamed.plan(list(pool.split(32)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"entries": len(data.train_images), "rss_before_mb": round(before / 1024, 1),
                      "peak_rss_mb": round(peak / 1024, 1), "added_mb": round((peak - before) / 1024, 1),
                      "load_seconds": round(loaded, 1)}))


def list_memory(entries: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        _write_clothing1m_lists(Path(tmp), entries)
        out = subprocess.run([sys.executable, __file__, "--child", tmp], capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{row['entries']} listed images: peak RSS {row['peak_rss_mb']} MB ({row['added_mb']} MB over the "
          f"{row['rss_before_mb']} MB of the imported libraries), lists parsed in {row['load_seconds']} s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["throughput", "list", "both"], default="both")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _list_child(args.child)
    if args.part in ("throughput", "both"):
        throughput(args.workers, args.images, args.batch)
    if args.part in ("list", "both"):
        list_memory(args.entries)


if __name__ == "__main__":
    main()
