"""Image datasets held in memory as uint8 arrays, augmented later in whole batches on the device.

docs/runs.md section 2: crop, flip and normalisation run on batched tensors, not per sample through
PIL in worker processes, so each split is loaded once as `uint8 [N, C, H, W]`. Sources:

- `digits`: scikit-learn's bundled 8x8 digits (1,797 images) upsampled to 32x32; works offline.
- `cifar10` / `cifar100`: torchvision's on-disk pickles, read here without md5 checks (so a small
  fake in the same format works in tests); torchvision is used only to download them.
- `image_folder`: `root/{train,test}/<class>/<image>`, decoded once and cached as `.npz`.
- `animal10n`: its release's `training/` and `testing/` folders, decoded once and cached.
- `clothing1m`, `webvision`: their releases' file lists, streamed (real_world.py).
- A split may instead be an `ImageFiles` (streaming.py): files indexable like the array, decoded in
  DataLoader workers during the run, for data too large for memory or of mixed image sizes.

Labels here are the TRUE labels; noise is applied elsewhere, keyed by `ImageDataset.identity`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from .files import atomic_write
from .real_world import load_clothing1m, load_webvision
from .streaming import ImageFiles

__all__ = [
    "DATASETS",
    "DatasetError",
    "ImageDataset",
    "class_balanced_subset",
    "default_cache_dir",
    "load_dataset",
]

DATASETS = ("digits", "cifar10", "cifar100", "image_folder", "animal10n", "clothing1m", "webvision")
# streamed from their files (streaming.py), decoded to a square of `decode_size` pixels unless given
STREAMED = {"clothing1m": 256, "webvision": 320}
# Animal-10N's label ids (the number before the underscore in <label>_<id>.jpg), as its release names them
ANIMAL10N_CLASSES = ("cat", "lynx", "wolf", "coyote", "cheetah", "jaguar", "chimpanzee", "orangutan", "hamster",
                     "guinea pig")

_OFFLINE_HINT = (
    "offline, use dataset=digits or dataset=image_folder (e.g. the CIFAR-10 JPEG copy laid out as "
    "root/train/<class>/*.jpg and root/test/<class>/*.jpg)"
)
_IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
_CACHE_VERSION = 1  # part of the fingerprint: bump it when decoding changes to retire old caches
# Below this many files, starting worker processes costs more than it saves (about 130 us per file).
_PARALLEL_MIN_FILES = 2048


class DatasetError(RuntimeError):
    """A dataset cannot be loaded; the message is one line meant for the user."""


@dataclass(eq=False)
class ImageDataset:
    """Both splits of one dataset in memory.

    `identity` names exactly this data (source, split, subset, content fingerprint). The noise
    cache keys on it, so datasets that share a `name` (a fake CIFAR in tests, an edited image
    folder) never share noisy labels.
    """

    name: str
    train_images: np.ndarray | ImageFiles = field(repr=False)  # uint8 [N, C, H, W] (or its files, streamed)
    train_labels: np.ndarray = field(repr=False)  # int64 [N], true labels (diagnostics only)
    test_images: np.ndarray | ImageFiles = field(repr=False)  # uint8 [M, C, H, W]
    test_labels: np.ndarray = field(repr=False)  # int64 [M]
    class_names: list[str]
    mean: tuple[float, ...]  # per channel, [0, 1] units
    std: tuple[float, ...]
    identity: str
    coarse_labels: np.ndarray | None = field(default=None, repr=False)  # CIFAR-100 train superclass
    # False when train_labels are the dataset's own noisy labels (Animal-10N): the share of wrong labels, and
    # every diagnostic against the truth, is then unknown
    labels_known: bool = True
    # a clean validation split of the dataset's own (Clothing1M's 14k), for model selection; None elsewhere
    val_images: np.ndarray | ImageFiles | None = field(default=None, repr=False)
    val_labels: np.ndarray | None = field(default=None, repr=False)
    # further test sets evaluated each epoch beside the main one: {name: (images, labels)} (WebVision's ImageNet val)
    extra_tests: dict[str, tuple[Any, np.ndarray]] = field(default_factory=dict, repr=False)
    # a subset (train_subset): the positions of its samples in the whole training split of train_total images,
    # so that a label file for the whole split (CIFAR-10N) gives the subset its rows; None = the whole split
    train_index: np.ndarray | None = field(default=None, repr=False)
    train_total: int | None = None

    @property
    def streamed(self) -> bool:
        return isinstance(self.train_images, ImageFiles)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    def content_digest(self) -> str:
        """sha256 of the decoded pixels, labels and class names of both splits: the same data wherever it
        lies (a moved or copied folder), different data whenever one pixel or label differs. What a resumed
        run checks against its checkpoint; about a second for CIFAR's 60k images."""
        h = hashlib.sha256(json.dumps([self.name, self.class_names]).encode())
        arrays = [self.train_images, self.train_labels, self.test_images, self.test_labels]
        if self.val_labels is not None:
            arrays += [self.val_images, self.val_labels]
        for name in sorted(self.extra_tests):
            arrays += list(self.extra_tests[name])
        for array in arrays:
            if isinstance(array, ImageFiles):  # streamed: its file list and decode size (see its fingerprint)
                h.update(array.fingerprint().encode())
                continue
            h.update(str((array.dtype.str, array.shape)).encode())
            h.update(np.ascontiguousarray(array).data)
        return h.hexdigest()


