"""`python -m baselines.<method>` end to end on digits: outputs, presets, multirun, bad values, resume."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fake_data import write_image_folder

from baselines.common.engine import ConfigurationError, run
from baselines.registry import BASELINES, METHODS, NOT_METHODS, PRETRAINING
from method_steps import smoke_config

ROOT = Path(__file__).resolve().parents[2]


def cli(method, *overrides, check=True):
    # a hang guard only: a smoke run takes seconds, and 30 minutes outlasts any loaded machine's passing run
    result = subprocess.run([sys.executable, "-m", f"baselines.{method}", *overrides], cwd=ROOT,
                            capture_output=True, text=True, timeout=1800)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr)
    return result


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# metrics each method promises every epoch after its warm-up (beside test_acc and its losses)
SMOKE_CASES = [(method, sanm) for method in BASELINES for sanm in (None, "on", "official")]


def test_the_registry_finds_every_method_module_and_nothing_else():
    modules = {p.stem for p in (ROOT / "baselines").glob("*.py")} - NOT_METHODS - {"__init__"}
    assert set(METHODS) == modules and set(BASELINES) | set(PRETRAINING) == modules
    assert all(cls.name == name and (ROOT / "conf" / f"{name}.yaml").is_file() for name, cls in METHODS.items())
    assert {"ce", "dividemix", "c2d", "elr_plus", "cdr", "coteaching", "gce", "sce"} <= set(BASELINES)


DOCUMENTED_KEYS = set(re.findall(r"`([a-z_0-9/]+)`", (ROOT / "docs" / "runs.md").read_text()))  # its 3.2 tables


def _documented(key):
    """The documented name of an output key: per-network keys are documented once, without `_net1` / `_net2`."""
    return re.sub(r"_net[12]$", "", key) if key != "test_acc_net2" else key


def run_dir_of(root, method, noise, sanm):
    return root / method / "digits" / noise / (sanm or "off") / "seed0"


@pytest.mark.slow
@pytest.mark.parametrize("method,sanm", SMOKE_CASES)
def test_smoke_run_writes_the_documented_outputs(tmp_path, method, sanm):
    overrides = ["+experiment=smoke", "noise=sym_0.5", f"output_root={tmp_path}", *([f"+sanm={sanm}"] if sanm else [])]
    run_dir = run_dir_of(tmp_path, method, "sym_0.5", sanm)
    # in this process: half a subprocess's time is its imports (each method's command line, Hydra's entry point, is
    # a real process in test_resume_after_kill_matches_an_uninterrupted_run)
    run(smoke_config(method, *overrides[1:]), BASELINES[method], run_dir=run_dir)
    records = metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2] and all(0 <= r["test_acc"] <= 100 for r in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary) >= {"best_test_acc", "last_test_acc", "mean_last10_test_acc", "epochs", "noise_rate_actual",
                            "wall_seconds"}
    assert 0.3 < summary["noise_rate_actual"] < 0.6  # DivideMix protocol: about 0.45 wrong
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 2  # epochs completed, counted like metrics.jsonl
    resolved = (run_dir / "resolved.yaml").read_text()
    assert "device: cpu" in resolved and "auto" not in resolved.split("\nsanm:")[0].split("trainer:")[1]
    assert set(BASELINES[method].diagnostics) <= set(records[1])
    undocumented = {key for key in {*records[0], *records[1], *summary} if _documented(key) not in DOCUMENTED_KEYS}
    assert not undocumented, f"add these output keys to the tables of docs/runs.md 3.2: {sorted(undocumented)}"
    if sanm:  # SANM active in the second epoch, with its diagnostics and resolved engine keys
        suffix = "_net1" if any(key.endswith("_net1") for key in records[1]) else ""
        assert "train_on: clean_and_masked" in resolved and "target: label" in resolved
        keys = {f"mask_ratio_clean{suffix}", f"mask_ratio_noisy{suffix}", f"loss/reconstruction{suffix}"}
        assert keys <= set(records[1]) and records[0].keys().isdisjoint(keys)
        assert f"gmm_auc{suffix}" in records[1]


@pytest.mark.slow
def test_multirun_gives_one_finished_run_per_combination(tmp_path):
    cli("ce", "-m", "+experiment=smoke", "noise=sym_0.2,asym_0.4", "+sanm=on,official", f"output_root={tmp_path}")
    done = sorted(p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("summary.json"))
    assert done == [f"ce/digits/{n}/{s}/seed0" for n in ("asym_0.4", "sym_0.2") for s in ("official", "on")]


@pytest.mark.slow
def test_bad_value_exits_with_a_last_line_that_names_it(tmp_path):
    result = cli("ce", "+experiment=smoke", "noise=sym_0.2", "noise.rate=1.3", f"output_root={tmp_path}", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == "error: noise rate must be in [0, 1], got 1.3"


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,match",
    [(["noise=sym_0.2", "noise.rate=-0.1"], "noise rate"), (["trainer.epochs=0"], "trainer.epochs"),
     (["dataset.train_subset=100000"], "train_subset"), (["dataset=image_folder", "dataset.root=/no/such/dir"], "/no/such/dir"),
     (["dataset=image_folder"], "dataset.root"), (["+sanm=on", "sanm.mu=1.5"], "mu"),
     (["+sanm=on", "sanm.train_on=both"], "train_on"), (["progress_every_s=-1"], "progress_every_s")],
)
def test_bad_values_are_configuration_errors(tmp_path, overrides, match):
    with pytest.raises(ConfigurationError, match=match):
        run(smoke_config("ce", *overrides), BASELINES["ce"], run_dir=tmp_path / "run")


@pytest.mark.slow
def test_a_fresh_run_never_overwrites_silently(tmp_path):
    cfg = smoke_config("ce", "trainer.epochs=1")
    run(cfg, BASELINES["ce"], run_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="resume=true"):
        run(cfg, BASELINES["ce"], run_dir=tmp_path)
    run(smoke_config("ce", "trainer.epochs=1", "overwrite=true"), BASELINES["ce"], run_dir=tmp_path)
    assert len(metrics(tmp_path)) == 1


@pytest.mark.slow
def test_resume_true_starts_a_run_that_has_no_checkpoint_yet_and_keeps_a_finished_one(tmp_path):
    """A requeued cluster job runs its command again, `resume=true` included, whatever the first try left: nothing
    (the job never started), an epoch's record without its checkpoint (killed between the two), or a finished run.
    The first two start at epoch 1 without duplicate records; the last trains nothing and stays finished."""
    cfg = smoke_config("ce", "trainer.epochs=2", "resume=true")
    run(cfg, BASELINES["ce"], run_dir=tmp_path / "empty")
    assert [r["epoch"] for r in metrics(tmp_path / "empty")] == [1, 2]

    torn = tmp_path / "torn"
    run(smoke_config("ce", "trainer.epochs=1"), BASELINES["ce"], run_dir=torn)
    shutil.rmtree(torn / "checkpoints")
    (torn / "summary.json").unlink()
    summary = run(cfg, BASELINES["ce"], run_dir=torn)
    assert [r["epoch"] for r in metrics(torn)] == [1, 2] and summary["epochs"] == 2
    assert "resume=true, but " in (torn / "run.log").read_text()  # it says it starts afresh

    finished = tmp_path / "empty"
    before = (finished / "summary.json").read_text()
    again = run(cfg, BASELINES["ce"], run_dir=finished)
    assert [r["epoch"] for r in metrics(finished)] == [1, 2] and again["epochs"] == 2
    assert json.loads(before)["best_test_acc"] == again["best_test_acc"]
    assert json.loads((finished / "status.json").read_text())["state"] == "finished"


@contextlib.contextmanager
def one_torch_thread():
    """This process's runs on one thread, like the runs the tests spawn (OMP_NUM_THREADS=1), so a run and its
    kill-and-resume twin sum their floats in the same order and agree exactly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# GCE and SCE are CE with another loss function and no state of their own (checked below): CE's case is theirs, so
