"""Why a DivideMix / C2D run's co-divide does or does not separate the labels, read from its last checkpoint.

The run's `metrics.jsonl` says how many samples went to the labeled side and how precisely (labeled_fraction,
selection_precision, gmm_auc); this script says why. It loads `checkpoints/last.pt`, recomputes each network's
per-sample losses exactly as the co-divide does (`RunContext.per_sample_losses`: un-augmented, eval mode,
against the noisy labels), and prints the loss quantiles of the right and the wrong labels, the two GMM
components fitted to the min-max normalised losses (`sanm_plugin.gmm_clean_probability`'s settings), and the
labeled share and its precision at the method's threshold. A split whose components are the bulk and the
high-loss tail, rather than right and wrong labels, shows as a low component holding most samples at a
precision near the share of right labels (benchmarks/RESULTS.md, DivideMix at sym 80%). For the unlabeled side
it also says how often its given labels and the networks' guesses (which it trains on) are right: the case for
SANM reading G, the probability that the given label is right, on the labeled side alone
(`method.sanm_masked_set=labeled`).

    python benchmarks/codivide.py RUN_DIR [RUN_DIR ...]

RUN_DIR is one run's directory (the one holding resolved.yaml and checkpoints/). Needs the run's dataset where
the run found it, and takes about a minute per 5k images on one CPU thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from baselines.common.checkpoint import load_checkpoint  # noqa: E402
from baselines.common.engine import RunContext  # noqa: E402
from baselines.registry import METHODS  # noqa: E402
from sanm_plugin.quality import fit_loss_gmm, normalize_losses  # noqa: E402

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def gmm_components(normalized: np.ndarray, max_iter: int) -> list[tuple[float, float, float]]:
    """(mean, std, weight) of the co-divide's two components, lower mean first."""
    gmm = fit_loss_gmm(normalized.reshape(-1, 1), max_iter=max_iter)
    parts = zip(gmm.means_.ravel(), np.sqrt(gmm.covariances_.ravel()), gmm.weights_)
    return sorted((float(m), float(s), float(w)) for m, s, w in parts)


def diagnose(run_dir: Path) -> list[str]:
    """The report lines for one run."""
    if not (run_dir / "resolved.yaml").is_file() or not (run_dir / "checkpoints" / "last.pt").is_file():
        raise SystemExit(f"{run_dir} is not a run directory with a checkpoint (it needs resolved.yaml and "
                         "checkpoints/last.pt); give the directory of one seed's run")
    cfg = OmegaConf.load(run_dir / "resolved.yaml")
    method_cls = METHODS.get(cfg.method.name)
    if method_cls is None or not hasattr(method_cls, "co_divide"):
        raise SystemExit(f"{run_dir} is a {cfg.method.name} run; only methods with a co-divide (dividemix, c2d) have "
                         "one to diagnose")
    # a run written before a method key was added lacks it: the key's default is what that run trained with
    cfg.method = OmegaConf.merge(OmegaConf.structured(method_cls.config), cfg.method)
    ctx = RunContext(cfg, run_dir, method_cls)
    method = method_cls(ctx)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt", map_location=ctx.device)
    for name, net in method.networks.items():
        net.load_state_dict(state["networks"][name])
    method.load_extra_state(state["method"])
    clean = ctx.is_clean.cpu().numpy()
    lines = [f"{run_dir}: after epoch {state['epoch']}, {clean.mean():.3f} of {len(clean)} labels right"]
    for net in method.nets:
        net.model.eval()
    # the networks' guess of each training image's class: the test prediction, un-augmented
    guess_right = (ctx.predicted_classes(method.predict) == ctx.true_labels).cpu().numpy()
    for k, net in enumerate(method.nets):
        losses = ctx.per_sample_losses(net.model.eval())
        stats: dict = {}
        prob = method.divide(k, losses, stats)  # the split the next epoch would make
        unlabeled = (~method.is_labeled(prob)).cpu().numpy()
        prob = prob.cpu().numpy()
        lines.append(f"  {net.name}: labeled share {stats[f'labeled_fraction_{net.name}']:.3f} at precision "
                     f"{stats[f'selection_precision_{net.name}']:.3f}, gmm_auc {stats[f'gmm_auc_{net.name}']:.3f}")
        if unlabeled.any():  # what the unlabeled side trains on: the networks' guess, not its label
            lines.append(f"    unlabeled side: {unlabeled.sum()} samples, mean G {prob[unlabeled].mean():.3f}; their "
                         f"labels right for {clean[unlabeled].mean():.3f}, the networks' guess (the ensemble's "
                         f"prediction, un-augmented) for {guess_right[unlabeled].mean():.3f}")
        losses = losses.cpu().numpy()
        for label, rows in (("right", clean), ("wrong", ~clean)):
            if rows.any():
                cells = " ".join(f"{q:.3f}" for q in np.quantile(losses[rows], QUANTILES))
                lines.append(f"    {label} labels' loss at quantiles {QUANTILES}: {cells}")
        components = gmm_components(normalize_losses(losses), int(cfg.method.gmm_max_iter))
        lines.append("    GMM on normalised losses (mean, std, weight): " + "; ".join(
            f"{m:.3f}, {s:.3f}, {w:.3f}" for m, s, w in components))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (one seed's run each)")
    args = parser.parse_args()
    for run_dir in args.runs:
        print("\n".join(diagnose(run_dir)))


if __name__ == "__main__":
    main()
