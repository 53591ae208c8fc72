"""SANMAugmenter as a whole: shapes, gradients, determinism, presets, autocast and bad input."""

import pytest
import torch

from sanm_plugin import MaskedBatch, SANMAugmenter, SANMConfig


def _batch(b=4, classes=10, k=16, size=(4, 4), image=(3, 32, 32), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, *image, generator=gen),
        torch.randn(b, k, *size, generator=gen),
        torch.randn(b, classes, generator=gen),
        torch.rand(b, generator=gen),
    )


def test_presets_set_every_switch():
    paper, official = SANMConfig.paper(), SANMConfig.official()
    assert (paper.activation, paper.ratio, paper.box, paper.fill, paper.trough, paper.label_spread, paper.beta) == (
        "cam", "paper", "centered", "pixel", "same_image", "all", 1.0)
    assert (official.activation, official.ratio, official.box, official.fill, official.trough,
            official.label_spread, official.beta) == ("energy", "official", "corner", "channel", "separate_image",
                                                      "others", 0.02)
    assert SANMConfig() == paper
    # the paper leaves its decoder open: the linear one measured better on the memorisation protocol (issue 14)
    assert (paper.fill_space, paper.recon_target, paper.decoder) == ("pixel", "input", "linear")
    assert (official.fill_space, official.recon_target, official.decoder) == ("input", "input", "linear")
    assert SANMConfig.from_mapping({"preset": "official", "mu": 0.3}) == SANMConfig.official(mu=0.3)


def test_sanm_parameters_exist_before_any_call():
    sanm = SANMAugmenter(10, 16, (3, 32, 32))
    assert sum(p.numel() for p in sanm.parameters()) > 0


@pytest.mark.parametrize(
    "k,size,image", [(512, (4, 4), (3, 32, 32)), (64, (8, 8), (3, 32, 32)), (32, (7, 7), (3, 224, 224)),
                     (8, (3, 5), (1, 24, 40)), (8, (5, 3), (3, 17, 29)), (8, None, (1, 28, 28))]
)
def test_decoder_output_has_the_image_shape(k, size, image):
    sanm = SANMAugmenter(10, k, image, feature_size=size)
    feats = torch.randn(2, k, *(size or (4, 4)))
    assert sanm.decoder(feats).shape == (2, *image)


def test_reconstruction_gradients_reach_decoder_and_features():
    images, feats, _, _ = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32), feature_size=(4, 4))
    feats.requires_grad_(True)
    sanm.reconstruction_loss(feats, images).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sanm.decoder.parameters())


def test_reconstruction_loss_is_beta_times_mse_and_sums_two_views():
    images, feats, _, _ = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32), SANMConfig(beta=0.5), feature_size=(4, 4))
    expected = 0.5 * torch.mean((sanm.decoder(feats) - images) ** 2)
    assert torch.allclose(sanm.reconstruction_loss(feats, images), expected)
    official = SANMAugmenter(10, 16, (3, 32, 32), SANMConfig.official(), feature_size=(4, 4))
    both = torch.cat([feats, feats.flip(0)])
    out = official.decoder(both)
    expected = 0.02 * (torch.mean((out[:4] - images) ** 2) + torch.mean((out[4:] - images) ** 2))
    assert torch.allclose(official.reconstruction_loss(both, images), expected)


def test_decoder_loss_falls_when_trained():
    torch.manual_seed(0)
    images, feats, _, _ = _batch(b=8)
    sanm = SANMAugmenter(10, 16, (3, 32, 32), feature_size=(4, 4))
    opt = torch.optim.Adam(sanm.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = sanm.reconstruction_loss(feats, images)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("config", [SANMConfig.paper(), SANMConfig.official()])
def test_seeded_determinism(config):
    images, feats, logits, quality = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32), config)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        mb = sanm.modulate_batch(images, feats, logits, quality, torch.randn(10, 16))
        runs.append(mb)
    for field in ("images", "ratio", "peak", "trough", "peak_box", "trough_box"):
        assert torch.equal(getattr(runs[0], field), getattr(runs[1], field))


def test_cam_follows_the_classifier_weight():
    images, feats, logits, quality = _batch(b=1, k=2, size=(2, 2), image=(1, 2, 2), classes=2)
    feats = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]])
    logits = torch.tensor([[5.0, 0.0]])  # predicts class 0
    sanm = SANMAugmenter(2, 2, (1, 2, 2))
    mb = sanm.modulate_batch(images, feats, logits, torch.zeros(1), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert mb.peak.tolist() == [[0, 0]]  # channel 0 drives class 0
    mb = sanm.modulate_batch(images, feats, logits, torch.zeros(1), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert mb.peak.tolist() == [[1, 1]]


def test_masked_batch_fields_and_targets():
    images, feats, logits, quality = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32))
    mb = sanm.modulate_batch(images, feats, logits, quality, torch.randn(10, 16))
    assert isinstance(mb, MaskedBatch) and mb.images.shape == images.shape
    assert mb.ratio.shape == (4,) and mb.peak.shape == (4, 2) and mb.peak_box.shape == (4, 4)
    assert torch.allclose(mb.ratio, 0.2 * (1 - quality))
    targets = sanm.regularize_labels(torch.tensor([1, 2, 3, 4]), mb)
    assert torch.allclose(targets[0, 1], 1 - mb.ratio[0] + mb.ratio[0] / 10)