def default_cache_dir() -> Path:
    """`$SANM_CACHE_DIR`, else `$XDG_CACHE_HOME/sanm_plugin`, else `~/.cache/sanm_plugin`.

    Never inside the installed package, which may be read-only or shared between users.
    """
    if os.environ.get("SANM_CACHE_DIR"):
        return Path(os.environ["SANM_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sanm_plugin"


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    download: bool = True,
    decode_size: int | None = None,
    first_classes: int = 50,
    imagenet_val: str | os.PathLike[str] | None = None,
) -> ImageDataset:
    """Load one of `DATASETS` into memory.

    Args:
        name: One of `DATASETS`.
        root: CIFAR: the folder holding torchvision's `cifar-*` folder (default
            `<cache_dir>/datasets`); image_folder: the folder holding `train/` and `test/`
            (required); digits: unused.
        cache_dir: Where image_folder decodes are cached (default `default_cache_dir()`).
        train_subset: Keep a class-balanced subset of this many training samples (quick runs).
        test_subset: Keep a class-balanced subset of at most this many test samples (quick checks: the accuracy
            is then not comparable with the whole test split's; other test sets and a clean val split stay whole).
        seed: Seeds the digits train/test split and the choice of the subsets.
        download: Let torchvision fetch CIFAR when it is missing under `root`.
        decode_size: A streamed dataset's square decode size (default `STREAMED[name]`: Resize + CenterCrop).
        first_classes: webvision: keep the first this many classes (mini-WebVision: 50).
        imagenet_val: webvision: ImageNet's val folder, one subfolder per class, evaluated as a second test set.

    Raises:
        DatasetError: One line saying what is missing where, and what to do instead.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if name == "digits":
        data = _load_digits(seed)
    elif name in _CIFAR:
        data = _load_cifar(name, Path(root).expanduser() if root else cache / "datasets", download)
    elif name == "image_folder":
        if root is None:
            raise DatasetError(
                "dataset=image_folder needs root=<folder with train/<class>/ and test/<class>/>"
            )
        data = _load_image_folder(Path(root).expanduser(), cache)
    elif name == "animal10n":
        if root is None:
            raise DatasetError("dataset=animal10n needs dataset.root=<folder with training/ and testing/>")
        data = _load_animal10n(Path(root).expanduser(), cache)
    elif name in STREAMED:
        if root is None:
            raise DatasetError(f"dataset={name} needs dataset.root=<the folder of its release>; see "
                               "docs/real-world.md")
        size = STREAMED[name] if decode_size is None else decode_size
        if name == "clothing1m":
            data = load_clothing1m(Path(root).expanduser(), size)
        else:
            data = load_webvision(Path(root).expanduser(), size, first_classes,
                                  Path(imagenet_val).expanduser() if imagenet_val else None)
    else:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if train_subset is not None:
        data = _take_train_subset(data, train_subset, seed)
    if test_subset is not None:
        data = _take_test_subset(data, test_subset, seed)
    return data


def class_balanced_subset(labels: np.ndarray, n: int, seed: int, split: str = "train") -> np.ndarray:
    """Sorted indices of `n` samples, as equal per class as the class sizes allow.

    Each class gets `min(count, L)` for the largest level `L` that fits in `n`; the remainder goes
    to randomly chosen classes that still have samples, so sizes differ by at most one unless a
    class runs out.
    """
    labels = np.asarray(labels)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise DatasetError(f"{split}_subset must be a positive integer, got {n!r}")
    n = int(n)
    if n > len(labels):
        raise DatasetError(
            f"{split}_subset={n} is larger than the {split} split; the maximum is {len(labels)}"
        )
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    level, top = 0, int(counts.max())  # binary search: taking min(count, level) is monotone in level
    while level < top:
        mid = (level + top + 1) // 2
        level, top = (mid, top) if np.minimum(counts, mid).sum() <= n else (level, mid - 1)
    quota = np.minimum(counts, level)
    open_classes = np.flatnonzero(counts > level)
    quota[rng.choice(open_classes, size=n - int(quota.sum()), replace=False)] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=int(q), replace=False)
        for c, q in zip(classes, quota)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _take_train_subset(data: ImageDataset, n: int, seed: int) -> ImageDataset:
    idx = class_balanced_subset(data.train_labels, n, seed)
    return dataclasses.replace(
        data,
        train_index=idx if data.train_index is None else data.train_index[idx],
        train_total=len(data.train_labels) if data.train_total is None else data.train_total,
        train_images=data.train_images[idx],
        train_labels=data.train_labels[idx],
        coarse_labels=None if data.coarse_labels is None else data.coarse_labels[idx],
        identity=f"{data.identity}|train_subset={len(idx)}|subset_seed={seed}",
    )


def _take_test_subset(data: ImageDataset, n: int, seed: int) -> ImageDataset:
    """At most `n` test samples: a split that is no larger stays whole (the smoke preset's 100 on any dataset)."""
    idx = class_balanced_subset(data.test_labels, min(n, len(data.test_labels)), seed, split="test")
    if len(idx) == len(data.test_labels):
        return data
    return dataclasses.replace(
        data,
        test_images=data.test_images[idx],
        test_labels=data.test_labels[idx],
        identity=f"{data.identity}|test_subset={len(idx)}|subset_seed={seed}",
    )


# ------------------------------------------------------------------------------------------- digits


def _load_digits(seed: int) -> ImageDataset:
    import torch  # lazy, so image-decoding worker processes do not import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # 0..16 -> 0..255 and 8x8 -> 32x32, once, so CIFAR models and augmentations apply unchanged.
    x = torch.from_numpy(bunch.images).float()[:, None] * (255.0 / 16.0)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    images = x.round().clamp_(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous().numpy()
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = _channel_stats(images[train_idx])
    content = _content_hash(images, labels)
    return ImageDataset(
        name="digits",
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        test_images=images[test_idx],
        test_labels=labels[test_idx],
        class_names=[str(d) for d in range(10)],
        mean=mean,
        std=std,
        identity=f"digits|split=stratified_test0.2|split_seed={seed}|content={content}",
    )


# -------------------------------------------------------------------------------------------- CIFAR


class _CifarLayout(NamedTuple):
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    mean: tuple[float, ...]  # docs/baselines.md 1.4: the DivideMix / C2D / SANM constants
    std: tuple[float, ...]


_CIFAR = {
    "cifar10": _CifarLayout(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
    ),
    "cifar100": _CifarLayout(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        mean=(0.507, 0.487, 0.441),
        std=(0.267, 0.256, 0.276),
    ),
}


def _load_cifar(name: str, root: Path, download: bool) -> ImageDataset:
    layout = _CIFAR[name]
    folder = root / layout.folder
    if _missing_cifar_file(folder, layout) is not None and download:
        _download_cifar(name, root, folder)
    missing = _missing_cifar_file(folder, layout)
    if missing is not None:
        raise DatasetError(f"{name}: {missing} not found (download={download}); {_OFFLINE_HINT}")

    train = [_unpickle(folder / f) for f in layout.train_files]
    test = [_unpickle(folder / f) for f in layout.test_files]
    meta = _unpickle(folder / layout.meta_file)
    train_images, test_images = _cifar_images(train), _cifar_images(test)
    train_labels = _cifar_labels(train, layout.label_key)
    test_labels = _cifar_labels(test, layout.label_key)
    content = _content_hash(train_images, train_labels, test_images, test_labels)
    return ImageDataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=[_as_str(s) for s in meta[layout.names_key]],
        mean=layout.mean,
        std=layout.std,
        identity=f"{name}|split=official|content={content}",
        coarse_labels=_cifar_labels(train, "coarse_labels") if name == "cifar100" else None,
    )


def _download_cifar(name: str, root: Path, folder: Path) -> None:
    import torchvision  # heavy; only needed to fetch

    fetch = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        fetch(str(root), train=True, download=True)  # one archive holds both splits
    except Exception as err:  # offline, proxy, disk full...: all mean "no data", said in one line
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise DatasetError(
            f"{name} not found in {folder} and the download failed ({reason}); {_OFFLINE_HINT}"
        ) from err


def _missing_cifar_file(folder: Path, layout: _CifarLayout) -> Path | None:
    for f in (*layout.train_files, *layout.test_files, layout.meta_file):
        if not (folder / f).is_file():
            return folder / f
    return None


def _unpickle(path: Path) -> dict[str, Any]:
    # Python 2 pickles: latin1 decodes their numpy payload and turns their keys into str; bytes keys
    # are accepted too. This is pickle, so only point `root` at folders you trust.
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="latin1")
    except Exception as err:
        raise DatasetError(
            f"cannot read {path} ({type(err).__name__}); delete its folder to download it again"
        ) from err
    return {_as_str(k): v for k, v in raw.items()}


def _as_str(value: str | bytes) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _cifar_images(batches: list[dict[str, Any]]) -> np.ndarray:
    # A row is 3,072 bytes: 1,024 red values, then green, then blue, each row-major: [3, 32, 32].
    rows = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
    return rows.reshape(-1, 3, 32, 32)


def _cifar_labels(batches: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(b[key], dtype=np.int64) for b in batches])