# they are left out of this, the suite's costliest parametrisation (a process start and three runs each)
RESUMED = sorted(set(BASELINES) - {"gce", "sce"})


def test_the_methods_left_out_of_the_resume_test_are_ce_with_another_loss():
    for name in set(BASELINES) - set(RESUMED):
        cls = BASELINES[name]
        own = {key for key, value in vars(cls).items() if callable(value) and not key.startswith("__")}
        assert issubclass(cls, BASELINES["ce"]) and own == {"config", "build", "loss"}, (name, own)


@pytest.mark.slow
@pytest.mark.parametrize("method", RESUMED)
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, method):
    """The whole state survives: networks, optimisers, SANM, RNG streams and each method's own state
    (DivideMix's GMM history, ELR+'s target tables and EMA networks, Co-teaching's two Adam optimisers).
    No warm-up, so the checkpoint the resumed run starts from was written after an epoch with SANM and each
    method's main phase active. The killed run is a real `python -m baselines.<method>` process; the
    uninterrupted run and the resume run in this process (the same engine, without two more interpreter starts)."""
    epochs = 2
    args = ["+experiment=smoke", "+sanm=on", "noise=sym_0.9", f"trainer.epochs={epochs}", "method.warmup_epochs=0"]
    whole = run_dir_of(tmp_path / "whole", method, "sym_0.9", "on")
    with one_torch_thread():
        run(smoke_config(method, *args[1:], f"output_root={tmp_path / 'whole'}"), BASELINES[method], run_dir=whole)
    assert "mask_ratio_noisy" in " ".join(metrics(whole)[0]), "SANM was not active in the first epoch"

    # C2D's pretrained=auto encoder is cached: the killed run finds the one the whole run trained, and must start the
    # same as the run that trained it (the pre-training's RNG draws are put back)
    killed = run_dir_of(tmp_path / "killed", method, "sym_0.9", "on")
    proc = subprocess.Popen([sys.executable, "-m", f"baselines.{method}", *args, f"output_root={tmp_path / 'killed'}"],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # a hang guard: the first epoch takes seconds (and a late kill still passes)
    while time.time() < deadline:  # wait for the first checkpoint, then kill inside the next epoch
        if (killed / "checkpoints" / "last.pt").exists() and len(metrics(killed)) >= 1:
            time.sleep(0.3)
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(metrics(killed)) < epochs, "the run finished before it could be killed"
    assert (killed / ".hydra" / "config.yaml").exists()  # the method's command line, through Hydra's entry point
    with one_torch_thread():
        run(smoke_config(method, *args[1:], f"output_root={tmp_path / 'killed'}", "resume=true"), BASELINES[method],
            run_dir=killed)
    keys = [key for key in metrics(whole)[0] if key.startswith("test_acc")]
    assert [[r[k] for k in keys] for r in metrics(killed)] == [[r[k] for k in keys] for r in metrics(whole)]
    assert [r["epoch"] for r in metrics(killed)] == list(range(1, epochs + 1))
    # environment.jsonl: the killed process's start and this resume, on the same machine and thread count
    assert [json.loads(line)["from_epoch"] for line in (killed / "environment.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((killed / "summary.json").read_text())["environments"] == 1


@pytest.mark.slow
def test_pretrain_then_c2d_from_its_encoder(tmp_path):
    cli("pretrain_simclr", "+experiment=smoke", "trainer.epochs=1", f"output_root={tmp_path}")
    encoder = tmp_path / "pretrain_simclr" / "digits" / "none" / "off" / "seed0" / "encoder.pt"
    state = torch.load(encoder, weights_only=True)
    assert state["model_name"] == "preact_resnet18" and not any(k.startswith("linear.") for k in state["model"])
    # C2D in this process (the command line's own path is the smoke test's): it starts from the encoder
    c2d = tmp_path / "c2d" / "digits" / "sym_0.5" / "off" / "seed0"
    run(smoke_config("c2d", "noise=sym_0.5", f"pretrained={encoder}", "trainer.epochs=2"),
        BASELINES["c2d"], run_dir=c2d)
    assert (c2d / "summary.json").exists()
    # a wrong width is one clear error that names both
    with pytest.raises(ConfigurationError, match="width 8"):
        run(smoke_config("c2d", f"pretrained={encoder}", "model.width=16"), BASELINES["c2d"], run_dir=tmp_path / "wide")


@pytest.mark.slow
@pytest.mark.parametrize("pretrained,match", [("/no/such/encoder.pt", "not found"), (None, "pretrained=PATH")])
def test_c2d_pretrained_errors(tmp_path, pretrained, match):
    overrides = [f"pretrained={pretrained}" if pretrained else "pretrained=null"]
    with pytest.raises(ConfigurationError, match=match):
        run(smoke_config("c2d", *overrides), BASELINES["c2d"], run_dir=tmp_path / "run")


@pytest.mark.slow
def test_single_network_elr_runs_from_the_elr_plus_module(tmp_path):
    cli("elr_plus", "+experiment=smoke", "+sanm=on", "noise=asym_0.4", "method.variant=elr", f"output_root={tmp_path}")
    run_dir = run_dir_of(tmp_path, "elr", "asym_0.4", "on")
    records = metrics(run_dir)
    assert {"target_accuracy", "mask_ratio_clean", "loss/elr"} <= set(records[1])  # one network: no suffix
    resolved = (run_dir / "resolved.yaml").read_text()
    assert "variant: elr\n" in resolved and "beta: 0.9" in resolved and "lambda_elr: 1.0" in resolved  # asym row


# ---------------------------------------------------------------------- what a new user runs into
@pytest.mark.slow
def test_a_noise_rate_without_a_noise_type_is_an_error_not_a_clean_run(tmp_path):
    result = cli("ce", "+experiment=smoke", "noise.rate=0.7", f"output_root={tmp_path}", check=False)
    assert result.returncode == 2 and not list(tmp_path.rglob("metrics.jsonl"))
    assert result.stderr.strip().splitlines()[-1].startswith("error: noise.rate=0.7 has no effect with noise type 'none'")


def _image_folder(root, seed):
    write_image_folder(root, ["cat", "dog"], n_per_class=8, size=(8, 8), seed=seed)
    return root


@pytest.mark.slow
def test_image_folders_get_run_directories_of_their_own(tmp_path):
    roots = [_image_folder(tmp_path / name / "imgs", seed) for seed, name in enumerate(("a", "b"))]
    for root in roots:
        cli("ce", "+experiment=smoke", "dataset=image_folder", f"dataset.root={root}", "trainer.epochs=1",
            f"dataset.cache_dir={tmp_path / 'cache'}", "dataset.train_subset=null", f"output_root={tmp_path / 'out'}")
    runs = sorted(p.parent.relative_to(tmp_path / "out").parts[1] for p in (tmp_path / "out").rglob("summary.json"))
    assert len(set(runs)) == 2 and all(r.startswith("image_folder-imgs-") for r in runs)


@pytest.mark.slow
def test_cifar10n_style_labels_in_another_order_train_a_subset_of_an_image_folder(tmp_path):
    """The published CIFAR-10N file labels all training images in CIFAR's order; the image-folder copy lists them
    in its own (orig_index maps one to the other), and dataset.train_subset trains on some of them."""
    from baselines.common.data import class_balanced_subset

    root = _image_folder(tmp_path / "imgs", 0)
    true = np.repeat([0, 1], 8)  # folder order: sorted classes (cat, dog), sorted files
    in_folder_order = np.where(np.arange(16) % 3 == 0, 1 - true, true)  # every third label wrong
    orig_index = np.random.default_rng(1).permutation(16)  # folder position -> row of the published file
    published = np.empty(16, np.int64)
    published[orig_index] = in_folder_order
    torch.save({"worse_label": published}, tmp_path / "human.pt")
    np.savez(tmp_path / "order.npz", orig_index=orig_index)
    run_dir = tmp_path / "run"
    run(smoke_config("ce", "dataset=image_folder", f"dataset.root={root}", "dataset.train_subset=10",
                     "trainer.epochs=1", f"dataset.cache_dir={tmp_path / 'cache'}", "noise=file",
                     f"noise.file={tmp_path / 'human.pt'}", "noise.file_key=worse_label",
                     f"noise.index_file={tmp_path / 'order.npz'}", "noise.index_key=orig_index"),
        BASELINES["ce"], run_dir=run_dir)
    rows = class_balanced_subset(true, 10, seed=0)
    expected = float(np.mean(in_folder_order[rows] != true[rows]))
    resolved = OmegaConf.load(run_dir / "resolved.yaml")
    assert resolved.noise.rate_actual == pytest.approx(expected) and 0 < expected < 1


@pytest.mark.slow
@pytest.mark.parametrize("changed,named", [
    (["dataset.train_subset=200"], "dataset"), (["+sanm=on"], "sanm"), (["noise=sym_0.2"], "noise.rate"),
    (["model.width=4"], "model.width"), (["seed=1"], "seed"), (["trainer.lr=0.1"], "trainer.lr"),
    (["augment=randaugment"], "augment.name"),
])
def test_resume_refuses_a_run_trained_with_other_settings(tmp_path, changed, named):
    run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=1"), BASELINES["ce"], run_dir=tmp_path)
    resolved = (tmp_path / "resolved.yaml").read_text()
    with pytest.raises(ConfigurationError, match=rf"differs from the run in .* in .*{named}"):
        run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=2", "resume=true", *changed),
            BASELINES["ce"], run_dir=tmp_path)
    assert (tmp_path / "resolved.yaml").read_text() == resolved and len(metrics(tmp_path)) == 1
    # more epochs (and a new evaluation batch size) is what resuming is for
    run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=2", "trainer.eval_batch_size=64", "resume=true"),
        BASELINES["ce"], run_dir=tmp_path)
    assert [r["epoch"] for r in metrics(tmp_path)] == [1, 2]


@pytest.mark.slow
def test_a_run_saved_before_the_decoder_default_changed_resumes_with_its_own_decoder(tmp_path):
    # Identities written before the preset's SANM values were recorded hold null for them; `+sanm=on` then built
    # the BN decoder, today the linear one. Emulate such a checkpoint: the saved weights decide what null meant.
    sanm = ["+sanm=on", "sanm.warmup_epochs=0"]
    run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=1", *sanm, "sanm.decoder=bn"),
        BASELINES["ce"], run_dir=tmp_path)
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["identity"]["sanm.decoder"] == '"bn"' and state["identity"]["sanm.mu"] == "0.2"  # recorded
    state["identity"].update({key: "null" for key in ("sanm.decoder", "sanm.mu", "sanm.recon_target")})
    torch.save(state, checkpoint)
    with pytest.raises(ConfigurationError, match=r'sanm.decoder \("bn" -> "linear"\)'):
        run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=2", "resume=true", *sanm),
            BASELINES["ce"], run_dir=tmp_path)
    run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=2", "resume=true", *sanm, "sanm.decoder=bn", "sanm.mu=0.2"),
        BASELINES["ce"], run_dir=tmp_path)
    assert [r["epoch"] for r in metrics(tmp_path)] == [1, 2]


