"""The paper's equations against hand-computed values (docs/method.md section 1)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sanm_plugin import SANMConfig
from sanm_plugin import activation, masking
from sanm_plugin.labels import regularize_class_ids, regularize_soft_targets


def test_class_activation_map_is_weighted_channel_sum_of_predicted_class():
    feats = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # [1, K=2, 1, 2]
    weight = torch.tensor([[1.0, 0.0], [0.5, -1.0]])  # [classes=2, K=2]
    logits = torch.tensor([[0.1, 0.9]])  # predicts class 1
    cam = activation.class_activation_map(feats, logits, weight)
    assert torch.allclose(cam, torch.tensor([[[0.5 * 1 - 3, 0.5 * 2 - 4]]]))  # no ReLU (Eq. 1)


def test_energy_map_is_sum_of_squared_channels():
    feats = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    assert torch.allclose(activation.energy_map(feats), torch.tensor([[[10.0, 20.0]]]))


@pytest.mark.parametrize("src,dst", [((4, 4), (32, 32)), ((7, 7), (224, 224)), ((3, 5), (24, 40)), ((8, 8), (8, 8))])
def test_upsampling_matches_torch_bilinear(src, dst):
    maps = torch.randn(3, *src)
    expected = F.interpolate(maps.unsqueeze(1), size=dst, mode="bilinear", align_corners=False).squeeze(1)
    assert torch.allclose(activation.upsample_bilinear(maps, dst), expected, atol=1e-5)


def test_peak_and_trough_ties_go_to_first_pixel_in_row_major_order():
    maps = torch.zeros(1, 2, 2)  # constant map: every pixel ties
    peak, trough = activation.peak_and_trough(maps, (4, 4))
    assert peak.tolist() == [[0, 0]] and trough.tolist() == [[0, 0]]
    maps = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])
    peak, trough = activation.peak_and_trough(maps, (2, 2))
    assert peak.tolist() == [[0, 1]] and trough.tolist() == [[1, 0]]


def test_paper_ratio_is_mu_times_noisiness_and_trough_mu_times_quality():
    peak, trough = masking.mask_ratios(torch.tensor([0.25, 1.0, 0.0]), SANMConfig.paper(mu=0.2))
    assert torch.allclose(peak, torch.tensor([0.15, 0.0, 0.2]))
    assert torch.allclose(trough, torch.tensor([0.05, 0.2, 0.0]))


def test_official_ratio_range_and_quality_term():
    torch.manual_seed(0)
    quality = torch.rand(5000)
    peak, trough = masking.mask_ratios(quality, SANMConfig.official())
    base = peak - 0.03 * (1 - quality)
    assert base.min() >= 0.02 and base.max() <= 0.07 and torch.equal(peak, trough)
    assert masking.box_area_factor(SANMConfig.official()) == 0.5


def test_box_sizes_hand_computed():
    rows, cols = masking.box_sizes(torch.tensor([16.0, 18.0, 0.0, 0.01]), torch.tensor([1.0, 2.0, 1.0, 1.0]), 10, 10)
    # area 16 square -> 4x4; area 18 aspect 2 -> sqrt(36)=6 rows, sqrt(9)=3 cols; no area -> empty;
    # a tiny positive area keeps one pixel so the box still covers its anchor
    assert rows.tolist() == [4, 6, 0, 1] and cols.tolist() == [4, 3, 0, 1]


def test_centered_and_corner_placement_hand_computed():
    anchor = torch.tensor([[5, 5], [0, 0], [9, 9]])
    four = torch.tensor([4, 4, 4])
    centered = masking.place_boxes(anchor[:, 0], anchor[:, 1], four, four, 10, 10, "centered")
    assert centered.tolist() == [[3, 7, 3, 7], [0, 2, 0, 2], [7, 10, 7, 10]]
    corner = masking.place_boxes(anchor[:, 0], anchor[:, 1], four, four, 10, 10, "corner")
    assert corner.tolist() == [[5, 9, 5, 9], [0, 4, 0, 4], [6, 10, 6, 10]]


def test_nlr_on_one_hot_matches_eq7():
    target = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    out = regularize_soft_targets(target, torch.tensor([0.2]), "all")
    assert torch.allclose(out, torch.tensor([[0.05, 0.85, 0.05, 0.05]]))  # 1 - r + r/c, r/c
    out = regularize_soft_targets(target, torch.tensor([0.3]), "others")
    assert torch.allclose(out, torch.tensor([[0.1, 0.7, 0.1, 0.1]]))  # official: -r, +r/(c-1)


def test_nlr_on_soft_targets_and_the_cap():
    out = regularize_soft_targets(torch.tensor([[0.5, 0.3, 0.2]]), torch.tensor([0.3]), "all")
    assert torch.allclose(out, torch.tensor([[0.3, 0.4, 0.3]]))
    # arg-max 0.4 < r(1 - 1/c) = 0.6: the move is capped at 0.4 * c/(c-1) = 0.6, arg-max lands on 0
    out = regularize_soft_targets(torch.tensor([[0.4, 0.3, 0.3]]), torch.tensor([0.9]), "all")
    assert torch.allclose(out, torch.tensor([[0.0, 0.5, 0.5]]), atol=1e-6)
    out = regularize_soft_targets(torch.tensor([[0.4, 0.3, 0.3]]), torch.tensor([0.9]), "others")
    assert torch.allclose(out, torch.tensor([[0.0, 0.5, 0.5]]), atol=1e-6)


@pytest.mark.parametrize("fill", ["pixel", "channel"])
@pytest.mark.parametrize("corner_box", [True, False])
def test_fill_writes_exactly_the_boxes_including_the_corner_pixel(fill, corner_box):
    images = torch.full((2, 3, 6, 6), 7.0)
    first = torch.tensor([[0, 2, 0, 3], [2, 4, 2, 5]]) if corner_box else torch.tensor([[1, 2, 1, 3], [2, 4, 2, 5]])
    second = torch.tensor([[4, 6, 4, 6], [0, 0, 0, 0]])  # sample 1: empty second box
    out = masking.fill_boxes(images, torch.stack((first, second), dim=1), fill, capacity=20)  # plenty of unused slots
    expected = torch.zeros(2, 6, 6, dtype=torch.bool)
    for i in range(2):
        for box in (first[i], second[i]):
            expected[i, box[0]:box[1], box[2]:box[3]] = True
    assert torch.equal((out != 7.0).all(dim=1), expected) and torch.equal((out != 7.0).any(dim=1), expected)
    assert ((out >= 0) & (out < 1))[expected.unsqueeze(1).expand_as(out)].all()
    if fill == "channel":
        region = out[0][:, first[0, 0]:first[0, 1], first[0, 2]:first[0, 3]].reshape(3, -1)
        assert torch.equal(region, region[:, :1].expand_as(region))


def _full_extremes(maps, size):
    """The definition: arg-max / arg-min (first in row-major order) of the whole upsampled map."""
    up = activation.upsample_bilinear(maps, size).flatten(1)
    flat = torch.stack((up.max(dim=1).indices, up.min(dim=1).indices), dim=1)
    return flat // size[1], flat % size[1]


@pytest.mark.parametrize("src,dst", [((4, 4), (32, 32)), ((2, 2), (32, 32)), ((7, 7), (224, 224)),
                                     ((3, 5), (17, 29)), ((4, 4), (4, 4)), ((1, 1), (32, 32)), ((6, 6), (4, 4))])
def test_peak_and_trough_on_candidate_pixels_equal_the_whole_map(src, dst):
    gen = torch.Generator().manual_seed(0)
    maps = torch.cat([
        torch.randn(64, *src, generator=gen),
        torch.randint(0, 3, (64, *src), generator=gen).float(),  # many exact ties, plateaus across pixels
        torch.zeros(2, *src),
    ])
    rows, cols = activation.peak_and_trough(maps, dst)
    full_rows, full_cols = _full_extremes(maps, dst)
    assert torch.equal(rows, full_rows) and torch.equal(cols, full_cols)


def test_uint8_extremes_tie_near_the_minimum_as_the_official_code():
    """[5, 0.001, 0, 9] (1x4, no upsampling): exact trough at column 2; after 255 * (a - min) / range floored,
    0.001 -> 0 ties with 0 and the first of them, column 1, wins; the peak (column 3) stays."""
    maps = torch.tensor([[[5.0, 0.001, 0.0, 9.0]]])
    assert activation.extreme_pixels(maps, (1, 4)).tolist() == [[[0, 3], [0, 2]]]
    assert activation.quantised_extreme_pixels(maps, (1, 4)).tolist() == [[[0, 3], [0, 1]]]
    # on upsampled maps: the official reading, in numpy float32 as attention_erase_map does it
    smooth = torch.randn(64, 4, 4, generator=torch.Generator().manual_seed(0)) ** 2
    up = activation.upsample_bilinear(smooth, (32, 32)).numpy()  # equal to F.interpolate's up to float rounding
    expected = []
    for am in up:
        am = np.uint8(np.floor(255 * (am - np.min(am)) / (np.max(am) - np.min(am) + 1e-12)))
        expected.append([divmod(int(np.argmax(am)), 32), divmod(int(np.argmin(am)), 32)])
    ours = activation.quantised_extreme_pixels(smooth, (32, 32))
    assert ours.tolist() == [[list(p) for p in pair] for pair in expected]
    exact = activation.extreme_pixels(smooth, (32, 32))
    assert torch.equal(ours[:, 0], exact[:, 0])  # only the maximum reaches 255: the peak never moves
    assert not torch.equal(ours[:, 1], exact[:, 1])  # the ties near the minimum do move troughs
    assert SANMConfig.official().extremes == "uint8" and SANMConfig.paper().extremes == "exact"


def test_extreme_candidates_by_hand():
    # 4 -> 32: samples sit at output positions 3.5, 11.5, 19.5, 27.5
    assert activation.extreme_candidates(4, 32) == (0, 3, 4, 11, 12, 19, 20, 27, 28)
    assert activation.extreme_candidates(4, 4) == (0, 1, 2, 3)


@pytest.mark.parametrize("spread", ["all", "others"])
def test_nlr_on_class_ids_equals_eq7_on_their_one_hot_targets(spread):
    labels, ratio = torch.tensor([2, 0, 4, 4]), torch.tensor([0.2, 0.0, 1.0, 0.37])
    one_hot = torch.eye(5)[labels]
    expected = regularize_soft_targets(one_hot, ratio, spread)
    assert torch.allclose(regularize_class_ids(labels, ratio, 5, spread), expected, atol=1e-7)
    # by hand, sample 0 (r = 0.2, c = 5): 'all' gives 1 - r + r/c = 0.84 and r/c = 0.04; 'others' 0.8 and 0.05
    first = regularize_class_ids(labels, ratio, 5, spread)[0]
    on, off = (0.84, 0.04) if spread == "all" else (0.8, 0.05)
    assert torch.allclose(first, torch.tensor([off, off, on, off, off]))


def test_fill_values_are_16_bit_midpoints_uniform_in_every_lane():
    torch.manual_seed(0)
    values = masking.uniform((400_000,), torch.device("cpu"), torch.float32)
    assert values.min() > 0 and values.max() < 1
    cells = values * 65536 - 0.5  # the integer k of (k + 1/2) / 2^16
    assert torch.equal(cells, cells.round())
    # each 64-bit draw feeds four values: every position must cover all of (0, 1), sign bit included
    for lane in range(4):
        part = values[lane::4]
        assert abs(part.mean().item() - 0.5) < 0.005 and abs((part > 0.5).float().mean().item() - 0.5) < 0.01
    histogram = torch.histc(values, bins=16, min=0, max=1) / len(values)
    assert torch.allclose(histogram, torch.full((16,), 1 / 16), atol=0.002)


def test_separate_fill_gives_each_box_a_copy_of_its_own():
    images = torch.full((2, 3, 6, 6), 7.0)
    boxes = torch.tensor([[[0, 2, 0, 3], [4, 6, 4, 6]], [[2, 4, 2, 5], [1, 2, 1, 2]]])
    out = masking.fill_boxes(images, boxes, "pixel", capacity=9, separate=True)
    assert out.shape == (4, 3, 6, 6)
    for j in range(2):
        for i in range(2):
            top, bottom, left, right = boxes[i, j].tolist()
            expected = torch.zeros(6, 6, dtype=torch.bool)
            expected[top:bottom, left:right] = True
            assert torch.equal((out[j * 2 + i] != 7.0).all(dim=0), expected)  # row j*B + i: image i, box j


def test_promised_boxes_skip_the_restore_but_write_the_same_pixels():
    images = torch.rand(3, 2, 9, 9) + 5.0
    boxes = torch.tensor([[[0, 3, 0, 3], [5, 9, 6, 9]], [[2, 4, 2, 5], [2, 4, 2, 5]], [[0, 0, 4, 4], [1, 8, 0, 9]]])
    torch.manual_seed(1)
    guarded = masking.fill_boxes(images, boxes, "pixel", capacity=80)
    torch.manual_seed(1)
    promised = masking.fill_boxes(images, boxes, "pixel", capacity=80, every_image_boxed=True)
    assert torch.equal(guarded, promised)
