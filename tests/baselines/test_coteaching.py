"""Co-teaching on the shared engine: forget-rate schedule, small-loss selection, the cross update, Adam's
lr / beta1 schedule, the forget rate's resolution, diagnostics, SANM on the exchanged samples, exact resume."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from baselines.common.checkpoint import load_checkpoint
from baselines.common.engine import Batch, RunInterrupted, run
from baselines.common.trainer import resolve_trainer
from baselines.coteaching import CoTeaching, forget_rate, remembered_count, small_loss_selection
from method_steps import build_method, step_config

ROOT = Path(__file__).resolve().parents[2]


def _method(tmp_path, *overrides):
    torch.manual_seed(0)
    return build_method(tmp_path, "coteaching", *overrides)


# ---------------------------------------------------------------------- pure pieces
def test_forget_rate_rises_linearly_then_holds():
    """rho(e) = linspace(0, eps**c, T_k)[e] for e < T_k, then eps (eps 0.45, T_k 10)."""
    assert [forget_rate(e, 0.45, 10, 1) for e in range(12)] == pytest.approx([0.05 * e for e in range(10)] + [0.45] * 2)
    # c = 2: the rise ends at 0.45**2 = 0.2025 (steps of 0.0225), then jumps to eps
    assert [forget_rate(e, 0.45, 10, 2) for e in (0, 1, 4, 9, 10, 199)] == pytest.approx(
        [0.0, 0.0225, 0.09, 0.2025, 0.45, 0.45])
    assert forget_rate(0, 0.45, 0, 1) == 0.45  # T_k = 0: no gradual phase


def test_small_loss_selection_by_hand():
    losses = torch.tensor([0.9, 0.1, 0.5, 0.1, 2.0, 0.3])
    assert small_loss_selection(losses, 3).tolist() == [1, 3, 5]  # ties keep the earlier index first
    assert small_loss_selection(losses, 6).tolist() == [1, 3, 5, 2, 0, 4]
    assert remembered_count(0.45, 128) == 70  # int(0.55 * 128) = int(70.4)
    assert remembered_count(0.0, 64) == 64
    assert remembered_count(0.9, 5) == 1  # int(0.5) = 0 would leave no loss: at least one sample


# ---------------------------------------------------------------------- the cross update
@pytest.mark.parametrize("sanm", [None, "on", "official"])
def test_each_network_learns_only_from_its_peers_selection(tmp_path, sanm):
    """Gradients of network 1's loss reach exactly the samples network 2 selected, and the reverse."""
    method = _method(tmp_path, *([f"+sanm={sanm}"] if sanm else []))
    ctx = method.ctx
    for net in method.networks.values():  # eval mode: BN running statistics, so samples do not mix in the gradient
        net.model.eval()
    index = torch.arange(16)
    images = ctx.augment(ctx.train_images[index], train=False).requires_grad_(True)
    labels = ctx.labels[index]
    losses, seen = {}, {}
    for net in method.networks.values():
        net.step = _spy_step(losses, net.name)
        if net.sanm is not None:
            net.sanm.views = _spy_views(net.sanm.views, seen, net.name)
    method.train_step(Batch(epoch=20, index=index, images=images, labels=labels))  # forget rate eps = 0.45

    keep = remembered_count(0.45, 16)
    with torch.no_grad():
        chosen = {name: small_loss_selection(F.cross_entropy(net.model(images), labels, reduction="none"), keep)
                  for name, net in method.networks.items()}
    assert set(chosen["net1"].tolist()) != set(chosen["net2"].tolist())  # otherwise the test could not fail
    for name, peer in (("net1", "net2"), ("net2", "net1")):
        grad = torch.autograd.grad(losses[name], images, retain_graph=True)[0]
        reached = grad.flatten(1).abs().sum(1).nonzero().flatten()
        assert set(reached.tolist()) == set(chosen[peer].tolist())
        if sanm:  # the masked copies are those of the peer's selection
            assert set(seen[name].tolist()) == set(index[chosen[peer]].tolist())
    if not sanm:  # the plain mean over the k selected samples (upstream's extra / k dropped)
        expected = F.cross_entropy(method.net1.model(images)[chosen["net2"]], labels[chosen["net2"]])
        assert losses["net1"].item() == pytest.approx(expected.item(), rel=1e-5)


def _spy_step(losses, name):
    def step(loss, grad_clip=None):  # keeps the loss (with its graph) instead of updating
        losses[name] = loss
        return {}

    return step