@pytest.mark.slow
def test_a_sanm_on_run_from_before_the_per_method_defaults_resumes_with_its_own_beta(tmp_path):
    """+sanm=on named the paper preset (beta 1) until DivideMix's measured default (beta 0.02): such a checkpoint
    says so in one key, and resumes once the command gives its beta."""
    sanm = ["+sanm=on", "sanm.warmup_epochs=0"]
    run(smoke_config("dividemix", "noise=sym_0.5", "trainer.epochs=1", *sanm, "sanm.beta=1"), BASELINES["dividemix"],
        run_dir=tmp_path)
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["identity"]["sanm.preset"] == '"method"'
    state["identity"]["sanm.preset"] = '"paper"'  # what +sanm=on wrote before
    torch.save(state, checkpoint)
    with pytest.raises(ConfigurationError, match=r"in sanm.beta \(1.0 -> 0.02\); resume with"):
        run(smoke_config("dividemix", "noise=sym_0.5", "trainer.epochs=2", "resume=true", *sanm),
            BASELINES["dividemix"], run_dir=tmp_path)
    run(smoke_config("dividemix", "noise=sym_0.5", "trainer.epochs=2", "resume=true", *sanm, "sanm.beta=1"),
        BASELINES["dividemix"], run_dir=tmp_path)
    assert [r["epoch"] for r in metrics(tmp_path)] == [1, 2]
    assert OmegaConf.load(tmp_path / "resolved.yaml").sanm.beta == 1.0


