"""One run over N processes: the collectives by hand, DDP's step against a 1-process step, and torchrun end to end
on CPU (gloo, 2 processes): one run directory, written by rank 0, close to a 1-process run, resumable."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from baselines.common import distributed
from baselines.common.acceleration import Acceleration, routed_model
from baselines.common.distributed import World, gather_rows, shard, split_range, world_from_env
from baselines.common.engine import check_distributable, run
from baselines.registry import BASELINES
from method_steps import smoke_config
from sanm_plugin import FeatureTap

ROOT = Path(__file__).resolve().parents[2]


def test_world_comes_from_torchruns_environment():
    assert world_from_env({}) == World(1, 0, 0)
    assert world_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == World(4, 2, 0)
    with pytest.raises(ValueError, match="RANK=4"):
        world_from_env({"WORLD_SIZE": "4", "RANK": "4"})


def test_each_rank_gets_an_equal_disjoint_slice_of_a_global_batch():
    chunk = torch.arange(10, 21)  # 11 rows over 2 ranks: 5 each, the 11th left out of this step
    slices = [shard(chunk, World(2, r)) for r in range(2)]
    assert [s.tolist() for s in slices] == [[10, 11, 12, 13, 14], [15, 16, 17, 18, 19]]
    assert shard(chunk, World()) is chunk
    assert [split_range(10, World(3, r)) for r in range(3)] == [(0, 4), (4, 8), (8, 10)]
    assert split_range(2, World(3, 2)) == (2, 2)  # a rank may evaluate nothing; it still joins the gather


@pytest.mark.slow
def test_a_method_without_support_or_an_uneven_batch_is_refused_in_one_line():
    with pytest.raises(ValueError, match="elr_plus runs in one process only.*supports.*ce.*dividemix"):
        check_distributable(smoke_config("elr_plus"), BASELINES["elr_plus"], World(2, 0))
    with pytest.raises(ValueError, match="trainer.batch_size=63 does not split over 2 processes"):
        check_distributable(smoke_config("ce", "trainer.batch_size=63"), BASELINES["ce"], World(2, 0))
    check_distributable(smoke_config("elr_plus", "trainer.batch_size=63"), BASELINES["elr_plus"], World())


def test_sync_bn_is_a_no_op_in_one_process_and_needs_cuda_over_several():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert distributed.sync_batchnorm(model, True, World(), torch.device("cpu")) is model
    with pytest.raises(ValueError, match="trainer.sync_bn=true needs CUDA devices"):
        distributed.sync_batchnorm(model, True, World(2, 0), torch.device("cpu"))
    assert distributed.sync_batchnorm(model, False, World(2, 0), torch.device("cpu")) is model


class _NoBN(nn.Module):
    """timm's contract without BatchNorm, so a DDP step over two halves equals a step on the whole batch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.linear = nn.Linear(4, 3)

    def forward_features(self, x):
        return torch.relu(self.conv(x))

    def forward_head(self, feats, pre_logits=False):
        pooled = feats.mean(dim=(2, 3))
        return pooled if pre_logits else self.linear(pooled)

    def get_classifier(self):
        return self.linear

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _step(model, tap, decoder, images, labels):
    """Two forwards and a decoder call before one backward, as SANM's steps do."""
    logits, feats = tap(images)
    masked_logits, masked_feats = tap(images.flip(3))
    loss = (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(masked_logits, labels)
            + decoder(masked_feats).square().mean())
    loss.backward()