def _spy_views(views, seen, name):
    def spy(images, logits, feats, index, *args, **kwargs):  # records which samples get masked copies
        seen[name] = index
        return views(images, logits, feats, index, *args, **kwargs)

    return spy


@pytest.mark.slow
def test_sanm_waits_for_the_end_of_the_warmup(tmp_path):
    method = _method(tmp_path, "+sanm=on", "method.warmup_epochs=3")
    index = torch.arange(32)
    batch = Batch(0, index, method.ctx.augment(method.ctx.train_images[index], train=True), method.ctx.labels[index])
    assert set(method.train_step(batch)) == {"loss/ce_net1", "loss/ce_net2"}
    batch.epoch = 3
    assert {"loss/masked_net1", "loss/reconstruction_net2"} <= set(method.train_step(batch))


# ---------------------------------------------------------------------- schedules and settings
def test_lr_and_beta1_schedule_at_chosen_epochs(tmp_path):
    """200 epochs on CIFAR-10's row: lr 0.001 until 80, then 0.001 * (200 - e) / 120; beta1 0.9 -> 0.1 at 80."""
    method = _method(tmp_path, "trainer.epochs=200")
    ctx = method.ctx
    assert ctx.cfg.trainer.lr_decay_start == 80
    for epoch, lr, beta1 in [(0, 1e-3, 0.9), (79, 1e-3, 0.9), (80, 1e-3, 0.1), (140, 5e-4, 0.1),
                             (199, 1e-3 / 120, 0.1)]:
        assert ctx.lr_at(epoch) == pytest.approx(lr)
        method.set_adam_beta1(epoch)
        for net in method.networks.values():
            assert {g["betas"] for g in net.optimizer.param_groups} == {(beta1, 0.999)}
    method.set_adam_beta1(3)  # from the epoch number alone: going back restores 0.9 (what a resume relies on)
    assert method.net2.optimizer.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("dataset,epochs,start", [("cifar10", 200, 80), ("cifar100", 200, 100), ("digits", 200, 80),
                                                  ("cifar10", 100, 40), ("digits", 2, 1), ("cifar10", 3, 1)])  # 0.8, 1.2 round
def test_decay_start_per_dataset(tmp_path, dataset, epochs, start):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="coteaching", overrides=[f"dataset={dataset}", f"trainer.epochs={epochs}"])
    assert resolve_trainer(cfg, CoTeaching.trainer_defaults(cfg)).trainer.lr_decay_start == start


def test_beta1_after_decay_null_keeps_beta1(tmp_path):
    method = _method(tmp_path, "method.beta1_after_decay=null")
    method.set_adam_beta1(1)
    assert method.net1.optimizer.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("choice,expected,source", [("auto", 0.45, "expected"), ("nominal", 0.5, "nominal"),
                                                    ("actual", None, "actual"), (0.3, 0.3, "given")])
def test_forget_rate_resolution(tmp_path, choice, expected, source):
    """auto = the expected wrong-label share: r * (C - 1) / C = 0.45 for DivideMix's sym 50% on 10 classes."""
    method = _method(tmp_path, f"method.forget_rate={choice}")
    settings = method.resolved_settings()
    value = method.ctx.noise_rate_actual if expected is None else expected
    assert settings["forget_rate"] == pytest.approx(value) and settings["forget_rate_source"] == source
    assert method.forget_rate_at(10) == pytest.approx(value)


@pytest.mark.parametrize("override,key", [("method.forget_rate=1.5", "method.forget_rate"),
                                          ("method.forget_rate=most", "method.forget_rate"),
                                          ("method.exponent=0", "method.exponent"),
                                          ("method.num_gradual=-1", "method.num_gradual"),
                                          ("method.beta1_after_decay=1.0", "method.beta1_after_decay")])
def test_bad_settings_name_the_key(tmp_path, override, key):
    with pytest.raises(ValueError, match=key):
        _method(tmp_path, override)


@pytest.mark.parametrize("overrides,warmup", [([], 1), (["method.warmup_epochs=auto"], 10),
                                              (["method.warmup_epochs=auto", "method.num_gradual=4"], 4)])
def test_sanm_warmup_defaults_to_num_gradual(tmp_path, overrides, warmup):
    cfg = step_config(tmp_path, "coteaching", *overrides)  # the smoke preset sets method.warmup_epochs=1
    assert CoTeaching.resolve_warmup(cfg) == warmup