@pytest.mark.slow
def test_a_preset_default_and_the_same_value_given_are_the_same_run(tmp_path):
    run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=1", "+sanm=on"), BASELINES["ce"], run_dir=tmp_path)
    run(smoke_config("ce", "noise=sym_0.5", "trainer.epochs=2", "resume=true", "+sanm=on", "sanm.decoder=linear",
                     "sanm.recon_target=input"), BASELINES["ce"], run_dir=tmp_path)
    assert [r["epoch"] for r in metrics(tmp_path)] == [1, 2]


@pytest.mark.slow
def test_resume_refuses_another_image_folder_in_the_same_run_dir(tmp_path):
    roots = [_image_folder(tmp_path / name, seed) for seed, name in enumerate(("a", "b"))]
    common = ["dataset=image_folder", "dataset.train_subset=null", f"dataset.cache_dir={tmp_path / 'cache'}"]
    run(smoke_config("ce", *common, f"dataset.root={roots[0]}", "trainer.epochs=1"),
        BASELINES["ce"], run_dir=tmp_path / "run")
    with pytest.raises(ConfigurationError, match=r"in dataset \("):
        run(smoke_config("ce", *common, f"dataset.root={roots[1]}", "trainer.epochs=2", "resume=true"), BASELINES["ce"],
            run_dir=tmp_path / "run")
    # the same pictures under another path are the same data: the run continues
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copytree(roots[0], moved / "a")
    run(smoke_config("ce", *common, f"dataset.root={moved / 'a'}", "trainer.epochs=2", "resume=true"), BASELINES["ce"],
        run_dir=tmp_path / "run")
    assert len(metrics(tmp_path / "run")) == 2