def _ddp_worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = World(2, rank)
    torch.manual_seed(0)
    model, decoder = _NoBN(), nn.Conv2d(4, 3, 1)
    images, labels = torch.randn(8, 3, 6, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    routed = routed_model(model, Acceleration(torch.device("cpu")), world, torch.device("cpu"))
    mine = shard(torch.arange(8), world)
    _step(model, FeatureTap(routed), distributed.wrap(decoder, world, torch.device("cpu")), images[mine], labels[mine])
    grads = torch.cat([p.grad.flatten() for p in [*model.parameters(), *decoder.parameters()]])
    if rank == 0:
        torch.save(grads, out)
    dist.barrier()  # gloo: a rank that tears the group down while its peer still writes can abort that peer
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_averages_every_gradient_as_one_process_on_the_whole_batch(tmp_path):
    """forward_features through DDP, forward_head on the network itself, the decoder in a DDP of its own:
    every parameter's gradient equals the 1-process gradient on the global batch (the mean of the halves')."""
    out = tmp_path / "grads.pt"
    mp.spawn(_ddp_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    torch.manual_seed(0)
    model, decoder = _NoBN(), nn.Conv2d(4, 3, 1)
    images, labels = torch.randn(8, 3, 6, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    _step(model, FeatureTap(model), decoder, images, labels)
    expected = torch.cat([p.grad.flatten() for p in [*model.parameters(), *decoder.parameters()]])
    torch.testing.assert_close(torch.load(out), expected, rtol=1e-5, atol=1e-6)


def _gather_worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = World(2, rank)
    begin, end = split_range(7, world)
    rows = gather_rows(torch.arange(begin, end, dtype=torch.float32) * 10, 7, world)
    stats = distributed.mean_over_ranks({"loss": float(rank), "same": 3.0, "note": "x"}, torch.device("cpu"), world)
    if rank == 1:
        torch.save({"rows": rows, "stats": stats}, out)
    dist.barrier()  # as above: no rank tears the group down before the other is done
    dist.destroy_process_group()


@pytest.mark.slow
def test_evaluation_rows_are_gathered_in_order_and_epoch_stats_averaged(tmp_path):
    out = tmp_path / "gathered.pt"
    mp.spawn(_gather_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    got = torch.load(out)
    assert got["rows"].tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert got["stats"] == {"loss": 0.5, "same": 3.0, "note": "x"}


# ---------------------------------------------------------------------- torchrun end to end
def torchrun(method, *overrides):
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", f"baselines.{method}", *overrides], cwd=ROOT, capture_output=True, text=True,
                            timeout=1800)  # a hang guard only: a passing run takes well under a minute
    if result.returncode != 0:
        raise AssertionError(result.stdout[-3000:] + result.stderr[-3000:])
    return result


def one_process(method, *overrides):
    """The same smoke run in this process: the engine is the same, and an interpreter start is saved."""
    return run(smoke_config(method, *overrides), BASELINES[method])


def records(root, method, noise, sanm):
    run_dir = root / method / "digits" / noise / sanm / "seed0"
    return run_dir, [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_ce_over_two_processes_writes_one_run_close_to_one_process(tmp_path):
    """Same global batch (64 = 2 x 32), same sample order, no augmentation: the runs differ only because BN
    normalises each rank's 32 rows with their own statistics (upstream's plain BN) and in float summation
    order, so the per-epoch training loss agrees within 5% (measured: within 1%), not exactly. The exact check
    of the gradient averaging is the BN-free test above."""
    args = ["+experiment=smoke", "dataset.train_subset=384", "noise=sym_0.2", "augment=none", "trainer.epochs=2",
            "progress=false"]
    torchrun("ce", *args, f"output_root={tmp_path / 'two'}")
    one_process("ce", *args[1:], f"output_root={tmp_path / 'one'}")
    run_dir, two = records(tmp_path / "two", "ce", "sym_0.2", "off")
    _, one = records(tmp_path / "one", "ce", "sym_0.2", "off")
    assert [r["epoch"] for r in two] == [1, 2]  # rank 0 alone wrote: no epoch twice
    assert sorted(p.name for p in (tmp_path / "two").rglob("summary.json")) == ["summary.json"]
    assert (run_dir / "run.log").read_text().count("epoch 2/2") == 1
    for a, b in zip(two, one):
        assert abs(a["loss/ce"] - b["loss/ce"]) <= 0.05 * b["loss/ce"], (a, b)


@pytest.mark.slow
def test_sigterm_to_a_two_process_sanm_dividemix_stops_every_rank_and_the_run_resumes(tmp_path):
    """A scheduler preempts a SANM(DivideMix) job: torchrun passes its SIGTERM on to every rank, each leaves at once
    (no rank waits in a collective for one that has gone), rank 0 writes status.json and says the one line; the
    run resumes from the checkpoint of epoch 1, which holds every rank's random streams, and finishes with
    DivideMix's and SANM's diagnostics and nothing but the documented files in its directory."""
    args = ["+experiment=smoke", "+sanm=on", "noise=sym_0.5", "progress=false", f"output_root={tmp_path}"]
    run_dir = tmp_path / "dividemix" / "digits" / "sym_0.5" / "on" / "seed0"
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "baselines.dividemix", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while not (run_dir / "checkpoints" / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # inside epoch 2 (SANM's and co-divide's first), seconds long
    _, err = proc.communicate(timeout=1800)  # a hang guard only
    said = [line for line in err.splitlines() if line.startswith("interrupted by SIGTERM: ")]
    assert len(said) == 1 and "continue with: python -m baselines.dividemix " in said[0], err[-3000:]
    assert "Sending process" in err and "Unable to shutdown" not in err  # the ranks left, torchrun killed none
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted" and status["signal"] == "SIGTERM" and status["epoch"] == 1
    assert len(torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["rng_ranks"]) == 2

    result = torchrun("dividemix", *args, "resume=true")
    assert "resuming" in result.stdout and "x 2 processes" in result.stdout
    _, got = records(tmp_path, "dividemix", "sym_0.5", "on")
    assert [r["epoch"] for r in got] == [1, 2]
    assert {"selection_precision_net1", "loss/reconstruction_net2", "mask_ratio_noisy_net1"} <= set(got[-1])
    written = sorted(p.name for p in run_dir.iterdir() if p.name != "tensorboard")  # there when it is installed
    assert written == [".hydra", "checkpoints", "diagnostics", "environment.jsonl", "metrics.jsonl", "resolved.yaml",
                       "run.log", "status.json", "summary.json"]
    # rank 0 alone records the environment: the first start and the resume, one line each
    assert [json.loads(line)["from_epoch"] for line in (run_dir / "environment.jsonl").read_text().splitlines()] == [1, 2]
