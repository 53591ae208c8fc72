"""`python -m baselines.<method>` end to end on digits: outputs, presets, multirun, bad values, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from baselines.common.engine import ConfigurationError, run
from baselines.registry import BASELINES

ROOT = Path(__file__).resolve().parents[2]


def cli(method, *overrides, check=True):
    result = subprocess.run([sys.executable, "-m", f"baselines.{method}", *overrides], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr)
    return result


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# metrics each method promises every epoch after its warm-up (beside test_acc and its losses)
DIAGNOSTICS = {
    "ce": set(),
    "dividemix": {"labeled_fraction_net1", "selection_precision_net2", "selection_recall_net1", "gmm_auc_net2"},
    "c2d": {"labeled_fraction_net1", "selection_precision_net2", "selection_recall_net1", "gmm_auc_net2"},
    "elr_plus": {"target_accuracy_net1", "target_accuracy_net2"},
    "cdr": {"kept_fraction", "val_acc"},
    "coteaching": {"selection_precision_net1", "selection_recall_net2", "test_acc_net2"},
}
SMOKE_CASES = [(method, sanm) for method in BASELINES for sanm in (None, "on", "official")]


def test_every_registered_method_has_its_diagnostics_listed():
    assert set(DIAGNOSTICS) == set(BASELINES)


def run_dir_of(root, method, noise, sanm):
    return root / method / "digits" / noise / (sanm or "off") / "seed0"


@pytest.mark.parametrize("method,sanm", SMOKE_CASES)
def test_smoke_run_writes_the_documented_outputs(tmp_path, method, sanm):
    cli(method, "+experiment=smoke", "noise=sym_0.5", f"output_root={tmp_path}", *([f"+sanm={sanm}"] if sanm else []))
    run_dir = run_dir_of(tmp_path, method, "sym_0.5", sanm)
    records = metrics(run_dir)
    assert [r["epoch"] for r in records] == [0, 1] and all(0 <= r["test_acc"] <= 100 for r in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary) >= {"best_test_acc", "last_test_acc", "mean_last10_test_acc", "epochs", "noise_rate_actual",
                            "wall_seconds"}
    assert 0.3 < summary["noise_rate_actual"] < 0.6  # DivideMix protocol: about 0.45 wrong
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert (run_dir / ".hydra" / "config.yaml").exists()
    resolved = (run_dir / "resolved.yaml").read_text()
    assert "device: cpu" in resolved and "auto" not in resolved.split("\nsanm:")[0].split("trainer:")[1]
    assert DIAGNOSTICS[method] <= set(records[1])
    if sanm:  # SANM active in the second epoch, with its diagnostics and resolved engine keys
        suffix = "_net1" if any(key.endswith("_net1") for key in records[1]) else ""
        assert "train_on: clean_and_masked" in resolved and "target: label" in resolved
        keys = {f"mask_ratio_clean{suffix}", f"mask_ratio_noisy{suffix}", f"loss/reconstruction{suffix}"}
        assert keys <= set(records[1]) and records[0].keys().isdisjoint(keys)
        assert f"gmm_auc{suffix}" in records[1]


def test_multirun_gives_one_finished_run_per_combination(tmp_path):
    cli("ce", "-m", "+experiment=smoke", "noise=sym_0.2,asym_0.4", "+sanm=on,official", f"output_root={tmp_path}")
    done = sorted(p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("summary.json"))
    assert done == [f"ce/digits/{n}/{s}/seed0" for n in ("asym_0.4", "sym_0.2") for s in ("official", "on")]


def test_bad_value_exits_with_a_last_line_that_names_it(tmp_path):
    result = cli("ce", "+experiment=smoke", "noise=sym_0.2", "noise.rate=1.3", f"output_root={tmp_path}", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == "error: noise rate must be in [0, 1], got 1.3"


def _cfg(method, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=method, overrides=["+experiment=smoke", *overrides])


@pytest.mark.parametrize(
    "overrides,match",
    [(["noise=sym_0.2", "noise.rate=-0.1"], "noise rate"), (["trainer.epochs=0"], "trainer.epochs"),
     (["dataset.train_subset=100000"], "train_subset"), (["dataset=image_folder", "dataset.root=/no/such/dir"], "/no/such/dir"),
     (["dataset=image_folder"], "dataset.root"), (["+sanm=on", "sanm.mu=1.5"], "mu"),
     (["+sanm=on", "sanm.train_on=both"], "train_on")],
)
def test_bad_values_are_configuration_errors(tmp_path, overrides, match):
    with pytest.raises(ConfigurationError, match=match):
        run(_cfg("ce", *overrides), BASELINES["ce"], run_dir=tmp_path / "run")


def test_a_fresh_run_never_overwrites_silently(tmp_path):
    cfg = _cfg("ce", "trainer.epochs=1")
    run(cfg, BASELINES["ce"], run_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="resume=true"):
        run(cfg, BASELINES["ce"], run_dir=tmp_path)
    run(_cfg("ce", "trainer.epochs=1", "overwrite=true"), BASELINES["ce"], run_dir=tmp_path)
    assert len(metrics(tmp_path)) == 1


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, method):
    """The whole state survives: networks, optimisers, SANM, RNG streams and each method's own state
    (DivideMix's GMM history, ELR+'s target tables and EMA networks, Co-teaching's two Adam optimisers)."""
    epochs = 3
    args = ["+experiment=smoke", "+sanm=on", "noise=sym_0.9", f"trainer.epochs={epochs}"]
    cli(method, *args, f"output_root={tmp_path / 'whole'}")
    whole = run_dir_of(tmp_path / "whole", method, "sym_0.9", "on")

    killed = run_dir_of(tmp_path / "killed", method, "sym_0.9", "on")
    proc = subprocess.Popen([sys.executable, "-m", f"baselines.{method}", *args, f"output_root={tmp_path / 'killed'}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for the first checkpoint, then kill inside the next epoch
        if (killed / "checkpoints" / "last.pt").exists() and len(metrics(killed)) >= 1:
            time.sleep(0.3)
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(metrics(killed)) < epochs, "the run finished before it could be killed"
    cli(method, *args, f"output_root={tmp_path / 'killed'}", "resume=true")
    keys = [key for key in metrics(whole)[0] if key.startswith("test_acc")]
    assert [[r[k] for k in keys] for r in metrics(killed)] == [[r[k] for k in keys] for r in metrics(whole)]
    assert [r["epoch"] for r in metrics(killed)] == list(range(epochs))


def test_pretrain_then_c2d_from_its_encoder(tmp_path):
    cli("pretrain_simclr", "+experiment=smoke", "trainer.epochs=1", f"output_root={tmp_path}")
    encoder = tmp_path / "pretrain_simclr" / "digits" / "none" / "off" / "seed0" / "encoder.pt"
    state = torch.load(encoder, weights_only=True)
    assert state["model_name"] == "preact_resnet18" and not any(k.startswith("linear.") for k in state["model"])
    cli("c2d", "+experiment=smoke", "noise=sym_0.5", f"pretrained={encoder}", "trainer.epochs=2",
        f"output_root={tmp_path}")
    assert (tmp_path / "c2d" / "digits" / "sym_0.5" / "off" / "seed0" / "summary.json").exists()
    # the networks started from the encoder: a wrong width or a missing file is one clear line
    result = cli("c2d", "+experiment=smoke", f"pretrained={encoder}", "model.width=16", f"output_root={tmp_path}",
                 check=False)
    assert result.returncode != 0 and "width 8" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("pretrained,match", [("/no/such/encoder.pt", "not found"), (None, "pretrained=PATH")])
def test_c2d_pretrained_errors(tmp_path, pretrained, match):
    overrides = [f"pretrained={pretrained}" if pretrained else "pretrained=null"]
    with pytest.raises(ConfigurationError, match=match):
        run(_cfg("c2d", *overrides), BASELINES["c2d"], run_dir=tmp_path / "run")


def test_single_network_elr_runs_from_the_elr_plus_module(tmp_path):
    cli("elr_plus", "+experiment=smoke", "+sanm=on", "noise=asym_0.4", "method.variant=elr", f"output_root={tmp_path}")
    run_dir = run_dir_of(tmp_path, "elr", "asym_0.4", "on")
    records = metrics(run_dir)
    assert {"target_accuracy", "mask_ratio_clean", "loss/elr"} <= set(records[1])  # one network: no suffix
    resolved = (run_dir / "resolved.yaml").read_text()
    assert "variant: elr\n" in resolved and "beta: 0.9" in resolved and "lambda_elr: 1.0" in resolved  # asym row
