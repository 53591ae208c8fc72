"""Tiny fake datasets on disk in the formats `baselines.common.data` reads: tests never download.

Each writer returns what it wrote as arrays (`uint8 [N, 3, H, W]` images, int64 labels), so tests
can compare the loader's output with the source.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def fine_to_coarse(fine: np.ndarray) -> np.ndarray:
    """Fake CIFAR-100 superclass map: five consecutive fine ids each (not the real map)."""
    return np.asarray(fine) // 5


def write_fake_cifar10(
    root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write `root/cifar-10-batches-py/` (five train batches, test, meta) as torchvision does."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = _random_split(rng, n_train, 10)
    test_x, test_y = _random_split(rng, n_test, 10)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _dump(folder / f"data_batch_{i}", {"data": train_x[part], "labels": train_y[part].tolist()})
    _dump(folder / "test_batch", {"data": test_x, "labels": test_y.tolist()})
    _dump(folder / "batches.meta", {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": 10000})
    return _as_result(train_x, train_y, test_x, test_y)


def write_fake_cifar100(
    root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write `root/cifar-100-python/{train,test,meta}`, coarse labels from `fine_to_coarse`."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = _random_split(rng, n_train, 100)
    test_x, test_y = _random_split(rng, n_test, 100)
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        fine, coarse = y.tolist(), fine_to_coarse(y).tolist()
        _dump(folder / name, {"data": x, "fine_labels": fine, "coarse_labels": coarse})
    meta = {
        "fine_label_names": [f"fine_{i:02d}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)],
    }
    _dump(folder / "meta", meta)
    result = _as_result(train_x, train_y, test_x, test_y)
    result["coarse_labels"] = fine_to_coarse(train_y).astype(np.int64)
    return result


def write_image_folder(
    root: str | Path,
    classes: list[str],
    n_per_class: int,
    size: tuple[int, int] = (32, 32),
    fmt: str = "png",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write `root/{train,test}/<class>/<i>.<fmt>`, `n_per_class` images per class and split.

    `size` is (height, width). Returns what was encoded (a JPEG decodes slightly differently).
    """
    rng = np.random.default_rng(seed)
    result = {}
    for split in ("train", "test"):
        images, labels = [], []
        for label, name in enumerate(classes):
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.{fmt}")
                images.append(pixels.transpose(2, 0, 1))
                labels.append(label)
        result[f"{split}_images"] = np.stack(images)
        result[f"{split}_labels"] = np.array(labels, dtype=np.int64)
    return result


def _random_split(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    # Rows as CIFAR stores them: 3,072 bytes, the red plane then green then blue.
    images = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return images, rng.integers(0, classes, size=n)


def _dump(path: Path, obj: dict) -> None:
    # Protocol 2 with str keys is what the real (Python 2) files decode to under encoding="latin1".
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _as_result(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> dict[str, np.ndarray]:
    return {
        "train_images": train_x.reshape(-1, 3, 32, 32),
        "train_labels": train_y.astype(np.int64),
        "test_images": test_x.reshape(-1, 3, 32, 32),
        "test_labels": test_y.astype(np.int64),
    }
