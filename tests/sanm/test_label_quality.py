"""LabelQuality: G for a training set from recorded losses (Eq. 2), checkpointable, the same on every process."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sanm_plugin import LabelQuality, gmm_clean_probability
from sanm_plugin import distributed as sanm_distributed


def _losses(n=200, seed=0):
    """Two groups: small losses (clean labels) and large ones (wrong labels), float32 as a loss returns them."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0.2, 0.05, n // 2), rng.normal(2.0, 0.3, n - n // 2)])
    return torch.tensor(values, dtype=torch.float32)


def test_g_starts_at_one_and_a_refresh_is_the_gmm_of_the_recorded_losses():
    losses = _losses()
    quality = LabelQuality(200)
    assert torch.equal(quality.clean_prob, torch.ones(200)) and int(quality.refreshes) == 0
    order = torch.randperm(200)
    for batch in order.split(32):  # batches in any order, as a shuffled loader gives them
        quality.record(batch, losses[batch])
    g = quality.refresh()
    assert torch.equal(g, gmm_clean_probability(losses))
    assert g[:100].min() > 0.9 and g[100:].max() < 0.1  # small loss -> clean
    assert int(quality.refreshes) == 1 and not quality.loss_count.any()  # a new collection starts
    assert torch.equal(quality[torch.tensor([0, 150])], g[[0, 150]])
    assert torch.equal(LabelQuality(200).fit(losses), g)  # the whole evaluation pass at once


def test_repeated_samples_count_with_their_mean_and_unseen_ones_keep_their_g():
    first, second = _losses(seed=1), _losses(seed=2)
    quality = LabelQuality(200)
    everything = torch.arange(200)
    quality.record(everything, first)
    quality.record(everything, second)
    mean = (first.double() + second.double()) / 2
    assert torch.equal(quality.refresh(), gmm_clean_probability(mean))
    before = quality.clean_prob.clone()
    seen = torch.arange(0, 200, 2)  # half the samples this time (drop_last, a partial epoch)
    quality.record(seen, _losses(seed=3)[seen])
    after = quality.refresh()
    assert torch.equal(after[1::2], before[1::2])
    assert torch.equal(after[0::2], gmm_clean_probability(_losses(seed=3)[seen]))


def test_state_dict_round_trip_restores_g_and_the_losses_collected_so_far():
    quality = LabelQuality(200)
    quality.fit(_losses())
    quality.record(torch.arange(50), _losses()[:50])  # mid-epoch
    restored = LabelQuality(200)
    restored.load_state_dict(quality.state_dict())
    assert set(quality.state_dict()) == {"clean_prob", "loss_sum", "loss_count", "refreshes"}
    assert all(torch.equal(a, b) for a, b in zip(quality.state_dict().values(), restored.state_dict().values()))
    assert torch.equal(restored.refresh(), quality.refresh())


def test_bad_input_is_refused_with_the_fix():
    quality = LabelQuality(10)
    with pytest.raises(ValueError, match="no losses were recorded"):
        quality.refresh()
    with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
        quality.record(torch.tensor([3, 10]), torch.ones(2))
    with pytest.raises(ValueError, match="reduction='none'"):
        quality.record(torch.tensor([3, 4]), torch.tensor(1.0))
    with pytest.raises(ValueError, match="integer"):
        quality.record(torch.tensor([3.0]), torch.ones(1))
    with pytest.raises(ValueError, match=r"losses must be \[10\]"):
        quality.fit(torch.ones(9))
    with pytest.raises(ValueError, match="positive int"):
        LabelQuality(0)


def _two_processes(rank, store_file, results):
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=2)
    try:
        losses = _losses()
        quality = LabelQuality(200)
        # each process sees its own shard (a DistributedSampler's): even indices on 0, odd on 1, sample 0 on both
        shard = torch.arange(rank, 200, 2)
        if rank == 1:
            shard = torch.cat([shard, torch.tensor([0])])
        quality.record(shard, losses[shard])
        g = quality.refresh()
        # a decoder built with a different seed on each process, and different gradients
        torch.manual_seed(rank)
        decoder = torch.nn.Linear(3, 2)
        sanm_distributed.broadcast_module_(decoder)
        for p in decoder.parameters():
            p.grad = torch.full_like(p, float(rank + 1))
        sanm_distributed.average_gradients_(decoder.parameters())
        torch.save({"g": g, "decoder": decoder.state_dict(), "grads": [p.grad for p in decoder.parameters()]},
                   f"{results}/rank{rank}.pt")
        dist.barrier()  # gloo: a rank that tears the group down while its peer still writes can abort that peer
    finally:
        dist.destroy_process_group()


def test_two_processes_fit_one_g_from_both_shards_and_agree_on_the_decoder(tmp_path):
    mp.spawn(_two_processes, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert torch.equal(ranks[0]["g"], ranks[1]["g"])
    assert torch.equal(ranks[0]["g"], gmm_clean_probability(_losses()))  # sample 0, seen twice, has its own loss
    torch.manual_seed(0)
    first = torch.nn.Linear(3, 2).state_dict()
    assert all(torch.equal(first[k], r["decoder"][k]) for r in ranks for k in first)  # rank 0's weights everywhere
    assert all(torch.equal(g, torch.full_like(g, 1.5)) for r in ranks for g in r["grads"])  # mean of 1 and 2


def test_indexed_dataset_appends_each_samples_index():
    from torch.utils.data import DataLoader, TensorDataset

    from sanm_plugin import IndexedDataset

    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10) * 2
    dataset = IndexedDataset(TensorDataset(x, y))
    assert len(dataset) == 10 and dataset[3] == (x[3], y[3], 3)
    assert IndexedDataset([5.0, 6.0])[1] == (6.0, 1)
    for xb, yb, idx in DataLoader(dataset, batch_size=4, shuffle=True):
        assert torch.equal(xb[:, 0], idx.float()) and torch.equal(yb, idx * 2)