def test_energy_fallback_warns_once():
    images, feats, logits, quality = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32))
    with pytest.warns(UserWarning, match="energy"):
        sanm.modulate_batch(images, feats, logits, quality)
    energy = SANMAugmenter(10, 16, (3, 32, 32), SANMConfig(activation="energy"))
    torch.manual_seed(0)
    a = sanm.modulate_batch(images, feats, logits, quality)
    torch.manual_seed(0)
    b = energy.modulate_batch(images, feats, logits, quality)
    assert torch.equal(a.peak, b.peak)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_hooks_work_under_autocast(dtype):
    net = torch.nn.Conv2d(3, 16, 3, stride=8, padding=1)
    head = torch.nn.Linear(16, 10)
    sanm = SANMAugmenter(10, 16, (3, 32, 32), feature_size=(4, 4))
    images = torch.randn(4, 3, 32, 32)
    with torch.autocast("cpu", dtype=dtype):
        feats = net(images)
        logits = head(feats.mean((2, 3)))
        mb = sanm.modulate_batch(images, feats, logits, torch.rand(4), head.weight)
        targets = sanm.regularize_labels(torch.softmax(logits.float(), 1), mb)
        loss = sanm.reconstruction_loss(net(mb.images), images)
    assert mb.images.dtype == images.dtype and torch.isfinite(loss) and torch.isfinite(targets).all()
    loss.backward()
    assert net.weight.grad is not None


# ---------------------------------------------------------------- bad input: ValueError naming the argument
@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(mu=1.5), "mu"), (dict(mu=-0.1), "mu"), (dict(delta=0.0), "delta"), (dict(delta=1.2), "delta"),
     (dict(beta=-1.0), "beta"), (dict(mu=float("nan")), "mu"), (dict(ratio="x"), "ratio"), (dict(fill="box"), "fill"),
     (dict(trough="both"), "trough"), (dict(activation="gradcam"), "activation")],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SANMConfig(**kwargs)


def test_from_mapping_rejects_unknown_keys():
    with pytest.raises(ValueError, match="mask_ratoi"):
        SANMConfig.from_mapping({"mask_ratoi": 0.2})


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: a.update(feature_maps=torch.randn(5, 16, 4, 4)), "feature_maps"),
        (lambda a: a.update(feature_maps=torch.randn(4, 8, 4, 4)), "feature_maps"),
        (lambda a: a.update(images=torch.randn(4, 3, 30, 32)), "images"),
        (lambda a: a.update(images=torch.randn(3, 32, 32)), "images"),
        (lambda a: a.update(logits=torch.randn(4, 9)), "logits"),
        (lambda a: a.update(clean_prob=torch.rand(3)), "clean_prob"),
        (lambda a: a.update(clean_prob=torch.tensor([0.1, 1.3, 0.2, 0.3])), "clean_prob"),
        (lambda a: a.update(clean_prob=torch.tensor([0.1, float("nan"), 0.2, 0.3])), "clean_prob"),
        (lambda a: a.update(clean_prob=torch.tensor([0.1, -0.2, 0.2, 0.3])), "clean_prob"),
        (lambda a: a.update(classifier_weight=torch.randn(16, 10)), "classifier_weight"),
    ],
)
def test_modulate_batch_rejects_bad_input(change, match):
    images, feats, logits, quality = _batch()
    args = dict(images=images, feature_maps=feats, logits=logits, clean_prob=quality, classifier_weight=torch.randn(10, 16))
    change(args)
    with pytest.raises(ValueError, match=match):
        SANMAugmenter(10, 16, (3, 32, 32)).modulate_batch(**args)


def test_validate_false_skips_value_checks_but_not_shapes():
    images, feats, logits, _ = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32), SANMConfig(validate=False))
    sanm.modulate_batch(images, feats, logits, torch.full((4,), 1.5), torch.randn(10, 16))
    with pytest.raises(ValueError, match="logits"):
        sanm.modulate_batch(images, feats, torch.randn(4, 3), torch.rand(4), torch.randn(10, 16))


