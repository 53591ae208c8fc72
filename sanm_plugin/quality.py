"""Label quality G: the clean posterior of a two-component GMM on per-sample losses (paper Eq. 2).

Settings are DivideMix's (`Train_cifar.py: eval_train`): losses min-max normalised, scikit-learn
GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4), posterior of the component
with the smaller mean. At 90% noise DivideMix fits the mean of the last 5 epochs' normalised losses;
pass a `history` list to get that.
"""

from __future__ import annotations

import warnings
from typing import MutableSequence

import numpy as np
import torch


def normalize_losses(losses: torch.Tensor | np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1] as float64 (constant losses -> all 0)."""
    values = np.asarray(
        losses.detach().float().cpu().numpy() if isinstance(losses, torch.Tensor) else losses, dtype=np.float64
    ).reshape(-1)
    if values.size == 0:
        raise ValueError("losses must hold at least one value, got an empty array")
    if not np.all(np.isfinite(values)):
        raise ValueError("losses must be finite; got NaN or inf (check the loss computation)")
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def gmm_clean_probability(
    losses: torch.Tensor | np.ndarray,
    history: MutableSequence[np.ndarray] | None = None,
    *,
    window: int = 5,
    max_iter: int = 10,
    tol: float = 1e-2,
    reg_covar: float = 5e-4,
    random_state: int | None = 0,
) -> torch.Tensor:
    """Posterior probability that each sample's label is clean.

    Args:
        losses: [N] per-sample cross-entropy against the (noisy) labels, from an evaluation pass.
        history: a list the caller keeps across epochs; when given, this call appends the normalised
            losses to it (dropping entries older than `window`) and fits the mean of what it holds.
        window: how many epochs `history` averages over (DivideMix: 5, used at 90% noise).
        max_iter, tol, reg_covar: GaussianMixture settings (C2D uses max_iter=200).
        random_state: seed of the GMM's k-means initialisation, for reproducible runs.

    Returns:
        [N] float32 tensor on the device of `losses` (CPU for arrays). With fewer than two distinct
        loss values there is nothing to separate and every sample gets 0.5.
    """
    device = losses.device if isinstance(losses, torch.Tensor) else torch.device("cpu")
    normalized = normalize_losses(losses)
    if history is not None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if history and len(history[-1]) != normalized.size:
            raise ValueError(
                f"history holds losses of {len(history[-1])} samples but losses has {normalized.size}"
            )
        history.append(normalized)
        del history[: max(0, len(history) - window)]
        normalized = np.mean(np.stack(list(history)), axis=0)
    if np.unique(normalized).size < 2:
        return torch.full((normalized.size,), 0.5, dtype=torch.float32, device=device)
    column = normalized.reshape(-1, 1)
    gmm = fit_loss_gmm(column, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=random_state)
    posterior = gmm.predict_proba(column)[:, int(np.argmin(gmm.means_.ravel()))]
    return torch.as_tensor(posterior, dtype=torch.float32).to(device)


def fit_loss_gmm(column: np.ndarray, *, max_iter: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4,
                 random_state: int | None = 0):
    """The two-component scikit-learn GaussianMixture fitted to [N, 1] normalised losses (the settings above)."""
    # imported here: scikit-learn takes a second or two to import, and a run without G never needs it
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(
        n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=random_state
    )
    with warnings.catch_warnings():  # 10 EM steps rarely converge to tol; DivideMix accepts that
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(column)
    return gmm
