"""MixMatch pieces (docs/baselines.md 4.2) against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from baselines.common.mixup import (co_guess, linear_rampup, mix, negative_entropy, refine_labels, sharpen,
                                    uniform_prior_penalty)


def test_sharpen_by_hand():
    p = torch.tensor([[0.6, 0.4]])
    # T = 0.5 squares: 0.36 / (0.36 + 0.16)
    assert torch.allclose(sharpen(p, 0.5), torch.tensor([[0.36 / 0.52, 0.16 / 0.52]]))
    assert torch.allclose(sharpen(p, 1.0), p)


def test_label_refinement_by_hand():
    probs = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    out = refine_labels(torch.tensor([0, 1]), torch.tensor([0.75, 0.0]), probs, 2)
    # w*y + (1-w)*p: 0.75*[1,0] + 0.25*[0.2,0.8]; w=0 keeps the prediction
    assert torch.allclose(out, torch.tensor([[0.8, 0.2], [0.5, 0.5]]))


def test_co_guessing_averages_softmaxes():
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    assert torch.allclose(co_guess(a, b), torch.tensor([[(0.5 + 0.75) / 2, (0.5 + 0.25) / 2]]))


def test_mix_folds_lambda_and_mixes_targets_alike():
    x = torch.tensor([[0.0], [10.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mixed, targets, lam, perm = mix(x, y, alpha=4.0, lam=0.7, perm=torch.tensor([1, 0]))
    assert torch.allclose(mixed, torch.tensor([[3.0], [7.0]]))
    assert torch.allclose(targets, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    lams = [mix(x, y, 4.0, rng=np.random.default_rng(s))[2] for s in range(200)]
    assert min(lams) >= 0.5


def test_lambda_u_ramp():
    assert linear_rampup(10.0, 10, 16) == 0.0
    assert linear_rampup(18.0, 10, 16) == 0.5
    assert linear_rampup(40.0, 10, 16) == 1.0


def test_prior_penalty_and_negative_entropy_by_hand():
    uniform = torch.zeros(4, 3)
    assert torch.allclose(uniform_prior_penalty(uniform), torch.tensor(0.0), atol=1e-6)
    confident = torch.tensor([[10.0, 0.0], [10.0, 0.0]])  # mean prediction ~ [1, 0]
    p = torch.softmax(confident[0], 0)
    expected = 0.5 * math.log(0.5 / p[0].item()) + 0.5 * math.log(0.5 / p[1].item())
    assert uniform_prior_penalty(confident).item() == pytest.approx(expected, rel=1e-5)
    assert negative_entropy(uniform).item() == pytest.approx(-math.log(3), rel=1e-6)
