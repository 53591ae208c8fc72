"""CDR: the critical-parameter edit by hand (docs/baselines.md 7.1), eps resolution, model selection, resume."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from baselines.cdr import CDR
from baselines.common.checkpoint import load_checkpoint
from baselines.common.critical import CriticalGradientEdit, critical_gradient_edit, critical_parameters, kth_largest
from baselines.common.engine import ConfigurationError, RunContext, run
from baselines.common.noise import NoiseSpec
from method_steps import smoke_config


# ---------------------------------------------------------------------- the edit on a model with known gradients
class _Tiny(nn.Module):
    """4 conv-kernel scalars + 6 linear-weight scalars = |W| = 10; a conv bias, BN and a linear bias beside."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 2)
        self.bn = nn.BatchNorm2d(1)
        self.fc = nn.Linear(3, 2)


def _tiny(conv_w, conv_g, fc_w, fc_g):
    model = _Tiny()
    with torch.no_grad():
        model.conv.weight.copy_(torch.tensor(conv_w).view(1, 1, 2, 2))
        model.fc.weight.copy_(torch.tensor(fc_w))
    model.conv.weight.grad = torch.tensor(conv_g).view(1, 1, 2, 2)
    model.fc.weight.grad = torch.tensor(fc_g)
    for p, value in ((model.conv.bias, 0.7), (model.bn.weight, -0.3), (model.bn.bias, 0.2), (model.fc.bias, 0.9)):
        p.grad = torch.full_like(p, value)
    return model


# s = |g * w|: conv 0.01..0.04 (all below every linear score); linear [[1.0, 0.2, 0.6], [0.4, 0.8, 0.009]]:
# the last linear scalar has the largest gradient but a tiny weight, so |g| alone would keep it
CONV_W, CONV_G = [1.0, 1.0, 1.0, 1.0], [0.01, -0.02, 0.03, 0.04]
FC_W, FC_G = [[2.0, 2.0, 2.0], [2.0, 2.0, -0.01]], [[0.5, -0.1, 0.3], [0.2, 0.4, 0.9]]


def _untouched(model):
    """Biases and BatchNorm parameters still hold the gradients `_tiny` gave them."""
    expected = ((model.conv.bias, 0.7), (model.bn.weight, -0.3), (model.bn.bias, 0.2), (model.fc.bias, 0.9))
    return all(torch.equal(p.grad, torch.full_like(p, value)) for p, value in expected)


def test_global_top_k_by_grad_times_weight_keeps_scaled_gradients():
    """eps = 0.5: k = int(0.5 * 10) = 5; the top five scores are all linear, so the conv layer loses every scalar."""
    model = _tiny(CONV_W, CONV_G, FC_W, FC_G)
    kept = critical_gradient_edit(critical_parameters(model), eps=0.5)
    assert kept.item() == 5
    assert torch.equal(model.conv.weight.grad, torch.zeros(1, 1, 2, 2))
    expected = 0.5 * torch.tensor([[0.5, -0.1, 0.3], [0.2, 0.4, 0.0]])
    assert torch.allclose(model.fc.weight.grad, expected, atol=0, rtol=1e-6)
    assert _untouched(model)


def test_the_ranking_spans_layers():
    """eps = 0.3: k = 7, theta = 0.03: the two largest conv scores join the five linear ones."""
    model = _tiny(CONV_W, CONV_G, FC_W, FC_G)
    assert critical_gradient_edit(critical_parameters(model), eps=0.3).item() == 7
    assert torch.allclose(model.conv.weight.grad.flatten(), 0.7 * torch.tensor([0.0, 0.0, 0.03, 0.04]))
    assert torch.allclose(model.fc.weight.grad, 0.7 * torch.tensor([[0.5, -0.1, 0.3], [0.2, 0.4, 0.0]]))


def test_ties_at_the_threshold_are_all_kept():
    """eps = 0.75: k = int(2.5) = 2, theta = 0.6 shared by three scalars: four survive, not two."""
    fc_g = [[0.5, 0.3, 0.3], [0.3, 0.1, 0.05]]  # s = [1.0, 0.6, 0.6, 0.6, 0.2, 0.1]
    model = _tiny(CONV_W, CONV_G, [[2.0] * 3] * 2, fc_g)
    edit = CriticalGradientEdit(0.75)
    edit(model)
    assert torch.allclose(model.fc.weight.grad, 0.25 * torch.tensor([[0.5, 0.3, 0.3], [0.3, 0.0, 0.0]]))
    assert edit.epoch_stats()["kept_fraction"] == pytest.approx(0.4)  # 4 of 10, above 1 - eps = 0.25