# ---------------------------------------------------------------------- diagnostics and evaluation
def test_selection_precision_and_recall_by_hand(tmp_path):
    method = _method(tmp_path)
    method.ctx.is_clean = torch.tensor([True, False, True, True, False, True])
    method._count_selection([torch.tensor([0, 1]), torch.tensor([2, 3])], torch.tensor([0, 1, 2, 4]))
    method._count_selection([torch.tensor([0, 1]), torch.tensor([1, 0])], torch.tensor([5, 3]))
    # net 1 picked samples 0, 1, 5, 3 (3 right of 4); net 2 picked 2, 4, 3, 5 (3 of 4); right labels seen: 0, 2, 5, 3
    stats = method._selection_stats()
    assert stats == pytest.approx({"selection_precision_net1": 3 / 4, "selection_recall_net1": 3 / 4,
                                   "selection_precision_net2": 3 / 4, "selection_recall_net2": 3 / 4})
    # selections are positions in the batch: net 1 picks sample 2 (right), net 2 sample 1 (wrong)
    method._count_selection([torch.tensor([1]), torch.tensor([0])], torch.tensor([1, 2]))
    stats = method._selection_stats()
    assert stats == pytest.approx({"selection_precision_net1": 4 / 5, "selection_recall_net1": 4 / 5,
                                   "selection_precision_net2": 3 / 5, "selection_recall_net2": 3 / 5})


@pytest.mark.slow
def test_first_epoch_keeps_everything(tmp_path):
    """rho(0) = 0: each network hands its peer the whole batch, so precision = the share of right labels."""
    method = _method(tmp_path)
    stats = method.train_epoch(0)
    assert stats["forget_rate"] == 0.0 and stats["adam_beta1"] == 0.9  # smoke: 2 epochs, decay from the second
    for k in (1, 2):
        assert stats[f"selection_precision_net{k}"] == pytest.approx(method.ctx.is_clean.float().mean().item())
        assert stats[f"selection_recall_net{k}"] == 1.0


@pytest.mark.slow
def test_test_acc_is_network_1_and_network_2_is_extra(tmp_path):
    method = _method(tmp_path)
    for net in method.networks.values():
        net.model.eval()
    with torch.no_grad():  # network 2 now always answers class 0
        method.net2.model.linear.weight.zero_()
        method.net2.model.linear.bias.copy_(torch.arange(10, 0, -1).float())
    ctx = method.ctx
    assert method.extra_test_metrics()["test_acc_net2"] == pytest.approx(
        100 * (ctx.test_labels == 0).float().mean().item())
    assert ctx.test_accuracy(method.predict) == ctx.test_accuracy(method.net1.model)


# ---------------------------------------------------------------------- resume
class _KilledInSecondEpoch(CoTeaching):
    def train_epoch(self, epoch: int) -> dict:
        if epoch == 1:
            raise KeyboardInterrupt  # as a kill after the first checkpoint
        return super().train_epoch(epoch)


@pytest.mark.slow
def test_resume_after_a_kill_is_bit_identical(tmp_path):
    """Weights, Adam states (betas included) and metrics: 2 epochs straight == 1, killed, resumed for 1.
    The decay start at epoch 1 makes the resumed epoch switch beta1, and SANM starts in it."""
    overrides = ["+sanm=on", "dataset.train_subset=96", "trainer.lr_decay_start=1"]
    run(step_config(tmp_path, "coteaching", *overrides), CoTeaching, run_dir=tmp_path / "whole")
    with pytest.raises(RunInterrupted):  # the engine's form of Ctrl-C
        run(step_config(tmp_path, "coteaching", *overrides), _KilledInSecondEpoch, run_dir=tmp_path / "killed")
    run(step_config(tmp_path, "coteaching", *overrides, "resume=true"), CoTeaching, run_dir=tmp_path / "killed")

    whole, resumed = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("whole", "killed"))
    assert whole["epoch"] == resumed["epoch"] == 2  # epochs completed
    for name in ("net1", "net2"):
        _assert_identical(whole["networks"][name], resumed["networks"][name])
    assert whole["networks"]["net1"]["optimizer"]["param_groups"][0]["betas"] == (0.1, 0.999)
    records = [[{k: v for k, v in json.loads(line).items() if k != "epoch_seconds"}
                for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("whole", "killed")]
    assert records[0] == records[1] and [r["epoch"] for r in records[0]] == [1, 2]
    assert {"test_acc_net2", "selection_precision_net1", "mask_ratio_clean_net2"} <= set(records[0][1])
    resolved = (tmp_path / "whole" / "resolved.yaml").read_text()
    assert "forget_rate: 0.45" in resolved and "forget_rate_source: expected" in resolved


def _assert_identical(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_identical(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path
