"""The streamed dataset path (baselines/common/streaming.py): decode throughput, and the memory of a 1M-entry list.

    python benchmarks/streaming.py --workers 0 2 --images 640     # figures for benchmarks/RESULTS.md
    python benchmarks/streaming.py --workers --list-entries 1000000   # only the list part

Images/s from JPEG files (generated: smooth 400 x 300 photos-like images, about Clothing1M's
size) to `uint8 [B, 3, 256, 256]` batches and on to the 224-pixel training views of `augment=imagenet`, through
`StreamedImages` with N DataLoader workers, for each N given.

`--list-entries N` writes Clothing1M's five annotation files with N noisy training entries (and the release's
14,313 val and 10,526 test entries; only the first and last image of each split exist, which is all the loader
opens) and loads them with `dataset=clothing1m` in a fresh process: its peak RSS above the same process before
loading, and the seconds it takes. The file lists are what a streamed dataset holds in memory for the run.
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


def list_memory(entries: int) -> dict:
    """Peak RSS and seconds of loading a Clothing1M release with `entries` training entries (a fresh process)."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "annotations").mkdir()
        sizes = {"train": entries, "val": 14313, "test": 10526}
        keys = {split: [f"images/{i % 10}/{i % 100:02d}/{split}{i}.jpg" for i in range(n)] for split, n in sizes.items()}
        with open(root / "annotations" / "noisy_label_kv.txt", "w") as f:
            f.writelines(f"{k} {i % 14}\n" for i, k in enumerate(keys["train"]))
        with open(root / "annotations" / "clean_label_kv.txt", "w") as f:
            f.writelines(f"{k} {i % 14}\n" for split in ("val", "test") for i, k in enumerate(keys[split]))
        for split, file in (("train", "noisy_train_key_list.txt"), ("val", "clean_val_key_list.txt"),
                            ("test", "clean_test_key_list.txt")):
            (root / "annotations" / file).write_text("".join(f"{k}\n" for k in keys[split]))
            for k in (keys[split][0], keys[split][-1]):
                (root / k).parent.mkdir(parents=True, exist_ok=True)
                (root / k).write_bytes(b"")
        listed = sum((root / "annotations" / f).stat().st_size for f in ("noisy_label_kv.txt", "noisy_train_key_list.txt"))
        del keys
        probe = (
            "import resource, time, sys; sys.path.insert(0, %r)\n"
            "from baselines.common.data import load_dataset\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "start = time.perf_counter(); data = load_dataset('clothing1m', root=%r)\n"
            "seconds = time.perf_counter() - start\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(len(data.train_images), before, after, seconds)\n" % (str(ROOT), str(root)))
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        n, before, after, seconds = out.stdout.split()
    row = {"entries": int(n), "list_files_mb": round(listed / 2**20, 1), "rss_before_mb": round(int(before) / 1024),
           "peak_rss_mb": round(int(after) / 1024), "peak_above_before_mb": round((int(after) - int(before)) / 1024),
           "seconds": round(float(seconds), 1)}
    print(f"a {row['entries']:,}-entry Clothing1M list ({row['list_files_mb']} MB of train kv + key list): peak RSS "
          f"{row['peak_rss_mb']} MB, {row['peak_above_before_mb']} MB above the process before loading "
          f"({row['rss_before_mb']} MB); {row['seconds']} s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2], help="none: skip the throughput part")
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--list-entries", type=int, default=0, help="also measure a list of this many entries")
    args = parser.parse_args()
    if args.workers:
        throughput(args.workers, args.images, args.batch)
    if args.list_entries:
        list_memory(args.list_entries)


if __name__ == "__main__":
    main()