def test_eps_zero_changes_nothing_and_k_zero_clears_every_weight_gradient():
    model = _tiny(CONV_W, CONV_G, FC_W, FC_G)
    assert critical_gradient_edit(critical_parameters(model), eps=0.0).item() == 10
    assert torch.equal(model.fc.weight.grad, torch.tensor(FC_G))
    assert torch.equal(model.conv.weight.grad.flatten(), torch.tensor(CONV_G))
    assert critical_gradient_edit(critical_parameters(model), eps=0.95).item() == 0  # int(0.05 * 10) = 0
    assert not model.fc.weight.grad.any() and not model.conv.weight.grad.any()
    assert _untouched(model)


def test_parameters_without_gradient_are_skipped_and_not_counted():
    """conv without grad: |W| = 6 linear scalars, eps = 0.5 keeps int(3) = 3 (scores 1.0, 0.8, 0.6)."""
    model = _tiny(CONV_W, CONV_G, FC_W, FC_G)
    model.conv.weight.grad = None
    edit = CriticalGradientEdit(0.5)
    edit(model)
    assert model.conv.weight.grad is None
    assert torch.allclose(model.fc.weight.grad, 0.5 * torch.tensor([[0.5, 0.0, 0.3], [0.0, 0.4, 0.0]]))
    assert edit.epoch_stats()["kept_fraction"] == pytest.approx(0.5)


def test_kept_fraction_sums_over_the_epoch_and_restarts():
    edit = CriticalGradientEdit(0.5)
    edit(_tiny(CONV_W, CONV_G, FC_W, FC_G))  # 5 of 10
    no_conv = _tiny(CONV_W, CONV_G, FC_W, FC_G)
    no_conv.conv.weight.grad = None
    edit(no_conv)  # 3 of 6
    assert edit.epoch_stats()["kept_fraction"] == pytest.approx(8 / 16)
    assert math.isnan(edit.epoch_stats()["kept_fraction"])  # nothing ranked since


@pytest.mark.parametrize("eps", [-0.1, 1.5])
def test_edit_rejects_a_rate_outside_the_unit_interval(eps):
    with pytest.raises(ValueError, match="eps"):
        CriticalGradientEdit(eps)


# ---------------------------------------------------------------------- eps from method.noise_rate
def _noise_ctx(choice, protocol="dividemix", rate=0.5, actual=0.44):
    return SimpleNamespace(noise_spec=NoiseSpec(type="sym", rate=rate, protocol=protocol), num_classes=10,
                           noise_rate_actual=actual, cfg=OmegaConf.create({"method": {"noise_rate": choice}}),
                           data=SimpleNamespace(name="digits"))


def resolve_noise_rate(choice, protocol="dividemix"):
    """CDR's eps through the engine's shared resolution (the one Co-teaching's forget rate uses too)."""
    return RunContext.assumed_noise_rate(_noise_ctx(choice, protocol), "noise_rate")


@pytest.mark.parametrize(
    "choice,protocol,value,source",
    [("auto", "dividemix", 0.45, "expected"), ("auto", "exclude_true", 0.5, "expected"),
     ("nominal", "dividemix", 0.5, "nominal"), ("actual", "dividemix", 0.44, "actual"),
     (0.3, "dividemix", 0.3, "given"), (0, "dividemix", 0.0, "given")],
)
def test_noise_rate_resolution(choice, protocol, value, source):
    resolved, where = resolve_noise_rate(choice, protocol)
    assert resolved == pytest.approx(value) and where == source


@pytest.mark.parametrize("choice", ["half", 1.0, -0.1, True, None])
def test_bad_noise_rate_names_the_key(choice):
    with pytest.raises(ValueError, match="method.noise_rate"):
        resolve_noise_rate(choice)


