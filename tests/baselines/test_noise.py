"""`baselines.common.noise` against the noise protocols of docs/baselines.md 1.1, 1.3 and 1.5."""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.common import noise
from baselines.common.noise import (
    CIFAR10_CLASSES,
    DIGITS_ASYM_MAP,
    NoiseSpec,
    actual_noise_rate,
    cached_noisy_labels,
    cifar10_asym_map,
    cifar100_superclass_targets,
    make_noisy_labels,
    noise_cache_key,
    resolve_asym_map,
)

N, C = 20000, 10


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, C, N)


def cifar100_coarse(fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coarse labels from a shuffled fine -> coarse table (5 fine ids each, not consecutive)."""
    fine_to_coarse = np.random.default_rng(1).permutation(100) // 5
    return fine_to_coarse[fine], fine_to_coarse


# --- symmetric and pairflip -----------------------------------------------------------------------


def test_sym_dividemix_keeps_true_class_sometimes(labels):
    noisy = make_noisy_labels(NoiseSpec("sym", 0.5), labels, C, seed=123)
    assert abs(actual_noise_rate(noisy, labels) - 0.5 * (C - 1) / C) < 0.01  # 0.45, table in 1.1


def test_sym_exclude_true_flips_every_selected_sample(labels):
    noisy = make_noisy_labels(NoiseSpec("sym", 0.5, protocol="exclude_true"), labels, C, seed=123)
    assert abs(actual_noise_rate(noisy, labels) - 0.5) < 0.01
    assert np.count_nonzero(noisy != labels) == int(0.5 * N)  # every selected sample moved


@pytest.mark.parametrize("rate", [0.2, 0.45, 0.8, 0.9, 1.0])
def test_dividemix_touches_exactly_int_r_n(labels, rate):
    flipped = make_noisy_labels(NoiseSpec("pairflip", rate), labels, C, seed=5) != labels
    assert flipped.sum() == int(rate * N)
    # The permutation is drawn first: sym with the same seed selects the same samples, no others.
    sym_changed = make_noisy_labels(NoiseSpec("sym", rate), labels, C, seed=5) != labels
    assert not (sym_changed & ~flipped).any()


def test_pairflip_moves_to_next_class_with_wrap(labels):
    noisy = make_noisy_labels(NoiseSpec("pairflip", 0.4), labels, C, seed=0)
    changed = noisy != labels
    np.testing.assert_array_equal(noisy[changed], (labels[changed] + 1) % C)
    assert (noisy[changed & (labels == C - 1)] == 0).all() and (changed & (labels == C - 1)).any()


def test_none_and_rate_zero_return_a_copy(labels):
    before = labels.copy()
    for spec in (NoiseSpec("none"), NoiseSpec("sym", 0.0), NoiseSpec("idn", 0.0)):
        out = make_noisy_labels(spec, labels, C, seed=0)
        np.testing.assert_array_equal(out, labels)
        assert out.dtype == np.int64 and not np.shares_memory(out, labels)
    np.testing.assert_array_equal(labels, before)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["sym", "pairflip", "asym"]),
    protocol=st.sampled_from(noise.PROTOCOLS),
    rate=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_output_is_valid_and_input_untouched(kind, protocol, rate, seed):
    y = np.random.default_rng(seed).integers(0, C, 300).astype(np.int32)
    before = y.copy()
    noisy = make_noisy_labels(NoiseSpec(kind, rate, protocol), y, C, seed=seed, dataset="cifar10")
    assert noisy.dtype == np.int64 and noisy.shape == y.shape
    assert noisy.min() >= 0 and noisy.max() < C
    assert np.count_nonzero(noisy != y) <= int(rate * y.size)
    np.testing.assert_array_equal(y, before)


# --- asymmetric -----------------------------------------------------------------------------------


def test_cifar10_asym_flips_only_source_classes(labels):
    noisy = make_noisy_labels(NoiseSpec("asym", 0.4), labels, C, seed=123, dataset="cifar10")
    expected = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}  # docs/baselines.md 1.1
    assert cifar10_asym_map(CIFAR10_CLASSES) == expected
    changed = noisy != labels
    assert set(np.unique(labels[changed])) == set(expected)
    for src, dst in expected.items():
        assert (noisy[changed & (labels == src)] == dst).all()
        assert abs((changed & (labels == src)).sum() / (labels == src).sum() - 0.4) < 0.05
    assert abs(actual_noise_rate(noisy, labels) - 0.2) < 0.01  # half the classes flip


def test_cifar10_asym_map_follows_names_in_any_order(labels):
    names = list(np.random.default_rng(3).permutation(CIFAR10_CLASSES))
    by_name = dict(truck="automobile", bird="airplane", deer="horse", cat="dog", dog="cat")
    # No dataset name: the class names alone select the CIFAR-10 map.
    noisy = make_noisy_labels(NoiseSpec("asym", 0.4), labels, C, seed=0, class_names=names)
    changed = noisy != labels
    assert changed.any()
    for t, n in zip(labels[changed], noisy[changed]):
        assert by_name[names[t]] == names[n]
    amap = cifar10_asym_map(names)
    cat, dog = names.index("cat"), names.index("dog")
    assert amap[cat] == dog and amap[dog] == cat


def test_cifar10_asym_map_rejects_other_names():
    with pytest.raises(ValueError, match="CIFAR-10"):
        cifar10_asym_map(["a", "b"])


def test_explicit_asym_map_wins(labels):
    spec = NoiseSpec("asym", 1.0, asym_map={0: 1})
    noisy = make_noisy_labels(spec, labels, C, seed=0, dataset="cifar10")
    np.testing.assert_array_equal(noisy, np.where(labels == 0, 1, labels))


def test_resolve_asym_map():
    assert resolve_asym_map("digits", None, 10) == DIGITS_ASYM_MAP
    assert resolve_asym_map("cifar10", None, 10) == cifar10_asym_map(CIFAR10_CLASSES)
    assert resolve_asym_map("anything", None, 4, explicit={3: 0}) == {3: 0}
    with pytest.raises(ValueError, match=r"noise\.asym_map"):
        resolve_asym_map("svhn", [str(i) for i in range(10)], 10)
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        resolve_asym_map("x", None, 4, explicit={3: 4})


def test_digits_map_flips_about_half_the_classes():
    assert 4 <= len(DIGITS_ASYM_MAP) <= 6
    assert all(0 <= k < 10 and 0 <= v < 10 and k != v for k, v in DIGITS_ASYM_MAP.items())


def test_cifar100_asym_stays_inside_superclass():
    fine = np.random.default_rng(0).integers(0, 100, N)
    coarse, _ = cifar100_coarse(fine)
    spec = NoiseSpec("asym", 0.4)
    noisy = make_noisy_labels(spec, fine, 100, seed=0, dataset="cifar100", coarse_labels=coarse)
    _, fine_to_coarse = cifar100_coarse(noisy)
    np.testing.assert_array_equal(fine_to_coarse[noisy], coarse)
    assert np.count_nonzero(noisy != fine) == int(0.4 * N)  # never kept the true class
    with pytest.raises(ValueError, match="coarse_labels"):
        make_noisy_labels(NoiseSpec("asym", 0.4), fine, 100, seed=0, dataset="cifar100")


def test_cifar100_superclass_targets_uniform_over_other_members():
    fine = np.repeat(np.arange(100), 200)
    coarse, fine_to_coarse = cifar100_coarse(fine)
    targets = cifar100_superclass_targets(fine, coarse, np.random.default_rng(0))
    assert (targets != fine).all()
    from_zero = targets[fine == 0]
    siblings = np.flatnonzero(fine_to_coarse == fine_to_coarse[0])
    assert set(from_zero) == set(siblings) - {0}
    assert np.bincount(from_zero).max() < 80  # 4 siblings, 200 draws: about 50 each


# --- determinism ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sym", "asym", "pairflip"])
def test_same_seed_same_labels(labels, kind):
    spec = NoiseSpec(kind, 0.5)
    a = make_noisy_labels(spec, labels, C, seed=1, dataset="cifar10")
    np.testing.assert_array_equal(a, make_noisy_labels(spec, labels, C, seed=1, dataset="cifar10"))
    assert (a != make_noisy_labels(spec, labels, C, seed=2, dataset="cifar10")).any()


# --- instance-dependent ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idn_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3000, 8, 8, 3), dtype=np.uint8), rng.integers(0, C, 3000)


def test_idn_rate_close_to_nominal(idn_data):
    images, y = idn_data
    noisy = make_noisy_labels(NoiseSpec("idn", 0.4), y, C, seed=0, images=images)
    assert noisy.shape == y.shape and noisy.dtype == np.int64
    assert noisy.min() >= 0 and noisy.max() < C
    assert abs(actual_noise_rate(noisy, y) - 0.4) < 0.05


def test_idn_deterministic_per_seed_and_layout_free(idn_data):
    images, y = idn_data
    spec = NoiseSpec("idn", 0.3)
    a = make_noisy_labels(spec, y, C, seed=7, images=images)
    np.testing.assert_array_equal(a, make_noisy_labels(spec, y, C, seed=7, images=images))
    assert (a != make_noisy_labels(spec, y, C, seed=8, images=images)).any()
    # Per-channel standardisation makes uint8 HWC and [0, 1] float CHW the same input.
    chw = images.transpose(0, 3, 1, 2).astype(np.float32) / 255
    assert np.mean(a == make_noisy_labels(spec, y, C, seed=7, images=chw)) > 0.999


def test_idn_flips_depend_on_pixels(idn_data):
    """At rate 1 most labels move; copies of one image share a target, other images do not."""
    images, y = idn_data
    images = images.copy()
    same, other = np.flatnonzero(y == 3)[:40], np.flatnonzero(y == 3)[40:]
    images[same] = images[same[0]]
    noisy = make_noisy_labels(NoiseSpec("idn", 1.0), y, C, seed=0, images=images)
    # E[q_i] for N(1, 0.1) truncated to [0, 1] is 1 - 0.1 * 0.798 = 0.92.
    assert abs((noisy != y).mean() - 0.92) < 0.02

    def mode_share(idx: np.ndarray) -> float:
        moved = noisy[idx][noisy[idx] != 3]
        return np.bincount(moved).max() / moved.size

    assert mode_share(same) > 0.6 and mode_share(other) < 0.4


def test_idn_needs_images(labels):
    with pytest.raises(ValueError, match="images"):
        make_noisy_labels(NoiseSpec("idn", 0.2), labels, C, seed=0)


# --- spec validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("rate, shown", [(1.3, "1.3"), (-0.1, "-0.1"), (math.nan, "nan")])
def test_bad_rate_rejected(rate, shown):
    with pytest.raises(ValueError, match=rf"\[0, 1\], got {shown}"):
        NoiseSpec("sym", rate)


def test_unknown_type_and_protocol_rejected():
    with pytest.raises(ValueError, match="'symmetric'.*sym, asym"):
        NoiseSpec("symmetric", 0.2)
    with pytest.raises(ValueError, match="'ours'.*dividemix, exclude_true"):
        NoiseSpec("sym", 0.2, protocol="ours")
    with pytest.raises(ValueError, match="noise.file"):
        NoiseSpec("file")


def test_bad_true_labels_rejected():
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        make_noisy_labels(NoiseSpec("sym", 0.2), np.array([0, 10]), C, seed=0)


# --- label files ----------------------------------------------------------------------------------


@pytest.fixture
def file_labels() -> np.ndarray:
    return np.random.default_rng(4).integers(0, C, 50)


def test_file_npy_and_npz(tmp_path, file_labels):
    np.save(tmp_path / "l.npy", file_labels)
    np.savez(tmp_path / "l.npz", random_label1=file_labels)
    y = np.zeros(50, int)
    spec = NoiseSpec("file", file=str(tmp_path / "l.npy"))
    np.testing.assert_array_equal(make_noisy_labels(spec, y, C, seed=0), file_labels)
    spec = NoiseSpec("file", file=str(tmp_path / "l.npz"), file_key="random_label1")
    np.testing.assert_array_equal(make_noisy_labels(spec, y, C, seed=0), file_labels)


def test_file_json_list_and_dict(tmp_path, file_labels):
    (tmp_path / "l.json").write_text(json.dumps(file_labels.tolist()))
    (tmp_path / "d.json").write_text(json.dumps({"worse_label": file_labels.tolist()}))
    y = np.zeros(50, int)
    spec = NoiseSpec("file", file=str(tmp_path / "l.json"))
    np.testing.assert_array_equal(make_noisy_labels(spec, y, C, seed=0), file_labels)
    spec = NoiseSpec("file", file=str(tmp_path / "d.json"), file_key="worse_label")
    np.testing.assert_array_equal(make_noisy_labels(spec, y, C, seed=0), file_labels)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_file_pt_dict_with_key(tmp_path, file_labels, as_tensor):
    """CIFAR-10N ships a .pt dict of numpy arrays; weights_only loading takes arrays and tensors."""
    value = torch.from_numpy(file_labels) if as_tensor else file_labels
    torch.save({"aggre_label": value, "clean_label": file_labels}, tmp_path / "h.pt")
    spec = NoiseSpec("file", file=str(tmp_path / "h.pt"), file_key="aggre_label")
    y = np.zeros(50, int)
    np.testing.assert_array_equal(make_noisy_labels(spec, y, C, seed=0), file_labels)
    wrong = NoiseSpec("file", file=spec.file, file_key="worse_label")
    with pytest.raises(ValueError, match=r"'worse_label'.*\['aggre_label', 'clean_label'\]"):
        make_noisy_labels(wrong, y, C, seed=0)


def test_file_errors(tmp_path, file_labels):
    y = np.zeros(50, int)
    missing = str(tmp_path / "nope.npy")
    with pytest.raises(FileNotFoundError, match=r"nope\.npy.*noise\.file"):
        make_noisy_labels(NoiseSpec("file", file=missing), y, C, seed=0)
    np.save(tmp_path / "short.npy", file_labels[:40])
    with pytest.raises(ValueError, match=r"short\.npy.*expected 50"):
        make_noisy_labels(NoiseSpec("file", file=str(tmp_path / "short.npy")), y, C, seed=0)
    np.save(tmp_path / "big.npy", np.full(50, C))
    with pytest.raises(ValueError, match=r"big\.npy.*\[0, 10\)"):
        make_noisy_labels(NoiseSpec("file", file=str(tmp_path / "big.npy")), y, C, seed=0)


def test_a_file_of_the_whole_split_gives_a_subset_its_rows(tmp_path, file_labels):
    """CIFAR-10N labels all 50k images; dataset.train_subset trains on some of them."""
    np.savez(tmp_path / "n.npz", worse_label=file_labels)
    spec = NoiseSpec("file", file=str(tmp_path / "n.npz"), file_key="worse_label")
    rows = np.array([3, 7, 8, 20, 49])
    got = make_noisy_labels(spec, np.zeros(5, int), C, seed=0, train_index=rows, train_total=50)
    np.testing.assert_array_equal(got, file_labels[rows])
    np.save(tmp_path / "five.npy", file_labels[:5])  # a file for exactly the subset is read as it is
    own = NoiseSpec("file", file=str(tmp_path / "five.npy"))
    np.testing.assert_array_equal(make_noisy_labels(own, np.zeros(5, int), C, seed=0, train_index=rows,
                                                    train_total=50), file_labels[:5])
    np.save(tmp_path / "other.npy", file_labels[:30])
    with pytest.raises(ValueError, match=r"other\.npy holds shape \(30,\), expected 5 labels \(the subset\) or 50 "):
        make_noisy_labels(NoiseSpec("file", file=str(tmp_path / "other.npy")), np.zeros(5, int), C, seed=0,
                          train_index=rows, train_total=50)


def test_an_index_file_puts_the_published_order_into_the_images_order(tmp_path, file_labels):
    """labels_in_folder_order = published[orig_index] (the CIFAR-10 JPEG copy's orig_index), then the subset."""
    order = np.random.default_rng(5).permutation(50)
    torch.save({"worse_label": file_labels}, tmp_path / "CIFAR-10_human.pt")
    np.savez(tmp_path / "order.npz", orig_index=order)
    spec = NoiseSpec("file", file=str(tmp_path / "CIFAR-10_human.pt"), file_key="worse_label",
                     index_file=str(tmp_path / "order.npz"), index_key="orig_index")
    np.testing.assert_array_equal(make_noisy_labels(spec, np.zeros(50, int), C, seed=0), file_labels[order])
    rows = np.array([0, 11, 42])
    np.testing.assert_array_equal(make_noisy_labels(spec, np.zeros(3, int), C, seed=0, train_index=rows,
                                                    train_total=50), file_labels[order][rows])
    np.save(tmp_path / "far.npy", np.arange(51))
    with pytest.raises(ValueError, match=r"far\.npy points at rows 0\.\.50, but .* holds 50 labels"):
        make_noisy_labels(NoiseSpec("file", file=spec.file, file_key="worse_label",
                                    index_file=str(tmp_path / "far.npy")), np.zeros(51, int), C, seed=0)
    with pytest.raises(FileNotFoundError, match=r"noise index file not found: .*nope\.npy \(set noise\.index_file"):
        make_noisy_labels(NoiseSpec("file", file=spec.file, file_key="worse_label",
                                    index_file=str(tmp_path / "nope.npy")), np.zeros(50, int), C, seed=0)
    with pytest.raises(ValueError, match="noise.index_file is used only by noise type 'file'"):
        NoiseSpec("sym", 0.2, index_file=str(tmp_path / "order.npz"))


# --- cache ----------------------------------------------------------------------------------------


def test_cache_reuses_file(tmp_path, labels, monkeypatch):
    spec = NoiseSpec("sym", 0.5)
    kwargs = dict(seed=1, dataset_identity="cifar10-train", cache_dir=tmp_path)
    first = cached_noisy_labels(spec, labels, C, **kwargs)
    key = noise_cache_key(spec, "cifar10-train", 1, C)
    assert sorted(p.name for p in (tmp_path / "noise").iterdir()) == [f"{key}.json", f"{key}.npy"]
    sidecar = json.loads((tmp_path / "noise" / f"{key}.json").read_text())
    assert sidecar["type"] == "sym" and abs(sidecar["actual_noise_rate"] - 0.45) < 0.01

    def fail(*args, **kwargs):
        raise AssertionError("regenerated instead of loading the cache")

    monkeypatch.setattr(noise, "make_noisy_labels", fail)
    second = cached_noisy_labels(spec, labels, C, **kwargs)
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.int64


def test_cache_regenerates_on_length_mismatch(tmp_path, labels):
    spec = NoiseSpec("sym", 0.5)
    key = noise_cache_key(spec, "d", 0, C)
    (tmp_path / "noise").mkdir()
    np.save(tmp_path / "noise" / f"{key}.npy", np.zeros(3, np.int64))
    out = cached_noisy_labels(spec, labels, C, seed=0, dataset_identity="d", cache_dir=tmp_path)
    assert out.shape == labels.shape
    assert np.load(tmp_path / "noise" / f"{key}.npy").shape == labels.shape


def test_cache_none_does_not_write(tmp_path, labels, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = NoiseSpec("sym", 0.5)
    out = cached_noisy_labels(spec, labels, C, seed=0, dataset_identity="d", cache_dir=None)
    assert out.shape == labels.shape and not os.listdir(tmp_path)


def test_cache_key_covers_everything(tmp_path):
    base = noise_cache_key(NoiseSpec("sym", 0.5), "cifar10", 1, 10)
    assert len(base) == 64 and base == noise_cache_key(NoiseSpec("sym", 0.5), "cifar10", 1, 10)
    others = [
        noise_cache_key(NoiseSpec("sym", 0.4), "cifar10", 1, 10),
        noise_cache_key(NoiseSpec("asym", 0.5), "cifar10", 1, 10),
        noise_cache_key(NoiseSpec("sym", 0.5, protocol="exclude_true"), "cifar10", 1, 10),
        noise_cache_key(NoiseSpec("asym", 0.5, asym_map={1: 2}), "cifar10", 1, 10),
        noise_cache_key(NoiseSpec("sym", 0.5), "cifar100", 1, 10),
        noise_cache_key(NoiseSpec("sym", 0.5), "cifar10", 2, 10),
        noise_cache_key(NoiseSpec("sym", 0.5), "cifar10", 1, 100),
    ]
    assert len({base, *others}) == 1 + len(others)
    # A Hydra-style int rate and a reordered map give the same key as their plain equivalents.
    one = noise_cache_key(NoiseSpec("sym", 1), "c", 0, 10)
    assert one == noise_cache_key(NoiseSpec("sym", 1.0), "c", 0, 10)
    a = noise_cache_key(NoiseSpec("asym", 0.5, asym_map={1: 2, 3: 4}), "c", 0, 10)
    assert a == noise_cache_key(NoiseSpec("asym", 0.5, asym_map={3: 4, 1: 2}), "c", 0, 10)
    # Rewriting the label file changes the key.
    path = tmp_path / "l.npy"
    np.save(path, np.zeros(5, np.int64))
    before = noise_cache_key(NoiseSpec("file", file=str(path)), "c", 0, 10)
    np.save(path, np.zeros(6, np.int64))
    assert before != noise_cache_key(NoiseSpec("file", file=str(path)), "c", 0, 10)


def test_atomic_write_leaves_no_temp_files(tmp_path, labels, monkeypatch):
    kwargs = dict(seed=0, dataset_identity="d", cache_dir=tmp_path)
    cached_noisy_labels(NoiseSpec("sym", 0.2), labels, C, **kwargs)
    assert not [p for p in (tmp_path / "noise").iterdir() if p.suffix == ".tmp"]

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cached_noisy_labels(NoiseSpec("sym", 0.3), labels, C, **kwargs)
    assert len(list((tmp_path / "noise").iterdir())) == 2  # only the first entry's .npy and .json


def test_actual_noise_rate_by_hand():
    assert actual_noise_rate(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0])) == 0.5
    with pytest.raises(ValueError):
        actual_noise_rate(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("spec,expected", [
    (NoiseSpec("sym", 0.5), 0.45),  # DivideMix draws from all 10 classes: r * 9 / 10
    (NoiseSpec("sym", 0.5, protocol="exclude_true"), 0.5),
    (NoiseSpec("pairflip", 0.45), 0.45),
    (NoiseSpec("idn", 0.2), 0.2),
    (NoiseSpec("asym", 0.4), 0.19),  # depends on the map and the class balance: the realised share
    (NoiseSpec("none"), 0.0),
])
def test_expected_noise_rate_per_protocol(spec, expected):
    assert noise.expected_noise_rate(spec, 10, actual=0.19) == pytest.approx(expected)


def test_method_noise_rate_choices_and_errors():
    spec = NoiseSpec("sym", 0.8)
    assert noise.method_noise_rate("auto", spec, 10, 0.71) == (pytest.approx(0.72), "expected")
    assert noise.method_noise_rate("nominal", spec, 10, 0.71) == (0.8, "nominal")
    assert noise.method_noise_rate("actual", spec, 10, 0.71) == (0.71, "actual")
    assert noise.method_noise_rate(0.3, spec, 10, 0.71) == (0.3, "given")
    for bad in (1.0, -0.1, "half", True):
        with pytest.raises(ValueError, match="noise rate"):
            noise.method_noise_rate(bad, spec, 10, 0.71)


@pytest.mark.parametrize("noise_type", ["sym", "asym", "pairflip", "idn"])
def test_exclude_true_is_selectable_for_every_type_and_meets_the_expected_rate(labels, noise_type):
    """Under 'never the true class' every type's realised share of wrong labels is its expected one: r for
    sym, pairflip and IDN; asym moves only its source classes, none of them onto itself."""
    rate = 0.4
    images = np.random.default_rng(2).random((N, 3 * 4 * 4), dtype=np.float32) if noise_type == "idn" else None
    spec = NoiseSpec(noise_type, rate, protocol="exclude_true", asym_map={0: 1, 1: 0, 2: 3} if noise_type == "asym" else None)
    noisy = make_noisy_labels(spec, labels, C, seed=9, images=images)
    actual = actual_noise_rate(noisy, labels)
    if noise_type == "asym":
        sources = np.isin(labels, [0, 1, 2])
        assert np.all(noisy[~sources] == labels[~sources]) and abs(actual - rate * sources.mean()) < 0.015
    else:
        assert abs(actual - noise.expected_noise_rate(spec, C, actual)) < 0.015


@pytest.mark.parametrize("spec,named", [
    (dict(type="none", rate=0.7), "noise.rate=0.7 has no effect with noise type 'none'"),
    (dict(type="file", rate=0.2, file="labels.npy"), "noise.rate=0.2 has no effect with noise type 'file'"),
    (dict(type="sym", rate=0.5, asym_map={0: 1}), "noise.asym_map is used only by noise type 'asym'"),
    (dict(type="sym", rate=0.5, file="labels.npy"), "noise.file is used only by noise type 'file'"),
    (dict(type="none", file_key="worse_label"), "noise.file_key is used only by noise type 'file'"),
])
def test_a_setting_the_noise_would_ignore_is_an_error(spec, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        NoiseSpec(**spec)


def test_settings_each_type_uses_are_accepted():
    NoiseSpec("none")
    NoiseSpec("asym", 0.4, asym_map={0: 1})
    NoiseSpec("file", file="labels.npy", file_key="worse_label")
    NoiseSpec("pairflip", 0.45, protocol="exclude_true")  # the protocol holds for every type (see above)


def test_the_spec_reads_every_field_of_the_noise_config_by_name():
    import dataclasses

    from omegaconf import OmegaConf

    from baselines.common.config import NoiseConfig
    from baselines.common.noise import NoiseSpec

    cfg = OmegaConf.structured(NoiseConfig(name="sym_0.3", type="sym", rate=0.3, protocol="exclude_true"))
    spec = NoiseSpec.from_config(cfg)
    assert (spec.type, spec.rate, spec.protocol, spec.file) == ("sym", 0.3, "exclude_true", None)
    # every field of the spec is a field of the config group, so from_config cannot miss one
    assert {f.name for f in dataclasses.fields(NoiseSpec)} <= {f.name for f in dataclasses.fields(NoiseConfig)}
