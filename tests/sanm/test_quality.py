"""gmm_clean_probability: DivideMix's two-component GMM on per-sample losses."""

import numpy as np
import pytest
import torch

from sanm_plugin import gmm_clean_probability
from sanm_plugin.quality import normalize_losses


def _two_groups(seed=0, n=400):
    rng = np.random.default_rng(seed)
    clean = rng.normal(0.2, 0.05, n)
    noisy = rng.normal(2.0, 0.3, n)
    return np.concatenate([clean, noisy]), np.r_[np.ones(n), np.zeros(n)]


def test_low_loss_samples_get_high_clean_probability():
    losses, clean = _two_groups()
    prob = gmm_clean_probability(torch.tensor(losses))
    assert prob.shape == (800,) and prob.dtype == torch.float32
    assert prob[clean == 1].min() > 0.9 and prob[clean == 0].max() < 0.1


def test_matches_sklearn_with_dividemix_settings():
    from sklearn.mixture import GaussianMixture

    losses, _ = _two_groups(seed=3)
    norm = (losses - losses.min()) / (losses.max() - losses.min())
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=0).fit(norm[:, None])
    expected = gmm.predict_proba(norm[:, None])[:, gmm.means_.argmin()]
    assert np.allclose(gmm_clean_probability(losses).numpy(), expected, atol=1e-6)


def test_history_appends_and_averages_the_last_window():
    losses, _ = _two_groups()
    history: list = []
    for epoch in range(7):
        gmm_clean_probability(losses * (1 + epoch), history, window=5)
    assert len(history) == 5
    a = np.arange(4.0)
    history = [normalize_losses(a[::-1].copy())]
    out = gmm_clean_probability(a, history, window=2)
    # the mean of a normalised ramp and its reverse is constant: nothing to separate
    assert torch.allclose(out, torch.full((4,), 0.5))


def test_constant_losses_give_one_half_and_bad_losses_raise():
    assert torch.equal(gmm_clean_probability(np.ones(5)), torch.full((5,), 0.5))
    with pytest.raises(ValueError, match="finite"):
        gmm_clean_probability(np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="empty"):
        gmm_clean_probability(np.array([]))
    with pytest.raises(ValueError, match="history"):
        gmm_clean_probability(np.arange(3.0), [np.zeros(4)])