# ---------------------------------------------------------------------- through the engine
def _cfg(tmp_path, *overrides):
    return smoke_config("cdr", "noise=sym_0.5", "+sanm=on", f"dataset.cache_dir={tmp_path / 'cache'}", *overrides)


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_step_edits_the_model_but_not_the_sanm_decoder(tmp_path):
    """After one SANM step (masked copies in the loss), about 1 - eps = 0.55 of the weight gradients are
    non-zero; biases and the decoder keep theirs."""
    cfg = _cfg(tmp_path)
    method = CDR(RunContext(cfg, tmp_path, CDR))
    batch = next(method.ctx.batches(epoch=1))  # smoke: warm-up 1 epoch, so SANM is active
    method.net.model.train()
    method.train_step(batch)
    weights = critical_parameters(method.net.model)
    nonzero = sum((p.grad != 0).sum().item() for p in weights) / sum(p.numel() for p in weights)
    assert 0.5 < nonzero <= 0.56
    biases = [p for p in method.net.model.parameters() if p.ndim == 1]
    assert sum((p.grad != 0).sum().item() for p in biases) / sum(p.numel() for p in biases) > 0.9
    decoder = [p for p in method.net.sanm.parameters() if p.ndim in (2, 4) and p.grad is not None]
    assert decoder and sum((p.grad != 0).sum().item() for p in decoder) / sum(p.numel() for p in decoder) > 0.9


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """Two uninterrupted epochs (SANM active in the second), with the noisy validation split."""
    root = tmp_path_factory.mktemp("cdr")
    run(_cfg(root), CDR, run_dir=root / "whole")
    return root / "whole"


@pytest.mark.slow
def test_summary_selects_the_epoch_by_noisy_validation(whole_run):
    records = _records(whole_run)
    summary = json.loads((whole_run / "summary.json").read_text())
    best = max(r["val_acc"] for r in records)
    first_best = next(r for r in records if r["val_acc"] == best)
    assert summary["best_val_acc"] == best and summary["best_val_epoch"] == first_best["epoch"]
    assert summary["test_acc_at_best_val"] == first_best["test_acc"]
    assert all(0.55 - 1e-3 < r["kept_fraction"] <= 0.56 for r in records)  # eps = 0.45, |W| is large: no rounding
    resolved = (whole_run / "resolved.yaml").read_text()
    assert "noise_rate: 0.45" in resolved and "noise_rate_source: expected" in resolved
    assert "val_fraction: 0.1" in resolved


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_resume_after_a_kill_continues_exactly(tmp_path, monkeypatch, whole_run):
    """Killed inside the second epoch after one step, then resumed: the same weights as two straight epochs."""
    train_step, steps_in_epoch_1 = CDR.train_step, []

    def dies_in_epoch_1(self, batch):
        if batch.epoch == 1:
            if steps_in_epoch_1:
                raise _Killed
            steps_in_epoch_1.append(batch)
        return train_step(self, batch)

    monkeypatch.setattr(CDR, "train_step", dies_in_epoch_1)
    with pytest.raises(_Killed):
        run(_cfg(tmp_path), CDR, run_dir=tmp_path / "killed")
    monkeypatch.setattr(CDR, "train_step", train_step)
    assert len(_records(tmp_path / "killed")) == 1
    run(_cfg(tmp_path, "resume=true"), CDR, run_dir=tmp_path / "killed")
    whole = load_checkpoint(whole_run / "checkpoints" / "last.pt")["networks"]["net"]
    resumed = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["networks"]["net"]
    for key in ("model", "sanm"):
        assert whole[key].keys() == resumed[key].keys()
        assert all(torch.equal(whole[key][k], resumed[key][k]) for k in whole[key])
    def without_times(records):
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in records]

    assert without_times(_records(tmp_path / "killed")) == without_times(_records(whole_run))


@pytest.mark.slow
def test_bad_noise_rate_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="method.noise_rate"):
        run(_cfg(tmp_path, "method.noise_rate=1.5"), CDR, run_dir=tmp_path / "run")


@pytest.mark.parametrize("seed", range(4))
def test_kth_largest_radix_step_equals_kthvalue(seed):
    """The CPU radix step against kthvalue, with ties, zeros and values spanning many magnitudes."""
    gen = torch.Generator().manual_seed(seed)
    scores = (torch.randn(200_000, generator=gen) * 10.0 ** torch.randint(-8, 3, (200_000,), generator=gen)).abs()
    scores[:5000] = 0.0
    scores[5000:9000] = scores[9000]  # a block of ties
    for k in (1, 17, 4321, 100_000, 195_000, 200_000):
        assert kth_largest(scores, k) == scores.kthvalue(len(scores) - k + 1).values
