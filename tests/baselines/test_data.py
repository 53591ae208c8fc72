"""In-memory datasets: digits, CIFAR from torchvision's pickles, cached image folders, subsets."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
from fake_data import (
    CIFAR10_CLASSES,
    fine_to_coarse,
    write_fake_cifar10,
    write_fake_cifar100,
    write_image_folder,
)

import baselines.common.data as data_module
from baselines.common.data import (
    DatasetError,
    class_balanced_subset,
    default_cache_dir,
    load_dataset,
)


def _stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = images.astype(np.float64) / 255.0
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


# ------------------------------------------------------------------------------------------- digits


def test_digits_shapes_split_and_stats():
    ds = load_dataset("digits", seed=0)
    assert ds.train_images.shape == (1437, 3, 32, 32) and ds.test_images.shape == (360, 3, 32, 32)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert ds.num_classes == 10 and ds.class_names == [str(d) for d in range(10)]
    assert ds.image_shape == (3, 32, 32) and ds.coarse_labels is None
    assert ds.train_images.max() == 255  # 16 (the digits maximum) maps to 255
    assert (ds.train_images[:, 0] == ds.train_images[:, 2]).all()  # grey replicated to 3 channels
    # Stratified 80/20: each class's test share is within one sample of 20 %.
    train_counts = np.bincount(ds.train_labels, minlength=10)
    test_counts = np.bincount(ds.test_labels, minlength=10)
    assert np.abs(test_counts - 0.2 * (train_counts + test_counts)).max() <= 1
    mean, std = _stats(ds.train_images)
    np.testing.assert_allclose(ds.mean, mean, atol=1e-9)
    np.testing.assert_allclose(ds.std, std, atol=1e-9)


def test_digits_split_is_fixed_by_seed():
    a, b, c = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert a.identity == b.identity
    assert a.identity != c.identity
    assert not np.array_equal(a.train_labels, c.train_labels)


# ------------------------------------------------------------------------------------------ subsets


def test_a_subset_knows_where_its_samples_sit_in_the_whole_split():
    full = load_dataset("digits", seed=0)
    sub = load_dataset("digits", seed=0, train_subset=105)
    assert full.train_index is None and sub.train_total == len(full.train_labels)
    np.testing.assert_array_equal(full.train_labels[sub.train_index], sub.train_labels)
    np.testing.assert_array_equal(full.train_images[sub.train_index], sub.train_images)


def test_train_subset_is_balanced_and_changes_identity():
    full = load_dataset("digits", seed=0)
    sub = load_dataset("digits", seed=0, train_subset=105)
    assert len(sub.train_labels) == 105 and len(sub.test_labels) == len(full.test_labels)
    counts = np.bincount(sub.train_labels, minlength=10)
    assert counts.max() - counts.min() == 1  # 105 = 10 x 10 + 5
    assert "train_subset=105" in sub.identity and sub.identity != full.identity
    again = load_dataset("digits", seed=0, train_subset=105)
    np.testing.assert_array_equal(sub.train_images, again.train_images)
    other = load_dataset("digits", seed=0, train_subset=100)
    assert other.identity != sub.identity


def test_test_subset_is_a_balanced_part_of_the_test_split_and_leaves_training_alone():
    full = load_dataset("digits", seed=0)
    sub = load_dataset("digits", seed=0, train_subset=105, test_subset=50)
    np.testing.assert_array_equal(np.bincount(sub.test_labels, minlength=10), [5] * 10)
    picked = class_balanced_subset(full.test_labels, 50, seed=0)
    np.testing.assert_array_equal(sub.test_images, full.test_images[picked])
    np.testing.assert_array_equal(sub.test_labels, full.test_labels[picked])
    train_only = load_dataset("digits", seed=0, train_subset=105)
    np.testing.assert_array_equal(sub.train_images, train_only.train_images)  # the training subset is the same
    assert sub.identity == f"{train_only.identity}|test_subset=50|subset_seed=0"
    assert sub.content_digest() != train_only.content_digest()  # a resume checks it: another test set is refused
    capped = load_dataset("digits", seed=0, test_subset=1000)  # at most: a split that is smaller stays whole
    np.testing.assert_array_equal(capped.test_labels, full.test_labels)
    assert capped.identity == full.identity


def test_class_balanced_subset_respects_small_classes():
    labels = np.array([0] * 2 + [1] * 100 + [2] * 30)
    idx = class_balanced_subset(labels, 40, seed=3)
    assert (np.diff(idx) > 0).all()  # sorted, unique
    np.testing.assert_array_equal(np.bincount(labels[idx]), [2, 19, 19])
    np.testing.assert_array_equal(idx, class_balanced_subset(labels, 40, seed=3))
    assert len(class_balanced_subset(labels, len(labels), seed=0)) == len(labels)


def test_too_large_subset_says_the_maximum():
    with pytest.raises(DatasetError, match="maximum is 1437"):
        load_dataset("digits", train_subset=1438)
    with pytest.raises(DatasetError, match="positive integer"):
        class_balanced_subset(np.zeros(5), 0, seed=0)
    with pytest.raises(DatasetError, match="test_subset must be a positive integer, got 0"):
        load_dataset("digits", test_subset=0)


# -------------------------------------------------------------------------------------------- CIFAR


def test_fake_cifar10_loads_as_written(tmp_path):
    written = write_fake_cifar10(tmp_path, n_train=50, n_test=20)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(ds, key), written[key])
    assert ds.train_images.shape == (50, 3, 32, 32) and ds.train_labels.dtype == np.int64
    assert ds.class_names == CIFAR10_CLASSES and ds.coarse_labels is None
    # DivideMix's constants (docs/baselines.md 1.4), not statistics of the fake.
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2023, 0.1994, 0.2010)
    # A different fake must not share the real data's identity (it keys the noise cache).
    write_fake_cifar10(tmp_path / "other", seed=1)
    assert load_dataset("cifar10", root=tmp_path / "other", download=False).identity != ds.identity


def test_fake_cifar100_has_coarse_labels(tmp_path):
    written = write_fake_cifar100(tmp_path, n_train=60, n_test=20)
    ds = load_dataset("cifar100", root=tmp_path, download=False)
    assert ds.num_classes == 100 and ds.train_images.shape == (60, 3, 32, 32)
    np.testing.assert_array_equal(ds.train_labels, written["train_labels"])
    np.testing.assert_array_equal(ds.coarse_labels, written["coarse_labels"])
    assert ds.mean == (0.507, 0.487, 0.441) and ds.std == (0.267, 0.256, 0.276)
    sub = load_dataset("cifar100", root=tmp_path, download=False, train_subset=25, seed=1)
    np.testing.assert_array_equal(sub.coarse_labels, fine_to_coarse(sub.train_labels))


def test_cifar_pickles_with_bytes_keys(tmp_path):
    import pickle

    write_fake_cifar10(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [n.encode() for n in CIFAR10_CLASSES]}))
    assert load_dataset("cifar10", root=tmp_path, download=False).class_names == CIFAR10_CLASSES


def test_missing_cifar_without_download_names_offline_options(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar100", root=tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert "dataset=digits" in message and "dataset=image_folder" in message
    assert "cifar-100-python" in message and "\n" not in message


def test_missing_cifar_is_downloaded_or_explained(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")

    def fake_download(root, train, download):
        assert download
        write_fake_cifar10(root)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_download)
    assert len(load_dataset("cifar10", root=tmp_path / "fetched").train_labels) == 50

    def offline(root, train, download):
        raise OSError("Name or service not known\n(more detail)")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetError, match="download failed .*dataset=digits") as info:
        load_dataset("cifar10", root=tmp_path / "offline")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------- image folder


def test_image_folder_decodes_and_reuses_the_cache(tmp_path, monkeypatch):
    written = write_image_folder(tmp_path / "imgs", ["ant", "bee", "cat"], n_per_class=4)
    cache = tmp_path / "cache"
    ds = load_dataset("image_folder", root=tmp_path / "imgs", cache_dir=cache)
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(ds, key), written[key])
    assert ds.class_names == ["ant", "bee", "cat"] and ds.image_shape == (3, 32, 32)
    mean, std = _stats(written["train_images"])
    np.testing.assert_allclose(ds.mean, mean, atol=1e-9)
    np.testing.assert_allclose(ds.std, std, atol=1e-9)
    cached = list((cache / "image_folder").glob("*.npz"))
    assert len(cached) == 1 and cached[0].stem in ds.identity

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    with monkeypatch.context() as patch:
        patch.setattr(PIL.Image, "open", no_decoding)
        again = load_dataset("image_folder", root=tmp_path / "imgs", cache_dir=cache)
    np.testing.assert_array_equal(again.train_images, ds.train_images)
    assert again.identity == ds.identity and again.mean == ds.mean

    PIL.Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "train" / "bee" / "extra.png")
    grown = load_dataset("image_folder", root=tmp_path / "imgs", cache_dir=cache)
    assert len(grown.train_labels) == 13 and grown.identity != ds.identity
    assert len(list((cache / "image_folder").glob("*.npz"))) == 2


def test_image_folder_sorts_classes_and_reads_jpeg(tmp_path):
    write_image_folder(tmp_path, ["zebra", "ant"], n_per_class=2, size=(24, 40), fmt="jpg")
    ds = load_dataset("image_folder", root=tmp_path, cache_dir=tmp_path / "cache")
    assert ds.class_names == ["ant", "zebra"] and ds.image_shape == (3, 24, 40)
    np.testing.assert_array_equal(ds.train_labels, [0, 0, 1, 1])


def test_image_folder_rebuilds_a_corrupt_cache(tmp_path):
    write_image_folder(tmp_path / "imgs", ["a", "b"], n_per_class=2)
    first = load_dataset("image_folder", root=tmp_path / "imgs", cache_dir=tmp_path / "cache")
    (cached,) = (tmp_path / "cache" / "image_folder").glob("*.npz")
    cached.write_bytes(b"not a zip")
    again = load_dataset("image_folder", root=tmp_path / "imgs", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.train_images, first.train_images)


def test_image_folder_decodes_in_worker_processes(tmp_path, monkeypatch):
    # Large folders are split across processes; force that path on a small one.
    monkeypatch.setattr(data_module, "_PARALLEL_MIN_FILES", 1)
    written = write_image_folder(tmp_path, ["a", "b", "c"], n_per_class=5)
    ds = load_dataset("image_folder", root=tmp_path, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ds.train_images, written["train_images"])
    np.testing.assert_array_equal(ds.test_images, written["test_images"])
    PIL.Image.new("RGB", (32, 30)).save(tmp_path / "test" / "c" / "odd.png")
    with pytest.raises(DatasetError, match=r"odd\.png is 32x30"):
        load_dataset("image_folder", root=tmp_path, cache_dir=tmp_path / "cache")


def test_image_folder_class_mismatch(tmp_path):
    write_image_folder(tmp_path, ["a", "b"], n_per_class=1)
    (tmp_path / "test" / "c").mkdir()
    with pytest.raises(DatasetError, match=r"only in test: \['c'\]"):
        load_dataset("image_folder", root=tmp_path, cache_dir=tmp_path / "cache")


def test_image_folder_missing_root_names_the_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere.*train/<class>"):
        load_dataset("image_folder", root=tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match="needs root="):
        load_dataset("image_folder", cache_dir=tmp_path / "cache")


def test_image_folder_mixed_sizes_names_the_file(tmp_path):
    write_image_folder(tmp_path, ["a", "b"], n_per_class=2)
    PIL.Image.new("RGB", (30, 32)).save(tmp_path / "test" / "b" / "odd.png")
    with pytest.raises(DatasetError, match=r"odd\.png is 30x32 .* one size"):
        load_dataset("image_folder", root=tmp_path, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------------ general


def test_unknown_dataset_lists_the_names():
    with pytest.raises(DatasetError, match="digits, cifar10, cifar100, image_folder"):
        load_dataset("mnist")


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SANM_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SANM_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "sanm_plugin"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "sanm_plugin"
