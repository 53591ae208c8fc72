"""trainer.precision / channels_last / compile: resolution, the autocast they open, and runs that use them."""

import pytest
import torch

from baselines.common.acceleration import Acceleration, resolve_compile, resolve_precision, routed_model
from baselines.common.distributed import World
from baselines.common.engine import ConfigurationError, run
from baselines.common.models import build_model
from baselines.registry import BASELINES

from method_steps import smoke_config

CPU = torch.device("cpu")


def _cfg(method, *overrides):
    return smoke_config(method, "progress=false", *overrides)


@pytest.mark.parametrize("given,expected", [("auto", "32"), (32, "32"), ("fp32", "32"), ("bf16", "bf16"),
                                            ("fp16", "fp16"), (16, "fp16")])
def test_precision_names_resolve_and_auto_is_32_on_cpu(given, expected):
    assert resolve_precision(given, CPU) == expected


def test_bad_speed_options_are_named():
    with pytest.raises(ValueError, match="trainer.precision must be auto, 32, bf16 or fp16, got 'fp8'"):
        resolve_precision("fp8", CPU)
    with pytest.raises(ValueError, match="trainer.compile must be false, true or a backend"):
        resolve_compile("fastest")
    assert resolve_compile(True) == "inductor" and resolve_compile(False) is None and resolve_compile("eager") == "eager"


def test_channels_last_is_refused_for_a_resnet_narrower_than_8_on_a_cpu_and_allowed_elsewhere():
    # torch 2.14.1's CPU backward crashes the process in that case (tests cannot show a segfault; the guard's
    # message must say what to change)
    cpu_cl = Acceleration(CPU, channels_last=True)
    for name in ("preact_resnet18", "resnet18"):
        with pytest.raises(ValueError, match=f"model={name} model.width=4 on a CPU.*give model.width=8 or more, or "
                                             "trainer.channels_last=false"):
            cpu_cl.check_model(name, 4)
        cpu_cl.check_model(name, 8)
        Acceleration(CPU).check_model(name, 4)
        Acceleration(torch.device("cuda"), channels_last=True).check_model(name, 4)
    cpu_cl.check_model("cnn9", 4)


@pytest.mark.slow
def test_a_run_that_channels_last_would_crash_stops_before_any_work(tmp_path):
    with pytest.raises(ConfigurationError, match="model.width=4 on a CPU"):
        run(_cfg("ce", "model.width=4", "trainer.channels_last=true"), BASELINES["ce"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_autocast_runs_convolutions_in_bf16_and_is_a_no_op_at_32():
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8)
    with Acceleration(CPU, "bf16").autocast():
        assert conv(x).dtype == torch.bfloat16
    with Acceleration(CPU, "32").autocast():
        assert conv(x).dtype == torch.float32
    assert Acceleration(CPU, "fp16").grad_scaler() is not None and Acceleration(CPU, "bf16").grad_scaler() is None


@pytest.mark.slow
def test_the_plain_path_is_the_network_itself_and_a_routed_one_keeps_its_attributes():
    model = build_model("preact_resnet18", 10, width=8)
    assert routed_model(model, Acceleration(CPU), World(), CPU) is model
    routed = routed_model(model, Acceleration(CPU, compile_backend="eager"), World(), CPU)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(routed(x), model(x))
    torch.testing.assert_close(routed.forward_head(routed.forward_features(x)), model(x))
    assert routed.get_classifier() is model.linear and routed.eval() is routed and not model.training


# one step with SANM active from the start, one batch of 32: CPUs without native bf16 or fp16 kernels run their
# backward passes ~20-50x slower than fp32 (fp16 on 128 images took 22 s here)
SHORT_SANM = ["+sanm=on", "noise=sym_0.5", "dataset.train_subset=32", "trainer.batch_size=32", "trainer.epochs=1",
              "sanm.warmup_epochs=0"]


@pytest.mark.slow
@pytest.mark.parametrize("options", [["trainer.precision=bf16", "trainer.channels_last=true"],
                                     ["trainer.precision=fp16"], ["trainer.compile=eager"]])
def test_sanm_runs_finish_with_each_speed_option_and_checkpoint_the_same_weights(tmp_path, options):
    summary = run(_cfg("ce", *SHORT_SANM, *options), BASELINES["ce"], run_dir=tmp_path / "fast")
    assert summary["epochs"] == 1 and 0 <= summary["last_test_acc"] <= 100
    fast = torch.load(tmp_path / "fast" / "checkpoints" / "last.pt", weights_only=True)["networks"]["net"]
    plain = build_model("preact_resnet18", 10, width=8).state_dict()
    assert fast["model"].keys() == plain.keys()  # no compile or DDP prefixes: runs resume across the options
    assert ("grad_scaler" in fast) == ("trainer.precision=fp16" in options)
    assert (tmp_path / "fast" / "metrics.jsonl").read_text().count("loss/reconstruction") == 1


@pytest.mark.slow
def test_a_run_resumes_under_another_precision_and_a_bad_one_is_named(tmp_path):
    run(_cfg("ce", "trainer.epochs=1", "dataset.train_subset=128"), BASELINES["ce"], run_dir=tmp_path)
    summary = run(_cfg("ce", "trainer.precision=bf16", "dataset.train_subset=128", "resume=true"), BASELINES["ce"],
                  run_dir=tmp_path)
    assert summary["epochs"] == 2
    with pytest.raises(ConfigurationError, match="trainer.precision must be auto, 32, bf16 or fp16"):
        run(_cfg("ce", "overwrite=true", "trainer.precision=fp8"), BASELINES["ce"], run_dir=tmp_path)
