"""Clothing1M and mini-WebVision in their releases' layouts, streamed from their files (streaming.py).

Both are web crawls whose labels are already noisy, so the training labels here are the crawl's own
(`labels_known=False`: the share of wrong ones is unknown and is reported so); their clean splits are the
test sets, and Clothing1M's clean validation split is the one used for model selection. See docs/real-world.md
for where to put the files and what the presets expect.

The file lists are parsed into NumPy byte-string arrays, never into dicts or lists of `Path`s: Clothing1M's
1M-entry lists then cost tens of MB (benchmarks/streaming.py measures the peak).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .streaming import ImageFiles

__all__ = ["CLOTHING1M_CLASSES", "load_clothing1m", "load_webvision"]

CLOTHING1M_CLASSES = ("T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker", "Jacket",
                      "Down Coat", "Suit", "Shawl", "Dress", "Vest", "Underwear")
# the release's annotation files; their entries are image paths relative to the dataset root (images/0/00/...)
CLOTHING1M_FILES = ("noisy_label_kv.txt", "clean_label_kv.txt", "noisy_train_key_list.txt",
                    "clean_val_key_list.txt", "clean_test_key_list.txt")
# DivideMix's normalisation for Clothing1M; ImageNet's for WebVision (as both upstream loaders use)
CLOTHING1M_STATS = ((0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _error(message: str) -> Exception:
    from .data import DatasetError  # data.py imports this module

    return DatasetError(message)


def read_labelled_list(path: Path, dataset: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """`(paths as bytes, int64 labels)` from a `<relative path> <label>` file, one entry a line."""
    if not path.is_file():
        raise _error(f"{dataset}: {path} not found; {hint}")
    keys, labels = [], []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise _error(f"{dataset}: line {number} of {path} is {line.strip()[:80]!r}; expected "
                             "'<image path> <label>'")
            keys.append(parts[0])
            labels.append(int(parts[1]))
    if not keys:
        raise _error(f"{dataset}: {path} lists no images; {hint}")
    return np.array(keys, dtype=bytes), np.array(labels, dtype=np.int64)


def read_key_list(path: Path, dataset: str, hint: str) -> np.ndarray:
    """The image paths of a one-path-a-line file, as bytes."""
    if not path.is_file():
        raise _error(f"{dataset}: {path} not found; {hint}")
    with open(path, "rb") as handle:
        keys = [line.strip() for line in handle if line.strip()]
    if not keys:
        raise _error(f"{dataset}: {path} lists no images; {hint}")
    return np.array(keys, dtype=bytes)


def look_up(keys: np.ndarray, table_keys: np.ndarray, table_labels: np.ndarray, what: str) -> np.ndarray:
    """The labels of `keys` in the table `(table_keys, table_labels)`, by binary search on the sorted table;
    a key the table lacks is an error naming it."""
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = table_keys[order]
    position = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    found = sorted_keys[position] == keys
    if not found.all():
        first = keys[np.flatnonzero(~found)[0]].decode(errors="replace")
        raise _error(f"{what}: {first} has no label there ({int((~found).sum())} such entries); the files are "
                     "from different releases?")
    return table_labels[order[position]]


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _error(f"{where}: label {int(labels.max())} is outside 0..{num_classes - 1}")


def check_first_files(files: ImageFiles, dataset: str, hint: str) -> None:
    """The first and last listed images must exist (a cheap check before a long run; a file missing in
    between is named by the decoder when it is reached)."""
    for i in {0, len(files) - 1}:
        if not files.path(i).is_file():
            raise _error(f"{dataset}: {files.path(i)} not found; {hint}")


# --------------------------------------------------------------------------------------- Clothing1M


def load_clothing1m(root: Path, decode_size: int):
    """Clothing1M (Xiao et al., 2015) as released: `root/annotations/` (or `root/`) holding the five kv and key
    files, and the images under `root/images/...` as the files name them. The noisy training split (1M images,
    about 38% wrong) with its crawled labels; the clean validation split (14,313) for model selection and the
    clean test split (10,526), labelled from clean_label_kv.txt."""
    from .data import ImageDataset, _content_hash

    notes = root / "annotations" if (root / "annotations" / CLOTHING1M_FILES[0]).is_file() else root
    hint = (f"expected {', '.join(CLOTHING1M_FILES)} in {root}/annotations/ (or {root}/) and the images they "
            f"name under {root}/ (Clothing1M's release; see docs/real-world.md)")
    noisy_keys, noisy_labels = read_labelled_list(notes / "noisy_label_kv.txt", "clothing1m", hint)
    clean_keys, clean_labels = read_labelled_list(notes / "clean_label_kv.txt", "clothing1m", hint)
    splits = {}
    for name, file, (table_keys, table_labels) in (
            ("train", "noisy_train_key_list.txt", (noisy_keys, noisy_labels)),
            ("val", "clean_val_key_list.txt", (clean_keys, clean_labels)),
            ("test", "clean_test_key_list.txt", (clean_keys, clean_labels))):
        keys = read_key_list(notes / file, "clothing1m", hint)
        labels = look_up(keys, table_keys, table_labels, f"clothing1m: {file} against {notes}")
        check_labels(labels, len(CLOTHING1M_CLASSES), f"clothing1m: {file}")
        files = ImageFiles(root, keys, decode_size)
        check_first_files(files, "clothing1m", hint)
        splits[name] = (files, labels)
    (train, train_labels), (val, val_labels), (test, test_labels) = splits["train"], splits["val"], splits["test"]
    mean, std = CLOTHING1M_STATS
    return ImageDataset(
        name="clothing1m", train_images=train, train_labels=train_labels, test_images=test, test_labels=test_labels,
        class_names=list(CLOTHING1M_CLASSES), mean=mean, std=std, labels_known=False,
        val_images=val, val_labels=val_labels,
        identity=f"clothing1m|train={train.fingerprint()[:16]}|labels={_content_hash(train_labels)}",
    )


# -------------------------------------------------------------------------------------- WebVision


def load_webvision(root: Path, decode_size: int, first_classes: int, imagenet_val: Optional[Path]):
    """Mini-WebVision (Li et al., 2017; the first `first_classes` classes, 50 in DivideMix's protocol) as
    released: `root/info/train_filelist_google.txt` (`google/<query>/<image> <label>`, paths relative to `root`)
    and `root/info/val_filelist.txt` (`<image> <label>`, under `root/val_images_256/`). The WebVision val split
    is the test set; `imagenet_val`, when given, is evaluated too as `test_acc_imagenet`: a folder with one
    subfolder per class, named by its class id (`0/ ... 49/`, DivideMix's layout) or by its synset as
    `root/info/synsets.txt` lists them."""
    from .data import ImageDataset, _content_hash

    if isinstance(first_classes, bool) or int(first_classes) != first_classes or not 1 <= first_classes <= 1000:
        raise _error(f"dataset.first_classes must be an integer in 1..1000 (mini-WebVision: 50), got {first_classes!r}")
    hint = (f"expected {root}/info/train_filelist_google.txt, {root}/info/val_filelist.txt and the images they "
            f"name ({root}/google/..., {root}/val_images_256/...; WebVision 1.0's release, see "
            "docs/real-world.md)")
    train_keys, train_labels = read_labelled_list(root / "info" / "train_filelist_google.txt", "webvision", hint)
    val_keys, val_labels = read_labelled_list(root / "info" / "val_filelist.txt", "webvision", hint)
    keep_train, keep_val = train_labels < first_classes, val_labels < first_classes
    if not keep_train.any() or not keep_val.any():
        raise _error(f"webvision: no images of the first {first_classes} classes in {root}/info; {hint}")
    train = ImageFiles(root, train_keys[keep_train], decode_size)
    test = ImageFiles(root / "val_images_256", val_keys[keep_val], decode_size)
    for files in (train, test):
        check_first_files(files, "webvision", hint)
    synsets = _synsets(root)
    names = [synsets[c] if c < len(synsets) else f"class_{c}" for c in range(first_classes)]
    extra = {"imagenet": _imagenet_val(Path(imagenet_val), first_classes, synsets, decode_size)} if imagenet_val else {}
    mean, std = IMAGENET_STATS
    return ImageDataset(
        name="webvision", train_images=train, train_labels=train_labels[keep_train], test_images=test,
        test_labels=val_labels[keep_val], class_names=names, mean=mean, std=std, labels_known=False,
        extra_tests=extra,
        identity=f"webvision|classes={first_classes}|train={train.fingerprint()[:16]}|"
                 f"labels={_content_hash(train_labels[keep_train])}",
    )


def _synsets(root: Path) -> list[str]:
    path = root / "info" / "synsets.txt"
    if not path.is_file():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _imagenet_val(folder: Path, first_classes: int, synsets: list[str], decode_size: int) -> tuple[ImageFiles, np.ndarray]:
    from .data import _IMAGE_SUFFIXES

    if not folder.is_dir():
        raise _error(f"webvision: dataset.imagenet_val={folder} not found; give ImageNet's val folder with one "
                     f"subfolder per class, named by its id (0/ .. {first_classes - 1}/), or leave it null")
    paths, labels = [], []
    for c in range(first_classes):
        names = [str(c)] + ([synsets[c]] if c < len(synsets) else [])
        class_dir = next((folder / n for n in names if (folder / n).is_dir()), None)
        if class_dir is None:
            raise _error(f"webvision: {folder / names[-1]} not found; dataset.imagenet_val needs one folder per "
                         f"class, named by its id (0/ .. {first_classes - 1}/) or by its synset (info/synsets.txt)")
        images = sorted(f.name for f in class_dir.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        paths += [f"{class_dir.name}/{name}" for name in images]
        labels += [c] * len(images)
    if not paths:
        raise _error(f"webvision: no images in the class folders of {folder}")
    return ImageFiles(folder, paths, decode_size), np.array(labels, dtype=np.int64)

