"""Label noise for the baselines: synthetic generators, label files and a disk cache.

The upstream repos disagree on what "r % noise" means (docs/baselines.md section 1), so the protocol is
an option:

* ``dividemix`` (1.1, DivideMix / C2D / SANM ``dataloader_cifar.py``): a seeded permutation selects
  exactly ``int(r * N)`` samples. ``sym`` redraws them from all C classes, the true one included,
  so only ``r * (C - 1) / C`` end up wrong. ``asym`` sends them through a class map, or on
  CIFAR-100 to another fine class of the same superclass (C2D ``get_asym_cifar100``).
* ``exclude_true`` (1.3, CDR ``tools.py``, Co-teaching ``data/utils.py``): a symmetric draw never
  returns the true class, so about ``r`` of the labels are wrong. Asym and pairflip keep the
  exact-count selection (upstream flips per class or per sample; the expected rate is the same).
* ``idn`` (1.5, CDR ``tools.get_instance_noisy_label``): truncated-normal flip rates and targets
  that depend on the pixels.
* ``file``: fixed labels such as CIFAR-10N's ``worse_label``.

All randomness comes from ``np.random.default_rng(seed)``. The protocols match upstream but the
random streams do not (upstream uses Python ``random``, ``np.random.RandomState`` or torch), so a
seed gives different, equally distributed labels. ``cached_noisy_labels`` stores them once so every
method sees the same ones; unlike DivideMix's ``{r}_{mode}.json`` (1.1), its key covers everything
that determines the labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .files import atomic_write

# fmt: off
__all__ = [
    "CIFAR10_CLASSES", "DIGITS_ASYM_MAP", "NOISE_TYPES", "PROTOCOLS", "RATE_CHOICES", "NoiseSpec",
    "actual_noise_rate", "cached_noisy_labels", "cifar100_superclass_targets", "cifar10_asym_map",
    "expected_noise_rate", "make_noisy_labels", "method_noise_rate", "noise_cache_key", "resolve_asym_map",
]

NOISE_TYPES = ("none", "sym", "asym", "pairflip", "idn", "file")
PROTOCOLS = ("dividemix", "exclude_true")
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# DivideMix `dataloader_cifar.py` (docs/baselines.md 1.1): 9->1, 2->0, 4->7, 3<->5, here by class name.
_CIFAR10_ASYM = {
    "truck": "automobile", "bird": "airplane", "deer": "horse", "cat": "dog", "dog": "cat",
}
# sklearn's 8x8 digits, shaped like the CIFAR-10 map (one swapped pair plus three one-way flips,
# half the classes), between digits whose 8x8 strokes differ by a few pixels.
DIGITS_ASYM_MAP: dict[int, int] = {
    1: 7, 7: 1,  # one slanted stroke; the 7's top bar or the 1's flag is a pixel or two
    3: 8,  # closing the open left side of a 3 gives an 8
    4: 9,  # closing the open top of a 4 gives a 9
    5: 6,  # closing the lower bowl of a 5 gives a 6
}
# fmt: on
_IDN_NORM_STD = 0.1  # std of the per-sample flip rate, CDR `get_instance_noisy_label` (1.5)
_CACHE_VERSION = 1  # bump when a generator's output changes, so old cache files are not reused


@dataclass(frozen=True)
class NoiseSpec:
    """Which noise goes on the training labels; built once per run from ``cfg.noise``.

    Attributes:
        type: One of ``NOISE_TYPES``.
        rate: Nominal rate r, the share of samples selected (unused by 'none' and 'file').
        protocol: 'dividemix' (docs/baselines.md 1.1) or 'exclude_true' (1.3); see the module docstring.
        asym_map: Explicit ``{source: target}`` class map for 'asym'; overrides every built-in rule.
        file: Label file for 'file': .npy, .npz, .pt/.pth or .json.
        file_key: Entry to read when the file holds a dict, e.g. CIFAR-10N's 'worse_label'.
        index_file: For 'file' whose rows are in another order than the dataset's training images: an array
            (.npy, .npz, .pt/.pth, .json) whose entry i is the file's row for training image i, e.g. the
            image-folder copy's `orig_index` for the published CIFAR-10_human.pt (labels = file[index]).
        index_key: Entry of index_file to read when it holds a dict (`orig_index`).
    """

    type: str
    rate: float = 0.0
    protocol: str = "dividemix"
    asym_map: Mapping[int, int] | None = None
    file: str | None = None
    file_key: str | None = None
    index_file: str | None = None
    index_key: str | None = None

    @classmethod
    def from_config(cls, noise: Any) -> "NoiseSpec":
        """The spec of a run's `noise` config group (NoiseConfig): every field of this class read from it by name,
        so a field added here is read without a second list; `name` (the run directory's) is not the noise's."""
        return cls(**{f.name: noise[f.name] for f in dataclasses.fields(cls)})

    def __post_init__(self) -> None:
        if self.type not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {self.type!r}; valid: {', '.join(NOISE_TYPES)}")
        if self.protocol not in PROTOCOLS:
            valid = ", ".join(PROTOCOLS)
            raise ValueError(f"unknown noise protocol {self.protocol!r}; valid: {valid}")
        if not 0.0 <= self.rate <= 1.0:  # also rejects NaN
            raise ValueError(f"noise rate must be in [0, 1], got {self.rate}")
        if self.type == "file" and not self.file:
            raise ValueError("noise type 'file' needs a label file: set noise.file=<path> (the CIFAR-N presets read "
                             "the published CIFAR-10_human.pt or CIFAR-100_human.pt)")
        self._refuse_ignored_settings()
        # Hydra passes ints and DictConfigs; plain values keep the spec picklable, the key stable.
        object.__setattr__(self, "rate", float(self.rate))
        if self.asym_map is not None:
            object.__setattr__(self, "asym_map", {int(k): int(v) for k, v in self.asym_map.items()})


    def _refuse_ignored_settings(self) -> None:
        """A setting this noise type would not use is an error, not a silent no-op: `noise.rate=0.7` on its
        own would otherwise train on clean labels under a run directory named `none`."""
        if self.type == "none" and self.rate != 0.0:
            raise ValueError(f"noise.rate={self.rate} has no effect with noise type 'none' (clean labels); choose a "
                             f"type, e.g. noise=sym_{self.rate} or noise.type=sym noise.rate={self.rate}")
        if self.type == "file" and self.rate != 0.0:
            raise ValueError(f"noise.rate={self.rate} has no effect with noise type 'file' (the labels come from "
                             "noise.file); drop noise.rate")
        if self.asym_map is not None and self.type != "asym":
            raise ValueError(f"noise.asym_map is used only by noise type 'asym', not {self.type!r}; drop it or "
                             "choose an asym noise (e.g. noise=asym_0.4)")
        for key in ("file", "file_key", "index_file", "index_key"):
            if getattr(self, key) is not None and self.type != "file":
                raise ValueError(f"noise.{key} is used only by noise type 'file', not {self.type!r}; drop it or "
                                 "choose noise=file")


def cifar10_asym_map(class_names: Sequence[str]) -> dict[int, int]:
    """CIFAR-10's asym map looked up by name, so any class order (an image folder) gets it too."""
    names = list(class_names)
    if sorted(names) != sorted(CIFAR10_CLASSES):
        raise ValueError(f"class names are not CIFAR-10's {list(CIFAR10_CLASSES)}: {names}")
    return {names.index(src): names.index(dst) for src, dst in _CIFAR10_ASYM.items()}


def cifar100_superclass_targets(
    true_labels: np.ndarray, coarse_labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """For every sample, a uniformly random other fine class of its true coarse superclass.

    C2D's CIFAR-100 asym noise (docs/baselines.md 1.1). Membership is read from the (fine, coarse) pairs
    in the data, so no table of the 20 superclasses is needed.

    Args:
        true_labels: Fine labels, [N].
        coarse_labels: Coarse labels of the same samples, [N].
        rng: Generator to draw from.

    Returns:
        int64 [N] candidates, none equal to the true label; callers keep the selected ones.
    """
    fine = np.asarray(true_labels, dtype=np.int64)
    coarse = np.asarray(coarse_labels, dtype=np.int64)
    if coarse.shape != fine.shape:
        raise ValueError(f"coarse_labels has shape {coarse.shape}, true labels {fine.shape}")
    # Sorted (coarse, fine) columns keep each superclass contiguous; `col` is each sample's column.
    pairs, col = np.unique(np.stack([coarse, fine]), axis=1, return_inverse=True)
    col = col.reshape(-1)
    if np.unique(pairs[1]).size != pairs.shape[1]:
        raise ValueError("a fine class appears under more than one coarse class")
    _, start, group, size = np.unique(
        pairs[0], return_index=True, return_inverse=True, return_counts=True
    )
    if (size < 2).any():
        raise ValueError("a superclass with a single fine class has no other class to move to")
    first, count = start[group][col], size[group][col]
    offset = rng.integers(1, count)  # a nonzero cyclic shift is uniform over the other members
    return pairs[1][first + (col - first + offset) % count]


def resolve_asym_map(
    dataset: str,
    class_names: Sequence[str] | None,
    num_classes: int,
    explicit: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """The class map of asym noise: the explicit one, else CIFAR-10's (by name) or the digits'."""
    if explicit is not None:
        amap = {int(k): int(v) for k, v in explicit.items()}
    elif dataset == "cifar10" or (
        class_names is not None and sorted(class_names) == sorted(CIFAR10_CLASSES)
    ):
        amap = cifar10_asym_map(CIFAR10_CLASSES if class_names is None else class_names)
    elif dataset == "digits":
        amap = dict(DIGITS_ASYM_MAP)
    else:
        raise ValueError(
            f"no built-in asymmetric noise map for dataset {dataset!r}; pass "
            "noise.asym_map={src: dst}, e.g. noise.asym_map='{3: 5, 5: 3}'"
        )
    bad = {k: v for k, v in amap.items() if not (0 <= k < num_classes and 0 <= v < num_classes)}
    if bad:
        raise ValueError(f"asym_map entries outside [0, {num_classes}): {bad}")
    return amap


def make_noisy_labels(
    spec: NoiseSpec,
    true_labels: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    dataset: str = "",
    class_names: Sequence[str] | None = None,
    coarse_labels: np.ndarray | None = None,
    images: np.ndarray | None = None,
    train_index: np.ndarray | None = None,
    train_total: int | None = None,
) -> np.ndarray:
    """Noisy labels for one training set, by the protocols of the module docstring.

    Args:
        spec: The noise. 'none' or rate 0 returns the true labels; 'file' reads them (and takes no rate).
        true_labels: Clean labels, [N]; not modified.
        num_classes: C.
        seed: Seeds ``np.random.default_rng``; the same seed gives the same labels.
        dataset: 'cifar10', 'cifar100', 'digits', ...; picks the built-in asym rule.
        class_names: Names in label order; CIFAR-10's names get its asym map in any order.
        coarse_labels: CIFAR-100 coarse labels, [N]; CIFAR-100 asym needs them.
        images: 'idn' only: [N, C, H, W] of any dtype, uint8 [N, H, W, C], [N, H, W] or [N, D].
        train_index, train_total: 'file' only: when the training set is a subset (dataset.train_subset), the
            positions of its N samples in the whole training split of `train_total` images; a label file for
            the whole split then gives the subset its rows (a file of exactly N labels is read as it is).

    Returns:
        int64 [N] noisy labels.
    """
    y = _check_labels(np.asarray(true_labels), num_classes, "true labels")
    if spec.type == "file":
        return _labels_from_file(spec, y.size, num_classes, train_index, train_total)
    if spec.type == "none" or spec.rate == 0.0:
        return y
    rng = np.random.default_rng(seed)
    if spec.type == "idn":
        if images is None:
            raise ValueError("noise type 'idn' needs the training images (images=...)")
        return _idn_labels(y, num_classes, spec.rate, images, rng)
    noisy = y.copy()
    idx = rng.permutation(y.size)[: int(spec.rate * y.size)]  # upstream's count, rounding included
    if spec.type == "sym" and spec.protocol == "dividemix":
        noisy[idx] = rng.integers(0, num_classes, idx.size)
    elif spec.type == "sym":
        noisy[idx] = (y[idx] + rng.integers(1, num_classes, idx.size)) % num_classes
    elif spec.type == "pairflip":
        noisy[idx] = (y[idx] + 1) % num_classes
    elif spec.asym_map is None and dataset == "cifar100":
        if coarse_labels is None:
            raise ValueError("CIFAR-100 asym noise stays inside superclasses; pass coarse_labels")
        noisy[idx] = cifar100_superclass_targets(y, coarse_labels, rng)[idx]
    else:
        lut = np.arange(num_classes)
        for src, dst in resolve_asym_map(dataset, class_names, num_classes, spec.asym_map).items():
            lut[src] = dst
        noisy[idx] = lut[y[idx]]
    return noisy


def noise_cache_key(spec: NoiseSpec, dataset_identity: str, seed: int, num_classes: int) -> str:
    """sha256 hex digest of everything that determines the labels.

    ``dataset_identity`` must pin down the training set: name, split, class order and, for 'idn',
    the images. A label file enters by path, size and mtime, so rewriting it changes the key.
    """
    return _digest(_cache_fields(spec, dataset_identity, seed, num_classes))


def cached_noisy_labels(
    spec: NoiseSpec,
    true_labels: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    dataset_identity: str,
    cache_dir: str | os.PathLike[str] | None,
    **make_kwargs: Any,
) -> np.ndarray:
    """``make_noisy_labels`` through ``<cache_dir>/noise/<key>.npy``, so all runs share the labels.

    A ``<key>.json`` sidecar records the spec and the actual rate for inspection. Files are written
    under a temporary name and renamed, so parallel runs never read half an entry.
    ``cache_dir=None`` disables caching.
    """
    if cache_dir is None:
        return make_noisy_labels(spec, true_labels, num_classes, seed=seed, **make_kwargs)
    fields = _cache_fields(spec, dataset_identity, seed, num_classes)
    path = Path(cache_dir) / "noise" / f"{_digest(fields)}.npy"
    if path.exists():
        labels = np.load(path, allow_pickle=False)
        if labels.shape == (len(true_labels),):
            return labels.astype(np.int64)
    labels = make_noisy_labels(spec, true_labels, num_classes, seed=seed, **make_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        np.save(handle, labels)
    sidecar = {**fields, "actual_noise_rate": actual_noise_rate(labels, true_labels)}
    text = json.dumps(sidecar, indent=2).encode()
    with atomic_write(path.with_suffix(".json")) as handle:
        handle.write(text)
    return labels


RATE_CHOICES = ("expected", "nominal", "actual")


def expected_noise_rate(spec: NoiseSpec, num_classes: int, actual: float) -> float:
    """The share of wrong labels this noise is expected to leave (what Co-teaching's forget rate and CDR's
    eps assume known): r*(C-1)/C for DivideMix's symmetric draw, r for the never-the-true-class draws,
    pairflip and IDN; for asym noise and label files, which depend on the class map and the class
    balance, the share actually realised."""
    if spec.type == "none":
        return 0.0
    if spec.type == "sym":
        return spec.rate * (num_classes - 1) / num_classes if spec.protocol == "dividemix" else spec.rate
    if spec.type in ("pairflip", "idn"):
        return spec.rate
    return actual


def method_noise_rate(choice: Any, spec: NoiseSpec, num_classes: int, actual: Optional[float],
                      key: str = "a method's noise rate", dataset: str = "this dataset") -> tuple[float, str]:
    """A method's assumed noise rate and where it came from: `auto`/'expected', 'nominal' (the r in the
    noise's name), 'actual' (the realised share) or a number in [0, 1). `actual` is None where the share of
    wrong labels is unknown (a dataset whose own labels are noisy): then only a number will do. `key` and
    `dataset` name the setting and the data in errors."""
    given = isinstance(choice, (int, float)) and not isinstance(choice, bool)
    if actual is None and not given:
        raise ValueError(f"{key}={choice} needs the share of wrong labels, which is unknown for {dataset} (its "
                         f"own labels are noisy); give {key}=<assumed rate>, e.g. 0.08 for Animal-10N")
    if choice in ("auto", "expected"):
        return expected_noise_rate(spec, num_classes, actual), "expected"
    if choice == "nominal":
        return (0.0 if spec.type in ("none", "file") else spec.rate), "nominal"
    if choice == "actual":
        return actual, "actual"
    if given and 0.0 <= choice < 1.0:
        return float(choice), "given"
    raise ValueError(f"{key} must be auto, one of {', '.join(RATE_CHOICES)} or a number in [0, 1), "
                     f"got {choice!r}")


def actual_noise_rate(noisy: np.ndarray, true: np.ndarray) -> float:
    """Fraction of labels that differ from the truth, to report next to the nominal r."""
    noisy, true = np.asarray(noisy), np.asarray(true)
    if noisy.shape != true.shape:
        raise ValueError(f"noisy labels have shape {noisy.shape}, true labels {true.shape}")
    return float(np.mean(noisy != true)) if true.size else 0.0


def _check_labels(labels: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got num_classes={num_classes}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what} must be 1-D integers, got shape {labels.shape} {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        found = f"{labels.min()}..{labels.max()}"
        raise ValueError(f"{what} must lie in [0, {num_classes}), got {found}")
    return labels.astype(np.int64)  # always a copy


def _idn_labels(
    y: np.ndarray, num_classes: int, rate: float, images: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """CDR's instance-dependent noise (docs/baselines.md 1.5): one [N_c, D] @ [D, C] product per class.

    Pixels are standardised per channel over the training set, as CDR feeds normalised tensors;
    this also makes the labels independent of the input's scale (uint8, [0, 1] or normalised).
    """
    n = y.size
    x = np.asarray(images)
    if x.shape[0] != n:
        raise ValueError(f"idn: {x.shape[0]} images for {n} labels")
    if x.ndim == 4 and x.dtype == np.uint8 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # HWC (torchvision's CIFAR `.data`) -> CDR's CHW flattening
    x = x.reshape(n, x.shape[1] if x.ndim == 4 else 1, -1)  # [N, C_in, H*W]
    members = [np.flatnonzero(y == c) for c in range(num_classes)]
    # Per-class chunks keep float copies small (a CIFAR-10 class: 5000 x 3072 float32 = 61 MB).
    total, total_sq = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for idx in members:
        chunk = x[idx].astype(np.float64)
        total += chunk.sum(axis=(0, 2))
        total_sq += np.square(chunk).sum(axis=(0, 2))
    mean = total / (n * x.shape[2])
    std = np.sqrt(np.maximum(total_sq / (n * x.shape[2]) - mean**2, 0.0))
    shift = mean[:, None].astype(np.float32)
    scale = np.where(std > 0, std, 1.0)[:, None].astype(np.float32)

    # q_i ~ N(rate, 0.1) truncated to [0, 1], by rejection (acceptance >= 1/2 for rate in [0, 1]).
    q = rng.normal(rate, _IDN_NORM_STD, n)
    while (bad := (q < 0) | (q > 1)).any():
        q[bad] = rng.normal(rate, _IDN_NORM_STD, bad.sum())
    u = rng.random(n)
    noisy = y.copy()
    for c, idx in enumerate(members):
        # Drawn for every class, so W[c] does not depend on which classes are present.
        w = rng.standard_normal((x.shape[1] * x.shape[2], num_classes), dtype=np.float32)
        if idx.size == 0:
            continue
        scores = ((x[idx].astype(np.float32) - shift) / scale).reshape(idx.size, -1) @ w
        scores[:, c] = -np.inf
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p *= (q[idx] / p.sum(axis=1))[:, None]
        p[:, c] += 1.0 - q[idx]
        noisy[idx] = np.minimum((np.cumsum(p, axis=1) < u[idx, None]).sum(axis=1), num_classes - 1)
    return noisy


def _existing_file(path: str | os.PathLike[str], key: str = "file") -> Path:
    p = Path(path)
    if not p.is_file():
        what = "label" if key == "file" else "index"
        raise FileNotFoundError(f"noise {what} file not found: {p} (set noise.{key}=<existing file>)")
    return p


def _labels_from_file(spec: NoiseSpec, n: int, num_classes: int, train_index: np.ndarray | None,
                      train_total: int | None) -> np.ndarray:
    """The 'file' labels of the N training images: the file's rows put in the dataset's order (index_file), then,
    for a file of the whole split, the rows of the subset trained on."""
    labels = _read_array(spec.file or "", spec.file_key)
    source = str(spec.file)
    if spec.index_file:
        index = _read_array(spec.index_file, spec.index_key, "index_file")
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"noise.index_file {spec.index_file} must hold a 1-D integer array, got {index.dtype} "
                             f"{index.shape}")
        if index.size and (index.min() < 0 or index.max() >= len(labels)):
            raise ValueError(f"noise.index_file {spec.index_file} points at rows {index.min()}..{index.max()}, but "
                             f"{spec.file} holds {len(labels)} labels")
        labels, source = labels[index], f"{spec.file} reordered by {spec.index_file}"
    whole_split = train_index is not None and train_total is not None and labels.shape == (train_total,)
    if whole_split and labels.shape != (n,):
        labels = labels[train_index]
    elif labels.shape != (n,):
        expected = f"{n} labels" + (f" (the subset) or {train_total} (the whole training split)"
                                    if train_index is not None and train_total is not None else "")
        raise ValueError(f"noise label file {source} holds shape {labels.shape}, expected {expected}")
    return _check_labels(labels, num_classes, f"labels in {source}")


def _read_array(path: str, key: str | None, setting: str = "file") -> np.ndarray:
    """The array a label or index file (`noise.<setting>`) holds, under `key` when it holds a dict."""
    p = _existing_file(path, setting)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        raw: Any = np.load(p, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as archive:
            raw = _pick(archive, key, p)
    elif suffix in (".pt", ".pth"):
        raw = _torch_load(p)
    elif suffix == ".json":
        raw = json.loads(p.read_text())
    else:
        raise ValueError(f"unsupported noise label file {p}: use .npy, .npz, .pt/.pth or .json")
    if isinstance(raw, Mapping):
        raw = _pick(raw, key, p)
    return np.asarray(raw.numpy() if hasattr(raw, "numpy") else raw)  # torch tensor or array-like


def _pick(table: Mapping[str, Any], key: str | None, path: Path) -> Any:
    if key is None or key not in table:
        given = "no noise.file_key" if key is None else f"no key {key!r}"
        raise ValueError(
            f"{path} holds a dict with {given}; set noise.file_key to one of {sorted(table)}"
        )
    return table[key]


def _torch_load(path: Path) -> Any:
    import torch  # only .pt label files need torch

    # CIFAR-10N's .pt holds numpy arrays, which weights_only refuses unless numpy's array rebuilder
    # is allowed; numpy 1 pickles name it numpy.core.multiarray, numpy 2 moved it to numpy._core.
    rebuild = np.zeros(0).__reduce__()[0]
    int_dtypes = {type(np.dtype(code)) for code in np.typecodes["AllInteger"]}
    allowed = [rebuild, (rebuild, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype]
    with torch.serialization.safe_globals([*allowed, *int_dtypes]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _cache_fields(spec: NoiseSpec, dataset_identity: str, seed: int, num_classes: int) -> dict:
    fields = dataclasses.asdict(spec)
    fields["asym_map"] = None if spec.asym_map is None else sorted(spec.asym_map.items())
    for name in ("file", "index_file"):  # a file enters by path, size and mtime
        path = getattr(spec, name)
        if path:
            stat = _existing_file(path, name).stat()
            prefix = "" if name == "file" else "index_"
            fields.update({name: str(Path(path).resolve()), f"{prefix}size": stat.st_size,
                           f"{prefix}mtime": stat.st_mtime_ns})
    fields.update(dataset=dataset_identity, seed=int(seed), num_classes=int(num_classes))
    return {**fields, "version": _CACHE_VERSION}


def _digest(fields: Mapping[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