# ------------------------------------------------------------------------------------- image folder


def _load_image_folder(root: Path, cache_dir: Path) -> ImageDataset:
    layout = f"expected {root}/train/<class>/<image> and {root}/test/<class>/<image>"
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DatasetError(f"image_folder: {root / split} not found; {layout}")
    train, test = _scan_split(root / "train"), _scan_split(root / "test")
    classes = sorted(train)
    if not classes:
        raise DatasetError(f"image_folder: no class folders in {root / 'train'}; {layout}")
    if set(test) != set(classes):
        only_train, only_test = sorted(set(classes) - set(test)), sorted(set(test) - set(classes))
        raise DatasetError(
            f"image_folder: train/ and test/ class folders differ in {root} "
            f"(only in train: {only_train[:5]}; only in test: {only_test[:5]})"
        )
    empty = [c for c in classes if not train[c]]
    if empty:
        raise DatasetError(f"image_folder: no images in {root / 'train' / empty[0]}; {layout}")

    train_files, test_files = [f for c in classes for f in train[c]], [f for c in classes for f in test[c]]
    fingerprint = _folder_fingerprint(root, train_files + test_files)
    arrays = _decoded(train_files, test_files, cache_dir / "image_folder" / f"{fingerprint}.npz")
    return ImageDataset(
        name="image_folder",
        train_images=arrays["train_images"],
        train_labels=np.repeat(np.arange(len(classes)), [len(train[c]) for c in classes]).astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=np.repeat(np.arange(len(classes)), [len(test[c]) for c in classes]).astype(np.int64),
        class_names=classes,
        mean=tuple(float(v) for v in arrays["mean"]),
        std=tuple(float(v) for v in arrays["std"]),
        identity=f"image_folder|split=folders|files={fingerprint}",
    )


