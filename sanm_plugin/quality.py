"""Label quality G: the clean posterior of a two-component GMM on per-sample losses (paper Eq. 2).

Settings are DivideMix's (`Train_cifar.py: eval_train`): losses min-max normalised, scikit-learn
GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4), posterior of the component
with the smaller mean. At 90% noise DivideMix fits the mean of the last 5 epochs' normalised losses;
pass a `history` list to get that.

`LabelQuality` keeps G for a whole training set between epochs: it collects per-sample losses (from an
evaluation pass, as DivideMix does, or from the training forwards, which costs nothing extra), fits the GMM
above on them, and is a module, so G follows `.to(device)` and checkpoints through `state_dict`. Under
torch.distributed the losses each process recorded are summed before the fit, so every process holds the
same G.
"""

from __future__ import annotations

import warnings
from typing import MutableSequence

import numpy as np
import torch
from torch import nn

from . import distributed


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


class LabelQuality(nn.Module):
    """Label quality G for the N samples of a training set (Eq. 2), refitted from recorded losses.

        quality = LabelQuality(len(train_set))
        quality.record(idx, F.cross_entropy(logits.detach(), y, reduction="none"))   # each batch
        quality.refresh()                                                              # each epoch
        mb = sanm.modulate_batch(x, feats, logits, quality[idx], w)

    G starts at 1 (every label trusted; SANM's peak mask is then empty) until the first `refresh`. A sample
    recorded more than once since the last refresh (a DistributedSampler pads its shards with repeats)
    contributes its mean loss. Samples recorded by no process keep their previous G.

    Args:
        num_samples: N, the size of the training set; indices run over [0, N).
        max_iter, tol, reg_covar, random_state: the GMM's settings (`gmm_clean_probability`).
        validate: check that indices lie in [0, N) at each `record` (one host sync on CUDA).
    """

    def __init__(self, num_samples: int, *, max_iter: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4,
                 random_state: int | None = 0, validate: bool = True) -> None:
        super().__init__()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int (the training set's size), got {num_samples!r}")
        self.num_samples = num_samples
        self.gmm_settings = dict(max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=random_state)
        self.validate = validate
        self.register_buffer("clean_prob", torch.ones(num_samples))
        # losses since the last refresh, checkpointed so that a run resumed mid-epoch loses none
        self.register_buffer("loss_sum", torch.zeros(num_samples, dtype=torch.float64))
        self.register_buffer("loss_count", torch.zeros(num_samples, dtype=torch.float64))
        self.register_buffer("refreshes", torch.zeros((), dtype=torch.long))

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        """G of the samples `index` [B], on G's device."""
        return self.clean_prob[index.to(self.clean_prob.device)]

    def __len__(self) -> int:
        return self.num_samples

    @torch.no_grad()
    def record(self, index: torch.Tensor, losses: torch.Tensor) -> None:
        """Add the per-sample losses [B] (cross-entropy against the noisy labels) of samples `index` [B]."""
        if index.dim() != 1 or losses.shape != index.shape:
            raise ValueError(f"index and losses must both be [B], got {tuple(index.shape)} and {tuple(losses.shape)} "
                             "(pass reduction='none' to the loss for one value per sample)")
        if index.is_floating_point():
            raise ValueError(f"index must hold integer sample indices, got dtype {index.dtype}")
        index = index.to(self.loss_sum.device, torch.long)
        if self.validate and index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.num_samples):
            raise ValueError(f"index holds values outside [0, {self.num_samples}): LabelQuality was built for "
                             f"{self.num_samples} samples; pass the training set's size and each sample's own index")
        self.loss_sum.index_add_(0, index, losses.detach().to(self.loss_sum))
        self.loss_count.index_add_(0, index, torch.ones(index.shape, dtype=self.loss_count.dtype, device=index.device))

    @torch.no_grad()
    def refresh(self) -> torch.Tensor:
        """Fit the GMM to the mean recorded loss of every recorded sample, on all processes together; returns G [N].

        Starts a new collection: the recorded losses are cleared.
        """
        total = distributed.sum_over_processes_(self.loss_sum.clone())
        count = distributed.sum_over_processes_(self.loss_count.clone())
        seen = count > 0
        if not bool(seen.any()):
            raise ValueError("LabelQuality.refresh: no losses were recorded since the last refresh; call "
                             "record(index, per_sample_losses) for the training samples first")
        if distributed.rank() == 0:  # the fit runs once; the other processes receive its result
            mean = (total[seen] / count[seen]).cpu()
            self.clean_prob[seen] = gmm_clean_probability(mean, **self.gmm_settings).to(self.clean_prob.device)
        distributed.broadcast_from_first_(self.clean_prob)
        self.loss_sum.zero_()
        self.loss_count.zero_()
        self.refreshes += 1
        return self.clean_prob

    def fit(self, losses: torch.Tensor) -> torch.Tensor:
        """G from the losses [N] of every sample at once (an evaluation pass in index order); returns G [N]."""
        if losses.shape != (self.num_samples,):
            raise ValueError(f"losses must be [{self.num_samples}], one per training sample, got {tuple(losses.shape)}")
        self.record(torch.arange(self.num_samples, device=losses.device), losses)
        return self.refresh()

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}"
