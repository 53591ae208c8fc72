"""The methods' supervised losses against hand-computed values, on class ids and on probability targets."""

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.common.losses import (as_probabilities, cross_entropy, generalized_cross_entropy,
                                     symmetric_cross_entropy)

# logits whose softmax is (0.5, 0.25, 0.25): log 2, 0, 0
LOGITS = torch.tensor([[math.log(2.0), 0.0, 0.0]])


def test_cross_entropy_on_ids_and_on_one_hot_rows_agree_with_torch():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    expected = F.cross_entropy(logits, labels)
    assert torch.allclose(cross_entropy(logits, labels), expected)
    assert torch.allclose(cross_entropy(logits, as_probabilities(labels, 4)), expected)
    assert math.isclose(cross_entropy(LOGITS, torch.tensor([[0.5, 0.5, 0.0]])).item(),
                        -(0.5 * math.log(0.5) + 0.5 * math.log(0.25)), rel_tol=1e-6)


def test_gce_by_hand():
    # p_y = 0.5, q = 0.7: (1 - 0.5^0.7) / 0.7
    assert math.isclose(generalized_cross_entropy(LOGITS, torch.tensor([0]), 0.7).item(),
                        (1 - 0.5 ** 0.7) / 0.7, rel_tol=1e-6)
    # q = 1 is the MAE's 1 - p_y; soft targets weight the per-class terms
    assert math.isclose(generalized_cross_entropy(LOGITS, torch.tensor([1]), 1.0).item(), 0.75, rel_tol=1e-6)
    soft = torch.tensor([[0.5, 0.5, 0.0]])
    assert math.isclose(generalized_cross_entropy(LOGITS, soft, 0.7).item(),
                        0.5 * (1 - 0.5 ** 0.7) / 0.7 + 0.5 * (1 - 0.25 ** 0.7) / 0.7, rel_tol=1e-6)


def test_gce_tends_to_cross_entropy_as_q_goes_to_zero():
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 2, 1])
    assert torch.allclose(generalized_cross_entropy(logits, labels, 1e-4), F.cross_entropy(logits, labels), atol=1e-3)


def test_gce_is_bounded_where_cross_entropy_is_not():
    confident_wrong = torch.tensor([[30.0, 0.0, 0.0]])
    assert cross_entropy(confident_wrong, torch.tensor([1])).item() > 29
    assert generalized_cross_entropy(confident_wrong, torch.tensor([1]), 0.7).item() <= 1 / 0.7 + 1e-6


def test_sce_by_hand():
    # one-hot label 0, p = (0.5, 0.25, 0.25): CE = log 2; RCE = -A (1 - p_y) = 4 * 0.5 = 2
    value = symmetric_cross_entropy(LOGITS, torch.tensor([0]), alpha=0.1, beta=1.0, log_floor=-4.0).item()
    assert math.isclose(value, 0.1 * math.log(2) + 2.0, rel_tol=1e-6)
    # a soft target with no zero: RCE = -sum p_c log t_c exactly
    soft = torch.tensor([[0.5, 0.25, 0.25]])
    rce = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25) * 2)
    ce = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25) * 2)
    assert math.isclose(symmetric_cross_entropy(LOGITS, soft, alpha=1.0, beta=1.0).item(), ce + rce, rel_tol=1e-6)
    # a tiny target probability counts no lower than A
    tiny = torch.tensor([[1.0 - 2e-9, 1e-9, 1e-9]])
    assert math.isclose(symmetric_cross_entropy(LOGITS, tiny, alpha=0.0, beta=1.0).item(), 4 * 0.5, rel_tol=1e-5)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="q must be in"):
        generalized_cross_entropy(LOGITS, torch.tensor([0]), 0.0)
    with pytest.raises(ValueError, match=r"\[B, 3\] probabilities"):
        cross_entropy(LOGITS, torch.ones(1, 4) / 4)