def _load_animal10n(root: Path, cache_dir: Path) -> ImageDataset:
    """Animal-10N as released: root/training/<label>_<id>.jpg (50k) and root/testing/ (5k), 64x64 each; the
    training labels are the crawl's own (about 8% wrong), so they are the only labels there are."""
    layout = f"expected {root}/training/<label>_<id>.jpg and {root}/testing/<label>_<id>.jpg (Animal-10N's release)"
    splits = {}
    for split in ("training", "testing"):
        if not (root / split).is_dir():
            raise DatasetError(f"animal10n: {root / split} not found; {layout}")
        files = sorted(f for f in (root / split).iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise DatasetError(f"animal10n: no images in {root / split}; {layout}")
        labels = []
        for f in files:
            head = f.name.split("_", 1)[0]
            if not head.isdigit() or int(head) >= len(ANIMAL10N_CLASSES):
                raise DatasetError(f"animal10n: {f} does not start with a label 0-9 and an underscore; {layout}")
            labels.append(int(head))
        splits[split] = (files, np.array(labels, dtype=np.int64))
    (train_files, train_labels), (test_files, test_labels) = splits["training"], splits["testing"]
    fingerprint = _folder_fingerprint(root, train_files + test_files)
    arrays = _decoded(train_files, test_files, cache_dir / "animal10n" / f"{fingerprint}.npz")
    return ImageDataset(
        name="animal10n", train_images=arrays["train_images"], train_labels=train_labels,
        test_images=arrays["test_images"], test_labels=test_labels, class_names=list(ANIMAL10N_CLASSES),
        mean=tuple(float(v) for v in arrays["mean"]), std=tuple(float(v) for v in arrays["std"]),
        identity=f"animal10n|files={fingerprint}", labels_known=False,
    )


def _decoded(train_files: list[Path], test_files: list[Path], cache_file: Path) -> dict[str, np.ndarray]:
    """Both splits decoded to uint8 and the training channel statistics, from the cache file when it holds
    them (decoded once, written atomically)."""
    arrays = _read_cache(cache_file)
    if arrays is None:
        images = _decode_images(train_files + test_files)
        n_train = len(train_files)
        mean, std = _channel_stats(images[:n_train])
        arrays = {"train_images": images[:n_train], "test_images": images[n_train:], "mean": np.array(mean),
                  "std": np.array(std)}
        _write_npz_atomic(cache_file, arrays)
    return arrays


def _scan_split(split_dir: Path) -> dict[str, list[Path]]:
    """Class -> its sorted image files, searched recursively like torchvision's ImageFolder."""
    classes = [p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return {
        c: sorted(
            f
            for f in (split_dir / c).rglob("*")
            if f.suffix.lower() in _IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file()
        )
        for c in sorted(classes)
    }


def _folder_fingerprint(root: Path, files: list[Path]) -> str:
    # Path, size and mtime of every file: cheap (no decoding) and changes whenever the folder does.
    h = hashlib.sha256(f"v{_CACHE_VERSION}\0{root.resolve()}\n".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # truncated or foreign: decode again and overwrite it
        return None


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        with atomic_write(path) as handle:
            np.savez(handle, **arrays)
    except OSError as err:
        raise DatasetError(
            f"cannot write the image cache in {path.parent} ({err.strerror}); set cache_dir"
        ) from err


def _decode_images(files: list[Path]) -> np.ndarray:
    """Decode every file to `uint8 [N, 3, H, W]`; all must share the first file's size.

    Processes, not threads: for small images PIL's per-file Python work holds the GIL. 60,000
    32x32 JPEGs on 2 cores: 7.6 s serial, 7.4 s with threads, 5.0 s with processes, which scale
    with cores.
    """
    first = _read_rgb(files[0])
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(workers or 1, 32)
    if len(files) < _PARALLEL_MIN_FILES or workers < 2:
        stacked = _decode_files(files, first.shape, files[0])
    else:
        size = -(-len(files) // (4 * workers))  # a few chunks per worker evens out the load
        chunks = [files[i : i + size] for i in range(0, len(files), size)]
        # fork starts workers without re-importing the caller's modules (as torch's DataLoader
        # does on Linux); workers only run PIL and NumPy. Elsewhere, the platform default.
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
        stacked = np.empty((len(files), *first.shape), dtype=np.uint8)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = pool.map(_decode_files, chunks, repeat(first.shape), repeat(files[0]))
            for start, part in zip(range(0, len(files), size), parts):
                stacked[start : start + len(part)] = part
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def _decode_files(files: list[Path], shape: tuple[int, ...], reference: Path) -> np.ndarray:
    """`uint8 [n, H, W, 3]` for `files`, all of `shape` (the size of `reference`)."""
    out = np.empty((len(files), *shape), dtype=np.uint8)
    for i, path in enumerate(files):
        image = _read_rgb(path)
        if image.shape != shape:
            raise DatasetError(
                f"image_folder: {path} is {image.shape[1]}x{image.shape[0]} but {reference} is "
                f"{shape[1]}x{shape[0]}; all images must share one size (resize them first)"
            )
        out[i] = image
    return out


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise DatasetError(f"image_folder: cannot decode {path} ({type(err).__name__})") from err


# ------------------------------------------------------------------------------------------ helpers


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of `uint8 [N, C, H, W]`, in [0, 1] units.

    Exact integer sums over chunks, so no float copy of the split (1.5 GB for 60,000 CIFAR images).
    """
    total = np.zeros(images.shape[1], dtype=np.int64)
    squares = np.zeros(images.shape[1], dtype=np.int64)
    for start in range(0, len(images), 2048):
        chunk = images[start : start + 2048].astype(np.int32)
        total += chunk.sum(axis=(0, 2, 3), dtype=np.int64)
        squares += (chunk * chunk).sum(axis=(0, 2, 3), dtype=np.int64)
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return tuple(float(v) for v in mean / 255.0), tuple(float(v) for v in std / 255.0)


def _content_hash(*arrays: np.ndarray) -> str:
    # About 0.1 s for all of CIFAR; cheap next to unpickling it.
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:16]
