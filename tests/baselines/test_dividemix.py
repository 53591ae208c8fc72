"""DivideMix on the shared engine: defaults table, co-divide, the MixMatch batch, warm-up -> main switch."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from baselines.common.engine import RunContext
from baselines.dividemix import DivideMix, dividemix_defaults

ROOT = Path(__file__).resolve().parents[2]


def _ctx(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="dividemix", overrides=["+experiment=smoke", "noise=sym_0.5",
                                                          f"dataset.cache_dir={tmp_path}", *overrides])
    return RunContext(cfg, tmp_path, DivideMix)


@pytest.mark.parametrize(
    "dataset,noise,rate,lambda_u,tau,history",
    [("cifar10", "sym", 0.2, 0, 0.5, 1), ("cifar10", "sym", 0.5, 25, 0.5, 1), ("cifar10", "sym", 0.9, 50, 0.6, 5),
     ("cifar10", "asym", 0.4, 0, 0.5, 1), ("cifar100", "sym", 0.5, 150, 0.5, 1), ("cifar100", "sym", 0.2, 25, 0.5, 1),
     ("digits", "sym", 0.45, 25, 0.5, 1), ("cifar10", "pairflip", 0.45, 25, 0.5, 1)],
)
def test_defaults_follow_the_table(dataset, noise, rate, lambda_u, tau, history):
    d = dividemix_defaults(dataset, noise, rate)
    assert (d["lambda_u"], d["p_threshold"], d["gmm_history"]) == (lambda_u, tau, history)


def test_warmup_defaults_per_dataset(tmp_path):
    ctx = _ctx(tmp_path, "method.warmup_epochs=auto")
    assert ctx.warmup_epochs == 10  # digits takes the CIFAR-10 row


@pytest.mark.slow
def test_warmup_then_codivide_with_diagnostics(tmp_path):
    torch.manual_seed(0)
    method = DivideMix(_ctx(tmp_path))
    warm = method.train_epoch(0)
    assert set(warm) == {"loss/warmup_net1", "loss/warmup_net2"}
    main = method.train_epoch(1)
    for k in (1, 2):
        assert 0 <= main[f"labeled_fraction_net{k}"] <= 1
        assert {f"selection_precision_net{k}", f"selection_recall_net{k}", f"gmm_auc_net{k}", f"loss/x_net{k}",
                f"loss/u_net{k}"} <= set(main)


class _Spy:
    def __init__(self):
        self.inputs = None

    def __call__(self, inputs, targets, alpha):
        from baselines.common.mixup import mix

        self.inputs, self.targets = inputs, targets
        return mix(inputs, targets, alpha, lam=1.0, perm=torch.arange(len(inputs)))


@pytest.mark.slow
@pytest.mark.parametrize("sanm,extra_views,masked_set", [(None, 0, "all"), ("on", 1, "all"), ("official", 2, "all"),
                                                         ("on", 1, "labeled")])
def test_mixmatch_batch_composition(tmp_path, monkeypatch, sanm, extra_views, masked_set):
    """[x, x', masked x..., u, u', masked u...]: masked views join as extra labeled / unlabeled rows; with
    method.sanm_masked_set=labeled only the labeled samples are masked (and only their G read)."""
    import baselines.dividemix as dm

    method = DivideMix(_ctx(tmp_path, f"method.sanm_masked_set={masked_set}", *([f"+sanm={sanm}"] if sanm else [])))
    spy = _Spy()
    monkeypatch.setattr(dm, "mix", spy)
    prob = torch.rand(method.ctx.num_train, device=method.ctx.device)
    lab, unl = torch.arange(0, 8), torch.arange(8, 14)
    masked_samples = []
    if sanm:
        views = method.nets[0].sanm.views
        monkeypatch.setattr(method.nets[0].sanm, "views", lambda images, logits, feats, index, *rest, **kw: (
            masked_samples.append(index.tolist()), views(images, logits, feats, index, *rest, **kw))[1])
    method._mixmatch_step(method.nets[0], method.nets[1], lab, unl, prob, lambda_u=1.0, epoch=5)
    rows_x, rows_u = (2 + extra_views) * 8, (2 + (extra_views if masked_set == "all" else 0)) * 6
    assert len(spy.inputs) == rows_x + rows_u
    if sanm:
        assert masked_samples == [list(range(14)) if masked_set == "all" else list(range(8))]
    assert torch.allclose(spy.targets.sum(1), torch.ones(len(spy.targets)), atol=1e-5)
    if sanm:  # the masked labeled rows carry the regularised refined targets: less mass on the arg-max
        sharp, top = spy.targets[:8].max(1)
        masked = spy.targets[16:24].gather(1, top.unsqueeze(1)).squeeze(1)
        assert (masked <= sharp + 1e-6).all() and (masked < sharp).any()


def test_a_masked_set_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(ValueError, match="method.sanm_masked_set must be one of all, labeled, got 'unlabeled'"):
        DivideMix(_ctx(tmp_path, "+sanm=on", "method.sanm_masked_set=unlabeled"))


@pytest.mark.slow
def test_empty_unlabeled_set_is_handled(tmp_path):
    method = DivideMix(_ctx(tmp_path))
    prob = torch.ones(method.ctx.num_train, device=method.ctx.device)  # every sample labeled
    stats = method._train(method.nets[0], method.nets[1], prob, epoch=3)
    assert stats["loss/u"] == 0.0
    stats = method._train(method.nets[0], method.nets[1], torch.zeros_like(prob), epoch=3)  # none labeled
    assert stats == {"skipped_epoch": 1.0}


def test_split_threshold_by_hand(tmp_path):
    """DivideMix: labeled = w > tau. C2D clips tau into (min w, max w) so neither set is empty."""
    from baselines.c2d import C2D

    prob = torch.tensor([0.1, 0.2, 0.3])
    method = DivideMix(_ctx(tmp_path))
    assert method.threshold(prob) == 0.5 and not (prob > method.threshold(prob)).any()
    c2d = object.__new__(C2D)  # only the threshold rule, no networks
    c2d.ctx = method.ctx  # its recipe (paper) decides the rule
    c2d.settings = {"p_threshold": 0.5}
    assert c2d.threshold(prob) == pytest.approx(0.3 - 1e-5)
    assert (prob > c2d.threshold(prob)).tolist() == [False, False, True]
    c2d.settings = {"p_threshold": 0.05}
    assert (prob > c2d.threshold(prob)).tolist() == [False, True, True]


@pytest.mark.slow
@pytest.mark.parametrize("sanm,extra_views", [(None, 0), ("on", 1), ("official", 2)])
def test_official_recipe_mixes_fresh_views_12b_rows_with_official_sanm(tmp_path, monkeypatch, sanm, extra_views):
    """[xp, xp2 (AA), xs1, xs2 (RA), masked x..., the same for u]: 12B rows with the official two masked images."""
    import baselines.dividemix as dm

    method = DivideMix(_ctx(tmp_path, "+recipe=official", *([f"+sanm={sanm}"] if sanm else [])))
    assert [a.policy.policy for a in method.mix_augments] == ["autoaugment"] * 2 + ["randaugment"] * 2
    assert method.ctx.augment.policy.policy == "autoaugment"  # the co-guessing views and what SANM masks
    spy = _Spy()
    monkeypatch.setattr(dm, "mix", spy)
    prob = torch.rand(method.ctx.num_train, device=method.ctx.device)
    lab, unl = torch.arange(0, 8), torch.arange(8, 16)
    method._mixmatch_step(method.nets[0], method.nets[1], lab, unl, prob, lambda_u=1.0, epoch=5)
    assert len(spy.inputs) == 2 * (4 + extra_views) * 8
    views = spy.inputs[:32].view(4, 8, *spy.inputs.shape[1:])
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[2], views[3])  # independent draws


@pytest.mark.slow
def test_official_recipe_settings(tmp_path):
    from baselines.c2d import C2D
    from baselines.common.trainer import resolve_trainer

    ctx = _ctx(tmp_path, "+recipe=official", "noise=sym_0.9", "method.warmup_epochs=auto", "trainer.epochs=auto")
    method = DivideMix(ctx)
    assert (method.settings["lambda_u"], method.settings["p_threshold"], method.settings["gmm_history"]) == (25, 0.5, 5)
    assert ctx.warmup_epochs == 10 and ctx.cfg.method.warmup_grad_clip == 1.0
    assert method.warmup_augment.policy.policy == "c2d_warmup"
    assert method._warmup(method.nets[0], 0) > 0  # an epoch of clipped CE on the per-image warm-up views
    assert dividemix_defaults("cifar10", "sym", 0.9)["lambda_u"] == 50  # the paper's table stays the default
    for epochs, expected in [("auto", (361, [150])), (60, (60, [25]))]:
        cfg = ctx.cfg.copy()
        cfg.trainer.epochs, cfg.trainer.lr_milestones = epochs, "auto"
        trainer = resolve_trainer(cfg, DivideMix.trainer_defaults(cfg)).trainer
        assert (trainer.epochs, list(trainer.lr_milestones)) == expected
    cfg.method.recipe, cfg.trainer.epochs = "paper", "auto"
    assert resolve_trainer(cfg, DivideMix.trainer_defaults(cfg)).trainer.epochs == 300
    cfg = ctx.cfg.copy()
    cfg.dataset.name = "cifar100"
    assert DivideMix.resolve_warmup(cfg) == 20 and C2D.resolve_warmup(cfg) == 20
    cfg.method.recipe = "paper"
    assert DivideMix.resolve_warmup(cfg) == 30 and C2D.resolve_warmup(cfg) == 5
    cfg.method.recipe = "offical"
    with pytest.raises(ValueError, match="method.recipe must be one of paper, official"):
        DivideMix.resolve_warmup(cfg)


def test_c2d_under_the_official_recipe_co_divides_as_dividemix_with_tau_unclipped(tmp_path):
    from types import SimpleNamespace

    from baselines.c2d import C2D

    method = C2D.__new__(C2D)  # the two rules read only the config and the resolved settings
    method.settings = {"p_threshold": 0.5}
    prob = torch.tensor([0.6, 0.7, 0.9])
    for recipe, sequential, tau in [("paper", True, 0.6 + 1e-5), ("official", False, 0.5)]:
        method.ctx = SimpleNamespace(cfg=SimpleNamespace(method=SimpleNamespace(recipe=recipe)))
        assert method.sequential == sequential and method.threshold(prob) == pytest.approx(tau)


@pytest.mark.slow
def test_epoch_pool_draws_a_fresh_class_balanced_pool_that_the_gmm_and_training_use(tmp_path, monkeypatch):
    """Clothing1M's protocol: each epoch the GMM sees only a balanced draw of method.epoch_pool samples, and the
    labeled / unlabeled batches come from it; a warm-up draws twice as many."""
    torch.manual_seed(0)
    method = DivideMix(_ctx(tmp_path, "method.epoch_pool=40"))
    ctx, seen, trained = method.ctx, [], []
    per_sample_losses, index_batches = ctx.per_sample_losses, ctx.index_batches
    monkeypatch.setattr(ctx, "per_sample_losses", lambda model, index=None: seen.append(index) or
                        per_sample_losses(model, index))
    monkeypatch.setattr(ctx, "index_batches", lambda epoch, batch_size=None, index=None, desc="train":
                        trained.append(index) or index_batches(epoch, batch_size, index, desc))
    method.train_epoch(0)
    assert [len(pool) for pool in trained] == [80, 80]  # each network's warm-up: its own draw of 2 x 40
    trained.clear()
    method.train_epoch(1)
    pool = seen[0]
    assert len(seen) == 2 and seen[1] is pool and len(pool) == len(set(pool.tolist())) == 40
    counts = torch.bincount(ctx.labels[pool], minlength=ctx.num_classes)
    assert counts.max() - counts.min() <= 1  # balanced over the noisy classes
    assert all(set(batch.tolist()) <= set(pool.tolist()) for batch in trained if batch is not None)
    method.train_epoch(2)
    assert not torch.equal(seen[2], pool)  # a fresh draw each epoch
    with pytest.raises(ValueError, match="gmm_history=1"):
        DivideMix(_ctx(tmp_path, "method.epoch_pool=40", "method.gmm_history=5"))