@pytest.mark.parametrize(
    "targets,match",
    [(torch.tensor([1, 2, 3]), "3 labels"), (torch.tensor([1, 2, 3, 10]), "outside"), (torch.rand(4, 9), "num_classes"),
     (torch.full((4, 10), 0.5), "probability"), (torch.rand(4).float(), "integer"), (torch.rand(4, 10, 1), "targets")],
)
def test_regularize_labels_rejects_bad_targets(targets, match):
    images, feats, logits, quality = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32))
    mb = sanm.modulate_batch(images, feats, logits, quality, torch.randn(10, 16))
    with pytest.raises(ValueError, match=match):
        sanm.regularize_labels(targets, mb)


def test_reconstruction_loss_rejects_bad_shapes():
    images, feats, _, _ = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32))
    with pytest.raises(ValueError, match="masked_feature_maps"):
        sanm.reconstruction_loss(torch.randn(4, 8, 4, 4), images)
    with pytest.raises(ValueError, match="rows"):
        sanm.reconstruction_loss(torch.randn(8, 16, 4, 4), images)  # 2B only with trough='separate_image'
    with pytest.raises(ValueError, match="images"):
        sanm.reconstruction_loss(feats, torch.randn(4, 3, 16, 16))


@pytest.mark.parametrize(
    "args,match",
    [((1, 16, (3, 32, 32)), "num_classes"), ((10, 0, (3, 32, 32)), "feature_channels"), ((10, 16, (32, 32)), "image_shape")],
)
def test_constructor_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        SANMAugmenter(*args)


def test_state_dict_round_trip():
    a = SANMAugmenter(10, 16, (3, 32, 32), feature_size=(4, 4))
    b = SANMAugmenter(10, 16, (3, 32, 32), feature_size=(4, 4))
    b.load_state_dict(a.state_dict())
    feats = torch.randn(2, 16, 4, 4)
    a.eval(), b.eval()
    assert torch.equal(a.decoder(feats), b.decoder(feats))


# ---------------------------------------------------------------------- where the fill and the target live
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)


def _filled_values(fill_space, normalization):
    """Values written into the peak box of a zero image whose box covers a quarter of it (G = 0, mu = 0.25)."""
    config = SANMConfig(mu=0.25, trough="off", fill_space=fill_space, activation="energy", validate=False)
    sanm = SANMAugmenter(10, 16, (3, 32, 32), config, input_normalization=normalization)
    images, feats, logits, _ = _batch(b=64)
    images = torch.full_like(images, -7.0)  # a value no fill can take: the changed pixels are the box
    masked = sanm.modulate_batch(images, feats, logits, torch.zeros(64)).images
    return [masked[:, c][masked[:, c] != -7.0] for c in range(3)]


def test_pixel_fill_draws_pixel_intensities_and_normalises_them_like_the_image():
    for c, values in enumerate(_filled_values("pixel", (MEAN, STD))):
        pixels = values * STD[c] + MEAN[c]  # back in pixel units they are U(0, 1)
        assert values.numel() > 10000 and pixels.min() > 0 and pixels.max() < 1
        assert abs(pixels.mean().item() - 0.5) < 0.01 and abs(pixels.var().item() - 1 / 12) < 0.005


def test_input_fill_writes_u01_into_the_tensor_as_given():
    for values in _filled_values("input", (MEAN, STD)):
        assert values.min() > 0 and values.max() < 1 and abs(values.mean().item() - 0.5) < 0.01
    # without a normalisation the input is raw pixels: both spaces are the same
    for pixel, given in zip(_filled_values("pixel", None), _filled_values("input", None)):
        assert pixel.min() > 0 and pixel.max() < 1 and given.min() > 0


def test_pixel_reconstruction_target_is_the_image_with_its_normalisation_undone():
    images, feats, _, _ = _batch()
    sanm = SANMAugmenter(10, 16, (3, 32, 32), SANMConfig(recon_target="pixel", beta=0.5), feature_size=(4, 4),
                         input_normalization=(MEAN, STD))
    pixels = images * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    expected = 0.5 * torch.mean((sanm.decoder(feats) - pixels) ** 2)
    assert torch.allclose(sanm.reconstruction_loss(feats, images), expected)


def test_linear_decoder_is_transposed_convolutions_only():
    sanm = SANMAugmenter(10, 16, (3, 32, 32), SANMConfig(decoder="linear"), feature_size=(4, 4))
    kinds = {type(m).__name__ for m in sanm.decoder.layers}
    assert kinds == {"ConvTranspose2d"} and len(sanm.decoder.layers) == 3
    feats = torch.randn(2, 16, 4, 4)
    zero = sanm.decoder(torch.zeros_like(feats))
    assert torch.allclose(sanm.decoder(3 * feats) - zero, 3 * (sanm.decoder(feats) - zero), atol=1e-5)  # affine
    assert sanm.decoder(feats).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("bad", [((0.5,), (0.2,)), ((0.5, 0.5, 0.5), (0.2, 0.0, 0.2))])
def test_bad_input_normalization_is_refused(bad):
    with pytest.raises(ValueError, match="input_normalization"):
        SANMAugmenter(10, 16, (3, 32, 32), input_normalization=bad)