@pytest.mark.slow
@pytest.mark.parametrize("signum,code,said", [(signal.SIGINT, 130, "interrupted"),
                                              (signal.SIGTERM, 143, "interrupted by SIGTERM")])
def test_ctrl_c_and_sigterm_say_what_is_checkpointed_and_how_to_continue(tmp_path, signum, code, said):
    """SIGTERM (a scheduler's time limit or pre-emption) ends a run as Ctrl-C does, with the shell's code for
    it: 128 + 15, where an unhandled SIGTERM would leave status.json at running and say nothing."""
    args = ["+experiment=smoke", "noise=sym_0.5", "trainer.epochs=5", f"output_root={tmp_path}"]
    run_dir = run_dir_of(tmp_path, "ce", "sym_0.5", None)
    proc = subprocess.Popen([sys.executable, "-m", "baselines.ce", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while not (run_dir / "checkpoints" / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate()
    assert proc.returncode == code, err
    line, = err.strip().splitlines()  # one line, no traceback
    done = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["epoch"]
    assert line.startswith(f"{said}: epoch {done} of 5 is checkpointed in {run_dir}; continue with: ")
    status = json.loads((run_dir / "status.json").read_text())  # what baselines.report lists apart
    assert status["state"] == "interrupted" and status["epoch"] == done and status["epochs"] == 5
    assert status["signal"] == signal.Signals(signum).name
    command = line.split("continue with: ")[1].split()
    assert command[:3] == ["python", "-m", "baselines.ce"] and command[-1] == "resume=true"
    cli("ce", *command[3:])  # the printed command finishes the run
    assert [r["epoch"] for r in metrics(run_dir)] == list(range(1, 6))
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"


@pytest.mark.slow
def test_a_submitit_job_requeued_mid_run_continues_with_resume_true(tmp_path):
    """What a pre-emption or time limit does to a job of `hydra/launcher=submitit_slurm`, here with submitit_local,
    which requeues the same way without SLURM: submitit catches its signal (USR2) in the job, requeues it and exits
    mid-epoch; the job runs its command again, and the `resume=true` in it continues from the last checkpoint."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the sweeps extra: pip install -e .[sweeps]")
    run_dir = run_dir_of(tmp_path, "ce", "sym_0.5", None)
    sweep = subprocess.Popen([sys.executable, "-m", "baselines.ce", "-m", "hydra/launcher=submitit_local",
                              "+experiment=smoke", "noise=sym_0.5", "trainer.epochs=5", f"output_root={tmp_path}",
                              "resume=true"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (run_dir / "checkpoints" / "last.pt").exists() and sweep.poll() is None:
        time.sleep(0.05)
    job = json.loads((run_dir / "status.json").read_text())["pid"]  # the job's process, not the sweep's
    os.kill(job, signal.SIGUSR2)
    out, err = sweep.communicate(timeout=1800)  # a hang guard only
    assert sweep.returncode == 0, out + err
    assert re.search(r"^resuming .* after epoch [1-4]$", (run_dir / "run.log").read_text(), re.M)
    assert [r["epoch"] for r in metrics(run_dir)] == [1, 2, 3, 4, 5]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    log, = (tmp_path / ".submitit").rglob("*_log.out")
    assert "Requeued job" in log.read_text()


@pytest.mark.slow
def test_a_run_that_exits_mid_epoch_says_interrupted(tmp_path):
    """submitit's requeue leaves the job with sys.exit from its signal handler, mid-epoch: status.json must not
    stay `running` while the job waits in the queue."""

    class ExitsInSecondEpoch(BASELINES["ce"]):
        def train_epoch(self, epoch):
            if epoch == 1:
                sys.exit(-1)  # what submitit's handler does after `scontrol requeue`
            return super().train_epoch(epoch)

    with pytest.raises(SystemExit):
        run(smoke_config("ce", "trainer.epochs=2"), ExitsInSecondEpoch, run_dir=tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "interrupted" and status["epoch"] == 1


@pytest.mark.slow
def test_a_sanm_key_without_a_preset_says_to_add_one(tmp_path):
    result = cli("ce", "+experiment=smoke", "sanm.mu=0.3", f"output_root={tmp_path}", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: sanm.mu needs a SANM preset: add +sanm=on (the paper's equations) or +sanm=official (the official "
        "code's choices), e.g. +sanm=on sanm.mu=0.3"]


@pytest.mark.slow
def test_a_mistyped_key_stops_the_run_in_one_line_even_with_a_plus(tmp_path):
    """Hydra's own error advises `+trainer.epoch=3`, which used to add the key and train the default epochs."""
    for typo in ("+trainer.epoch=3", "trainer.epoch=3", "++trainer.epoch=3"):
        result = cli("ce", "+experiment=smoke", typo, f"output_root={tmp_path}", check=False)
        assert result.returncode == 2 and not any(tmp_path.iterdir())  # nothing trained, nothing written
        assert result.stderr.strip().splitlines() == [
            f"error: unknown key trainer.epoch (in {typo}): no config of baselines.ce declares it; did you mean "
            "trainer.epochs? python -m baselines.ce --help lists every key"]
        assert "+" not in result.stderr.split("(in ")[1].split(")", 1)[1]  # never advises appending


@pytest.mark.parametrize("typo, nearest", [
    ("+trainer.lr_milestone=[3]", "trainer.lr_milestones"), ("method.lambda_uu=3", "method.lambda_u"),
    ("+sanm.bta=0.1", "sanm.beta"), ("dataset.train_subst=9", "dataset.train_subset"),
    ("+noise.rat=0.2", "noise.rate"), ("model.widht=8", "model.width"), ("augment.cropsize=24", "augment.crop_size"),
    ("+plots.galery=2", "plots.gallery"), ("+seeed=1", "seed"), ("+experimnt=smoke", "experiment")])
def test_every_group_names_the_mistyped_key_and_the_nearest_declared_one(typo, nearest):
    from baselines.common.cli import undeclared_key

    problem = undeclared_key(["+sanm=on", typo], BASELINES["dividemix"], "dividemix")
    assert problem.startswith(f"unknown key {typo.lstrip('+').split('=')[0]} ") and f"did you mean {nearest}?" in problem


@pytest.mark.parametrize("method", sorted({**BASELINES, **PRETRAINING}))
def test_every_declared_key_and_group_passes_the_key_check(method):
    from baselines.common.cli import config_groups, undeclared_key
    from baselines.common.config import declared_keys

    declared, _ = declared_keys(METHODS[method].config)
    keys = [f"{key}=1" for key in sorted(declared)] + [f"+{group}=x" for group in sorted(config_groups())]
    free = ["noise.asym_map.3=5", "~seed", "hydra.run.dir=x", "hydra/launcher=joblib"]
    assert undeclared_key(keys + free, METHODS[method], method) is None


@pytest.mark.slow
def test_help_names_the_method_and_explains_the_sanm_keys():
    out = cli("dividemix", "--help").stdout
    assert out.startswith("dividemix: the dividemix method") and "python -m baselines.dividemix" in out
    assert "sanm: off, official, on" in out and "cli" not in out.split("== Config (")[0]
    for key in ("mu", "beta", "train_on", "target", "warmup_epochs", "recon_source"):
        assert f"sanm.{key} " in out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dividemix", "ce"])
def test_help_shows_each_presets_values_as_the_code_sets_them(method):
    """--help once said `sanm.decoder bn (...)` after the default had become linear: its values come from the code."""
    from baselines.common.config import SANM_PRESETS, sanm_preset_values

    out = cli(method, "--help").stdout
    shown = dict(re.findall(r"^  sanm\.(\w+) .*\[(on: .*)\]$", out, re.MULTILINE))
    expected = {preset: sanm_preset_values(preset, method) for preset in SANM_PRESETS}
    assert set(shown) == set(expected["paper"]) - {"validate"}
    for key, text in shown.items():
        assert text == ", ".join(f"{name}: {expected[preset][key]}" for name, preset in
                                 zip(("on", "paper", "official"), SANM_PRESETS))
    assert ("[on: 0.02, paper: 1.0, official: 0.02]" in out) == (method == "dividemix")


@pytest.mark.slow
def test_bare_module_lists_the_methods_and_runs_one():
    listing = subprocess.run([sys.executable, "-m", "baselines"], cwd=ROOT, capture_output=True, text=True)
    assert listing.returncode == 0 and all(f"  {name} " in listing.stdout for name in BASELINES)
    unknown = subprocess.run([sys.executable, "-m", "baselines", "dividemixx"], cwd=ROOT, capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown method 'dividemixx'" in unknown.stderr
    assert all(f"  {name} " in unknown.stderr for name in BASELINES)


@pytest.mark.slow
def test_the_console_log_with_its_progress_lines_is_written_to_run_log(tmp_path):
    """A run whose output goes to a file or a pipe (a cluster job) says how far each epoch is, every
    progress_every_s seconds (0: after each batch; the smoke epochs have 2), on the console and in run.log, which
    holds what the console said."""
    result = cli("ce", "+experiment=smoke", f"output_root={tmp_path}", "tensorboard=false", "progress_every_s=0")
    run_dir = run_dir_of(tmp_path, "ce", "none", None)
    log = (run_dir / "run.log").read_text().splitlines()
    assert log == [line for line in result.stdout.splitlines() if line in log] and len(log) >= 4
    assert "logging to metrics.jsonl, summary.json, run.log (TensorBoard off: tensorboard=false)" in log
    assert not list(run_dir.glob("*.log"))[1:] and not (run_dir / "cli.log").exists()
    said = [line for line in result.stdout.splitlines() if " batches, " in line]
    assert [line.split(",")[0] for line in said] == ["epoch 1/2 train: 1/2 batches", "epoch 2/2 train: 1/2 batches"]
    assert all(re.fullmatch(r"epoch \d/2 train: 1/2 batches, \d+ s", line) for line in said)
    assert [line for line in log if " batches, " in line] == said


@pytest.mark.slow
def test_progress_false_says_nothing_within_an_epoch(tmp_path, capsys):
    run(smoke_config("ce", "progress=false", "progress_every_s=0"), BASELINES["ce"], run_dir=tmp_path)
    out = capsys.readouterr().out
    assert "epoch 2/2  test_acc" in out and " batches, " not in out  # capsys is no terminal either: it would show


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dividemix", "c2d"])
def test_official_recipe_runs_in_the_smoke_setting(tmp_path, method):
    """README's `+sanm=on +recipe=official noise=sym_0.9 +experiment=smoke`: both networks start from a SimCLR encoder
    of the standard ResNet-18, pre-trained (2 epochs) and cached first, and resolved.yaml says which."""
    run_dir = tmp_path / "run"
    run(smoke_config(method, "+sanm=on", "+recipe=official", "noise=sym_0.9", "method.warmup_epochs=1"),
        BASELINES[method], run_dir=run_dir)
    resolved = OmegaConf.load(run_dir / "resolved.yaml")
    assert resolved.method.recipe == "official" and resolved.augment.name == "autoaugment"
    assert resolved.method.lambda_u == 25 and resolved.method.p_threshold == 0.5
    assert resolved.model.name == "resnet18" and Path(resolved.pretrained).is_file()
    assert Path(resolved.pretrained).parent.parent.name == "encoders"  # the cache, not the run directory
    assert resolved.encoder.source == "auto" and resolved.encoder.epochs == 2
    assert [r["epoch"] for r in metrics(run_dir)] == [1, 2] and "loss/reconstruction_net1" in metrics(run_dir)[-1]


@pytest.mark.slow
@pytest.mark.parametrize("preset,resumes", [("on", True), ("official", False)])
def test_checkpoints_from_before_the_augment_group_still_resume(tmp_path, preset, resumes):
    """A run trained with `trainer.augment=true` (and no `sanm.extremes`) continues under `augment=weak`, unless
    the key that appeared changes how it trains (the official preset now reads its map as uint8)."""
    run(smoke_config("ce", f"+sanm={preset}", "trainer.epochs=1"), BASELINES["ce"], run_dir=tmp_path)
    path = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    identity = {k: v for k, v in state["identity"].items() if not k.startswith("augment.") and k != "sanm.extremes"}
    state["identity"] = {**identity, "trainer.augment": "true"}
    if preset == "on":  # +sanm=on named the paper preset then
        state["identity"]["sanm.preset"] = '"paper"'
    torch.save(state, path)
    again = smoke_config("ce", f"+sanm={preset}", "trainer.epochs=2", "resume=true")
    if resumes:
        run(again, BASELINES["ce"], run_dir=tmp_path)
        assert [r["epoch"] for r in metrics(tmp_path)] == [1, 2]
    else:
        with pytest.raises(ConfigurationError, match="sanm.extremes"):
            run(again, BASELINES["ce"], run_dir=tmp_path)


@pytest.mark.slow
def test_a_run_outside_the_output_root_ends_with_the_table_command_of_its_own_directory(tmp_path):
    """With `hydra.run.dir=DIR` the run is not under output_root: the last lines name DIR, where the run is, not the
    output root, whose table would not hold it."""
    run_dir = tmp_path / "elsewhere"
    out = cli("ce", "+experiment=smoke", "trainer.epochs=1", f"hydra.run.dir={run_dir}",
              f"output_root={tmp_path / 'root'}", "plots.enabled=false").stdout.strip().splitlines()
    assert out[-2] == f"table of the runs under {run_dir}: python -m baselines.report {run_dir}"
    assert out[-1].endswith(f"summary in {run_dir / 'summary.json'}")
