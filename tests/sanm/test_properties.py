"""Properties of the hooks over random shapes, class counts and label qualities (hypothesis)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sanm_plugin import SANMAugmenter, SANMConfig
from sanm_plugin import masking

VARIANTS = st.fixed_dictionaries(
    {
        "ratio": st.sampled_from(["paper", "official"]),
        "box": st.sampled_from(["centered", "corner"]),
        "fill": st.sampled_from(["pixel", "channel"]),
        "trough": st.sampled_from(["same_image", "separate_image", "off"]),
        "label_spread": st.sampled_from(["all", "others"]),
        "activation": st.sampled_from(["cam", "energy"]),
        "mu": st.floats(0.0, 1.0),
        "delta": st.floats(0.1, 1.0),
    }
)


@st.composite
def batches(draw):
    config = SANMConfig(**draw(VARIANTS))
    b, c = draw(st.integers(1, 5)), draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(2, 40)), draw(st.integers(2, 40))
    k, classes = draw(st.integers(1, 8)), draw(st.integers(2, 12))
    fh, fw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    quality = torch.tensor(draw(st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0]), min_size=b, max_size=b)))
    return config, (b, c, h, w), (k, fh, fw), classes, quality, seed


def _box_mask(boxes, h, w):
    rows, cols = torch.arange(h), torch.arange(w)
    top, bottom, left, right = (v.view(-1, 1) for v in boxes.unbind(1))
    inside_r = (rows >= top) & (rows < bottom)
    inside_c = (cols >= left) & (cols < right)
    return inside_r[:, :, None] & inside_c[:, None, :]


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(batches())
def test_masking_changes_exactly_the_box_pixels(case):
    config, (b, c, h, w), (k, fh, fw), classes, quality, seed = case
    torch.manual_seed(seed)
    sanm = SANMAugmenter(classes, k, (c, h, w), config, feature_size=(fh, fw))
    images = torch.rand(b, c, h, w) + 5.0  # outside U(0,1), so every filled pixel visibly changes
    feats, logits = torch.randn(b, k, fh, fw), torch.randn(b, classes)
    mb = sanm.modulate_batch(images, feats, logits, quality, classifier_weight=torch.randn(classes, k))
    peak_mask = _box_mask(mb.peak_box, h, w)
    trough_mask = _box_mask(mb.trough_box, h, w)
    expected = peak_mask | trough_mask if config.trough == "same_image" else peak_mask
    changed = (mb.images != images).any(dim=1)
    assert torch.equal(changed, expected)  # only box pixels change, and all of them do
    assert ((mb.images >= 0) & (mb.images < 1)).all(dim=1)[expected].all()
    if config.trough == "separate_image":
        assert torch.equal((mb.trough_images != images).any(dim=1), trough_mask)
    else:
        assert mb.trough_images is None
    # a box with r > 0 contains its peak (and the trough box its trough)
    for box, anchor, ratio in ((mb.peak_box, mb.peak, mb.ratio), (mb.trough_box, mb.trough, mb.trough_ratio)):
        if config.trough == "off" and box is mb.trough_box:
            assert (box[:, 0] == box[:, 1]).all()
            continue
        has = ratio > 0
        inside = (box[:, 0] <= anchor[:, 0]) & (anchor[:, 0] < box[:, 1]) & (box[:, 2] <= anchor[:, 1]) & (anchor[:, 1] < box[:, 3])
        assert inside[has].all()
        assert (box[~has, 0] == box[~has, 1]).all()
    if config.fill == "channel":  # one value per box and channel
        for i in range(b):
            region = mb.images[i][:, peak_mask[i] & ~trough_mask[i]]
            if region.numel():
                assert torch.equal(region, region[:, :1].expand_as(region))
    targets = sanm.regularize_labels(torch.randint(0, classes, (b,)), mb)
    assert torch.allclose(targets.sum(1), torch.ones(b), atol=1e-5) and (targets >= 0).all()
    soft = torch.softmax(torch.randn(b, classes) * 3, dim=1)
    targets = sanm.regularize_labels(soft, mb)
    assert torch.allclose(targets.sum(1), torch.ones(b), atol=1e-5) and (targets >= -1e-7).all()


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-3, 2000.0), st.floats(0.1, 10.0), st.integers(1, 64), st.integers(1, 64))
def test_unclipped_box_area_is_area_within_rounding(area, aspect, h, w):
    rows, cols = masking.box_sizes(torch.tensor([area], dtype=torch.float64), torch.tensor([aspect], dtype=torch.float64), h, w)
    rows, cols = int(rows), int(cols)
    exact_r, exact_c = math.sqrt(area * aspect), math.sqrt(area / aspect)
    assert rows == min(h, max(1, math.floor(exact_r + 0.5)))
    assert cols == min(w, max(1, math.floor(exact_c + 0.5)))
    if 0.5 <= exact_r <= h - 0.5 and 0.5 <= exact_c <= w - 0.5:  # neither clamp bound
        assert abs(rows * cols - area) <= 0.5 * (exact_r + exact_c) + 0.25


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(VARIANTS, st.integers(2, 64), st.integers(2, 64), st.integers(1, 2))
def test_fill_capacity_bounds_every_possible_box_pair(variant, h, w, boxes):
    """The slot budget covers the largest boxes the config can produce (otherwise pixels stay unmasked)."""
    config = SANMConfig(**variant)
    factor = masking.box_area_factor(config) * h * w
    quality = torch.linspace(0, 1, 101, dtype=torch.float64)
    if config.ratio == "paper":
        ratios = [config.mu * (1 - quality), config.mu * quality][:boxes]
    else:
        ratios = [torch.full_like(quality, 0.10)] * boxes  # the largest official ratio
    total = 0
    for ratio in ratios:
        best = torch.zeros_like(quality)
        for aspect in torch.linspace(config.delta, 1 / config.delta, 41, dtype=torch.float64):
            rows, cols = masking.box_sizes(ratio * factor, aspect.expand_as(ratio), h, w)
            best = torch.maximum(best, (rows * cols).double())
        total = total + best
    assert total.max() <= masking.fill_capacity(config, h, w, boxes)


@st.composite
def boxes_in_images(draw):
    b, n = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    boxes = []
    for _ in range(b * n):
        top, left = draw(st.integers(0, h)), draw(st.integers(0, w))
        bottom = top if draw(st.booleans()) and draw(st.booleans()) else draw(st.integers(top, h))  # some empty
        boxes.append([top, bottom, left, draw(st.integers(left, w))])
    boxes = torch.tensor(boxes).view(b, n, 4)
    return boxes, (b, draw(st.sampled_from([1, 3])), h, w), draw(st.sampled_from(["pixel", "channel"])), draw(st.integers(0, 5))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(boxes_in_images())
def test_fill_writes_exactly_the_union_of_any_boxes(case):
    """Any boxes, empty, overlapping or whole-image ones, with the tightest slot budget: the fill's own contract."""
    boxes, (b, c, h, w), fill, spare = case
    spans = (boxes[..., 1] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 2])
    capacity = max(1, int(spans.sum(dim=1).max()) + spare)
    images = torch.rand(b, c, h, w) + 5.0
    out = masking.fill_boxes(images, boxes, fill, capacity)
    expected = torch.zeros(b, h, w, dtype=torch.bool)
    for i in range(b):
        for top, bottom, left, right in boxes[i].tolist():
            expected[i, top:bottom, left:right] = True
    assert torch.equal((out != images).any(dim=1), expected) and torch.equal((out != images).all(dim=1), expected)
    assert ((out > 0) & (out < 1)).all(dim=1)[expected].all()
    if fill == "channel":  # a box that no other box overlaps holds one value per channel
        for i in range(b):
            for j, (top, bottom, left, right) in enumerate(boxes[i].tolist()):
                others = [k for k in range(boxes.shape[1]) if k != j]
                alone = torch.zeros(h, w, dtype=torch.bool)
                alone[top:bottom, left:right] = True
                for k in others:
                    t, bt, lf, rt = boxes[i, k].tolist()
                    alone[t:bt, lf:rt] = False
                region = out[i][:, alone]
                if region.numel():
                    assert torch.equal(region, region[:, :1].expand_as(region))
    if (spans > 0).any(dim=1).all():  # every image has a box: the promise changes nothing
        torch.manual_seed(0)
        guarded = masking.fill_boxes(images, boxes, fill, capacity)
        torch.manual_seed(0)
        assert torch.equal(guarded, masking.fill_boxes(images, boxes, fill, capacity, every_image_boxed=True))
