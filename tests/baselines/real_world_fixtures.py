"""Miniatures of Clothing1M's and WebVision's releases, in their layouts, with JPEGs of mixed sizes."""

from pathlib import Path

import numpy as np
from PIL import Image

from baselines.common.real_world import CLOTHING1M_CLASSES

SIZES = ((48, 36), (36, 52), (44, 44))  # (width, height): the streamed path must take mixed sizes


def _jpeg(path: Path, rng: np.random.Generator, k: int) -> None:
    width, height = SIZES[k % len(SIZES)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def write_clothing1m(root: Path, per_class=(3, 1, 1), annotations: bool = True, seed: int = 0) -> dict:
    """root/annotations/*.txt (or root/*.txt) and root/images/<d>/<dd>/<id>.jpg. Train keys take noisy labels
    (the class after theirs for every third image) and val / test keys clean ones; clean_label_kv.txt also
    covers a few training images and noisy_label_kv.txt a few images in no list, as in the release.
    Returns {split: (keys, labels)} with the labels each split should be read with."""
    rng = np.random.default_rng(seed)
    notes = root / "annotations" if annotations else root
    notes.mkdir(parents=True, exist_ok=True)
    splits = {"train": ([], []), "val": ([], []), "test": ([], [])}
    noisy_kv, clean_kv, n = [], [], 0
    for split, count in zip(splits, per_class):
        for c in range(len(CLOTHING1M_CLASSES)):
            for _ in range(count):
                key = f"images/{n % 10}/{n % 100:02d}/{n}.jpg"
                _jpeg(root / key, rng, n)
                noisy = (c + 1) % len(CLOTHING1M_CLASSES) if n % 3 == 0 else c
                if split == "train":
                    noisy_kv.append(f"{key} {noisy}")
                    if n % 4 == 0:
                        clean_kv.append(f"{key} {c}")
                else:
                    clean_kv.append(f"{key} {c}")
                splits[split][0].append(key)
                splits[split][1].append(noisy if split == "train" else c)
                n += 1
    noisy_kv += [f"images/9/99/unlisted{i}.jpg 3" for i in range(2)]
    (notes / "noisy_label_kv.txt").write_text("\n".join(noisy_kv[::-1]) + "\n")  # unsorted, as a crawl's file
    (notes / "clean_label_kv.txt").write_text("\n".join(clean_kv) + "\n")
    for split, file in (("train", "noisy_train_key_list.txt"), ("val", "clean_val_key_list.txt"),
                        ("test", "clean_test_key_list.txt")):
        (notes / file).write_text("\n".join(splits[split][0]) + "\n")
    return splits


def write_webvision(root: Path, classes: int = 4, per_class=(3, 1), imagenet: str = "ids", seed: int = 0) -> dict:
    """root/info/{train_filelist_google,val_filelist,synsets}.txt, root/google/q<class>/<id>.jpg,
    root/val_images_256/<id>.jpg and, unless `imagenet` is None, root/imagenet_val/<class id or synset>/.
    Returns {split: (keys, labels)}."""
    rng = np.random.default_rng(seed)
    (root / "info").mkdir(parents=True, exist_ok=True)
    synsets = [f"n{c:08d}" for c in range(classes)]
    (root / "info" / "synsets.txt").write_text("\n".join(f"{s} class {c}" for c, s in enumerate(synsets)) + "\n")
    train, val, n = ([], []), ([], []), 0
    for c in range(classes):
        for _ in range(per_class[0]):
            key = f"google/q{c + 1:04d}/{n}.jpg"
            _jpeg(root / key, rng, n)
            train[0].append(key), train[1].append(c)
            n += 1
        for _ in range(per_class[1]):
            key = f"val{n:06d}.jpg"
            _jpeg(root / "val_images_256" / key, rng, n)
            val[0].append(key), val[1].append(c)
            n += 1
    (root / "info" / "train_filelist_google.txt").write_text(
        "".join(f"{k} {c}\n" for k, c in zip(*train)))
    (root / "info" / "val_filelist.txt").write_text("".join(f"{k} {c}\n" for k, c in zip(*val)))
    out = {"train": train, "val": val}
    if imagenet is not None:
        names = [str(c) for c in range(classes)] if imagenet == "ids" else synsets
        keys, labels = [], []
        for c, name in enumerate(names):
            for k in range(2):
                _jpeg(root / "imagenet_val" / name / f"ILSVRC_{c}_{k}.JPEG", rng, c + k)
                keys.append(f"{name}/ILSVRC_{c}_{k}.JPEG"), labels.append(c)
        out["imagenet"] = (keys, labels)
    return out
