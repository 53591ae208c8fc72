"""`baselines.common.metrics`: the run's JSON files, the scalars its trackers get (TensorBoard here; MLflow and W&B in
test_trackers.py), AUC against sklearn, quiet progress."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from baselines.common import metrics
from baselines.common.metrics import EpochMeans, RunRecorder, binary_auc, epoch_progress
from baselines.common.trackers import TensorBoardTracker


class _FakeWriter:
    """Stands in for SummaryWriter, which this environment does not have."""

    instances: list[_FakeWriter] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        _FakeWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_jsonl_lines_and_type_conversion(tmp_path) -> None:
    rec = RunRecorder(tmp_path / "run")  # no trackers: the JSON file is the whole record
    rec.log_epoch({"epoch": 0, "loss/ce": torch.tensor(1.5), "train/acc": np.float32(0.25), "lr": 0.02})
    rec.log_epoch({"epoch": np.int64(1), "loss/ce": float("nan"), "test_acc": np.float64("inf"), "n": np.int32(3)})
    rec.close()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)  # strict JSON: no NaN/Infinity tokens
    assert first == {"epoch": 0, "loss/ce": 1.5, "train/acc": 0.25, "lr": 0.02}
    assert second == {"epoch": 1, "loss/ce": None, "test_acc": None, "n": 3}
    assert type(second["n"]) is int and type(first["train/acc"]) is float
    assert "NaN" not in lines[1] and rec.records() == [first, second]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.jsonl"]


def test_epoch_is_required(tmp_path) -> None:
    with pytest.raises(ValueError, match="epoch"):
        RunRecorder(tmp_path).log_epoch({"loss": 1.0})


def test_truncate_after_keeps_earlier_epochs(tmp_path) -> None:
    rec = RunRecorder(tmp_path)
    for epoch in range(5):
        rec.log_epoch({"epoch": epoch, "test_acc": 10.0 * epoch})
    kept = rec.truncate_after(2)
    assert [r["epoch"] for r in kept] == [0, 1, 2] and rec.records() == kept
    rec.log_epoch({"epoch": 3, "test_acc": 31.0})  # the resumed run appends after the kept lines
    assert [r["test_acc"] for r in RunRecorder(tmp_path).records()] == [0.0, 10.0, 20.0, 31.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_torn_last_line_is_ignored(tmp_path) -> None:
    rec = RunRecorder(tmp_path)
    rec.log_epoch({"epoch": 0, "test_acc": 1.0})
    with open(rec.metrics_path, "a") as handle:
        handle.write('{"epoch": 1, "test_')  # killed mid-write
    assert rec.records() == [{"epoch": 0, "test_acc": 1.0}]
    assert rec.truncate_after(0) == [{"epoch": 0, "test_acc": 1.0}]


def test_summary_is_atomic_indented_json(tmp_path, monkeypatch) -> None:
    rec = RunRecorder(tmp_path)
    rec.write_summary({"best_test_acc": np.float32(93.5), "last_test_acc": torch.tensor(93.0), "epochs": 3})
    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text) == {"best_test_acc": 93.5, "last_test_acc": 93.0, "epochs": 3}
    assert '\n  "epochs": 3' in text

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(metrics.json, "dump", broken_dump)
    with pytest.raises(OSError):
        rec.write_summary({"best_test_acc": 0.0})
    monkeypatch.undo()
    assert json.loads((tmp_path / "summary.json").read_text())["best_test_acc"] == 93.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_tensorboard_scalars(tmp_path) -> None:
    _FakeWriter.instances.clear()
    rec = RunRecorder(tmp_path, trackers=[TensorBoardTracker(tmp_path / "tensorboard", _FakeWriter)])
    rec.log_epoch({"epoch": 0, "loss/ce": torch.tensor(2.0), "test_acc": float("nan"), "phase": "warmup"})
    rec.log_epoch({"epoch": 1, "loss/ce": 1.0, "test_acc": 50.0, "converged": False})
    writer = _FakeWriter.instances[0]
    assert writer.log_dir == str(tmp_path / "tensorboard")
    assert writer.scalars[0] == ("loss/ce", 2.0, 0)
    assert writer.scalars[1][0] == "test_acc" and math.isnan(writer.scalars[1][1])  # NaN stays NaN in TensorBoard
    assert writer.scalars[2:] == [("loss/ce", 1.0, 1), ("test_acc", 50.0, 1)]
    # A resume truncates, and the next writer drops the events of the truncated epochs.
    rec.truncate_after(0)
    rec.log_epoch({"epoch": 1, "test_acc": 51.0})
    assert rec.close() == []
    assert writer.closed and _FakeWriter.instances[1].purge_step == 1 and _FakeWriter.instances[1].closed
    assert len(_FakeWriter.instances) == 2 and rec.trackers == []


def test_scalars_are_the_numbers_of_a_record() -> None:
    values = metrics.scalars({"epoch": 3, "loss/ce": torch.tensor(0.5), "n": np.int64(4), "acc": np.float32(0.25),
                              "nan": float("nan"), "converged": True, "phase": "warmup", "vec": torch.ones(2)})
    assert {k: v for k, v in values.items() if k != "nan"} == {"loss/ce": 0.5, "n": 4, "acc": 0.25}
    assert math.isnan(values["nan"]) and type(values["n"]) is int and type(values["acc"]) is float


def test_binary_auc_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    for n in (10, 257, 2000):
        positives = rng.random(n) < 0.3
        scores = rng.normal(size=n) + positives
        scores[: n // 4] = np.round(scores[: n // 4], 1)  # ties must count one half, as in sklearn
        expected = roc_auc_score(positives, scores)
        assert binary_auc(scores, positives) == pytest.approx(expected, abs=1e-12)
        assert binary_auc(torch.from_numpy(scores).float(), torch.from_numpy(positives)) == pytest.approx(
            roc_auc_score(positives, scores.astype(np.float32)), abs=1e-12
        )
    assert binary_auc([0.1, 0.2, 0.9], [False, False, True]) == 1.0
    assert binary_auc([0.5, 0.5], [True, False]) == 0.5


def test_binary_auc_one_class_is_nan_without_warning(recwarn) -> None:
    assert math.isnan(binary_auc(np.arange(5.0), np.ones(5, dtype=bool)))
    assert math.isnan(binary_auc(torch.arange(5.0), torch.zeros(5, dtype=torch.bool)))
    assert len(recwarn) == 0


def test_epoch_progress_off_a_terminal_says_a_line_per_interval(monkeypatch, capsys) -> None:
    """A log file or a cluster job gets plain lines (0 s: one after each batch but the last, which the epoch's own
    line follows), and no tqdm redraws."""
    monkeypatch.setattr(metrics, "_on_a_terminal", lambda: False)
    said: list[str] = []
    assert list(epoch_progress(list(range(5)), "epoch 2/3 train", said.append, every_s=0)) == list(range(5))
    assert [line.split(",")[0] for line in said] == [f"epoch 2/3 train: {k}/5 batches" for k in range(1, 5)]
    assert all(re.fullmatch(r"epoch 2/3 train: \d/5 batches, \d+ s", line) for line in said)
    said.clear()
    assert list(epoch_progress(list(range(5)), "epoch 2/3 train", said.append, every_s=3600)) == list(range(5))
    assert said == []  # a pass shorter than the interval says nothing
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_epoch_progress_on_a_terminal_is_a_tqdm_bar(monkeypatch, capsys) -> None:
    monkeypatch.setattr(metrics, "_on_a_terminal", lambda: True)
    said: list[str] = []
    assert list(epoch_progress(list(range(5)), "epoch 1/1 train", said.append, every_s=0)) == list(range(5))
    assert said == [] and "epoch 1/1 train" in capsys.readouterr().err


def test_epoch_means_average_each_term_over_the_steps():
    means = EpochMeans()
    assert means.means() == {} and means.steps == 0
    means.add({"loss": torch.tensor(1.0, requires_grad=True) * 2, "weight": 0.5})  # graph tensors and floats
    means.add({"loss": torch.tensor(4.0), "weight": torch.tensor(1.5, dtype=torch.float16)})
    assert means.steps == 2
    assert means.means() == {"loss": pytest.approx(3.0), "weight": pytest.approx(1.0)}
    assert all(not value.requires_grad for value in means.totals.values())


def test_selection_scores_by_hand_and_nan_where_undefined():
    import math

    from baselines.common.metrics import selection_scores

    assert selection_scores(picked=4, hits=3, clean=6) == {"selection_precision": 0.75, "selection_recall": 0.5}
    empty = selection_scores(picked=0, hits=0, clean=6)
    assert math.isnan(empty["selection_precision"]) and empty["selection_recall"] == 0.0
    assert math.isnan(selection_scores(picked=2, hits=0, clean=0)["selection_recall"])
