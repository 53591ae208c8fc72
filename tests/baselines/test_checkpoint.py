"""`baselines.common.checkpoint`: weights-only round trips, RNG restore, atomic writes, clear load errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from baselines.common import checkpoint
from baselines.common.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint


def _draw() -> tuple:
    # np.random.randn exercises numpy's cached-gaussian slot, random.gauss Python's.
    return torch.rand(4), np.random.rand(3), np.random.randn(3), random.random(), random.gauss(0, 1)


def _assert_same_draws(a: tuple, b: tuple) -> None:
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[3:] == b[3:]


def _training_state() -> dict:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()  # fills the momentum buffers, so the optimizer state is not empty
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 7, "rng": capture_rng_state()}


def test_round_trip_loads_with_weights_only(tmp_path) -> None:
    state = _training_state()
    path = tmp_path / "checkpoints" / "last.pt"  # parent created on save
    save_checkpoint(path, state)
    raw = torch.load(path, weights_only=True)
    loaded = load_checkpoint(path)
    for got in (raw, loaded):
        assert got["epoch"] == 7
        for key, value in state["model"].items():
            assert torch.equal(got["model"][key], value)
        assert got["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
        for idx, buf in state["optimizer"]["state"].items():
            assert torch.equal(got["optimizer"]["state"][idx]["momentum_buffer"], buf["momentum_buffer"])
    restore_rng_state(loaded["rng"])  # what came back through the weights-only unpickler is usable as is


def test_restore_replays_every_stream(tmp_path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draw()  # move off the seeded state so the gaussian caches may be filled
    state = capture_rng_state()
    expected = _draw()
    _draw()
    restore_rng_state(state)
    _assert_same_draws(_draw(), expected)
    # And after the trip through disk, which is what a resumed run sees.
    save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    _draw()
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    _assert_same_draws(_draw(), expected)


def test_save_leaves_no_temp_files_and_replaces(tmp_path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 2


def test_crash_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip archive")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"])
def test_corrupt_file_names_path_and_remedy(tmp_path, content) -> None:
    path = tmp_path / "last.pt"
    if content == "truncated":
        save_checkpoint(path, {"w": torch.randn(1000)})
        content = path.read_bytes()[:500]
    path.write_bytes(content)
    with pytest.raises(RuntimeError, match="unreadable") as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "delete it or run with overwrite=true" in message


def test_unsafe_pickle_is_refused_as_unreadable(tmp_path) -> None:
    path = tmp_path / "last.pt"
    torch.save({"not_allowed": np.arange(3)}, path)  # a NumPy array needs the unsafe unpickler
    with pytest.raises(RuntimeError, match="unreadable"):
        load_checkpoint(path)


def test_missing_file_names_path(tmp_path) -> None:
    path = tmp_path / "nowhere" / "last.pt"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(path)
