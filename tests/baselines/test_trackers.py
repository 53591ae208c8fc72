"""Experiment trackers (baselines/common/trackers.py): smoke runs on digits logged to MLflow (a file store) and to W&B
(offline), read back from what each wrote; a kill and a resume continue the same tracker runs; a tracker asked for
but not installed stops the run before it loads data. Nothing here touches the network."""

import json
import struct
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from baselines.common import trackers
from baselines.common.config import RunConfig
from baselines.common.engine import ConfigurationError, RunInterrupted, run
from baselines.common.metrics import RunRecorder
from baselines.registry import BASELINES
from method_steps import smoke_config

CE = BASELINES["ce"]


def _offline(monkeypatch, folder):
    """Every tracker offline and inside `folder`: W&B's offline mode, its config and cache folders, no MLflow URI
    from the environment. MLflow 3 keeps its file store behind MLFLOW_ALLOW_FILE_STORE (a maintenance-mode backend)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(folder / "wandb_home"))
    for name in ("WANDB_DIR", "WANDB_API_KEY", "WANDB_BASE_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path)


def _cfg(tmp_path, *overrides):
    """CE on 64 digits (one batch an epoch) for 2 epochs."""
    return smoke_config("ce", "noise=sym_0.5", "dataset.train_subset=64", "tensorboard=false", "progress=false",
                        f"dataset.cache_dir={tmp_path / 'cache'}", *overrides)


def _mlflow(tmp_path):
    return [f"mlflow.tracking_uri={(tmp_path / 'mlruns').as_uri()}", "mlflow.enabled=true"]


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class _KilledInSecondEpoch(CE):
    def train_epoch(self, epoch: int) -> dict:
        if epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C after the first checkpoint
        return super().train_epoch(epoch)


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(run directory, summary) of one smoke run logged to MLflow (a file store) and W&B (offline) together, which
    the two tests below read back each from its own store."""
    tmp_path = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _offline(monkeypatch, tmp_path)
        overrides = [*_mlflow(tmp_path), "mlflow.experiment=tests", "wandb.enabled=true", "wandb.mode=offline",
                     "wandb.project=tests"]
        summary = run(_cfg(tmp_path, *overrides), CE, run_dir=tmp_path / "run")
    return tmp_path, summary


# ---------------------------------------------------------------------- MLflow
@pytest.mark.slow
def test_mlflow_gets_the_config_every_epoch_s_scalars_and_the_summary(logged):
    from mlflow import MlflowClient

    tmp_path, summary = logged
    run_dir = tmp_path / "run"
    ids = json.loads((run_dir / "trackers.json").read_text())["mlflow"]
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    logged = client.get_run(ids["run_id"])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "ce/digits/sym_0.5/off/seed0"
    assert client.get_experiment(logged.info.experiment_id).name == "tests"
    params = logged.data.params
    assert params["trainer.epochs"] == "2" and params["method.name"] == "ce" and params["noise.rate"] == "0.5"
    assert params["trainer.lr_milestones"] == "[]" and params["dataset.root"] == "null"  # as typed on a command line
    assert params["noise.rate_actual"] == str(summary["noise_rate_actual"])  # resolved.yaml's values, not the yaml's
    records = _records(run_dir)
    assert set(logged.data.metrics) >= {key for key in records[0] if key != "epoch"}
    for key in ("test_acc", "loss/ce", "lr"):
        history = client.get_metric_history(ids["run_id"], key)
        assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r[key])) for r in records]
    assert logged.data.metrics["best_test_acc"] == pytest.approx(summary["best_test_acc"])
    log = (run_dir / "run.log").read_text()
    assert f"mlflow run {ids['run_id']} (experiment 'tests' at {(tmp_path / 'mlruns').as_uri()})" in log


@pytest.mark.slow
def test_mlflow_that_cannot_start_stops_the_run_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigurationError, match=r"no MLflow run could be started at nosuch://store \(.*\); set "
                                                 r"mlflow.tracking_uri= or mlflow.enabled=false$"):
        run(_cfg(tmp_path, "mlflow.enabled=true", "mlflow.tracking_uri=nosuch://store"), CE, run_dir=run_dir)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"
    assert not (run_dir / "metrics.jsonl").exists()


# ---------------------------------------------------------------------- W&B (offline)
BLOCK = 32 * 1024  # the .wandb file is a LevelDB-style log: 32 KiB blocks of 7-byte-headed chunks


def wandb_records(path: Path) -> list:
    """The protobuf records of an offline run's run-<id>.wandb file (what `wandb sync` uploads)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # the padding at a block's end
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_run(folder: Path) -> dict:
    """What one offline run file holds: its id, config, history rows by step, summary, exit code, preempting.

    wandb-core, W&B's own process, may still be writing the file when run.finish() has returned (seen: the bare
    7-byte header); wandb.teardown() waits for it to finish (it starts again at the next wandb.init)."""
    import wandb

    wandb.teardown()
    (path,) = folder.glob("run-*.wandb")
    found = {"config": {}, "history": {}, "summary": {}, "exit_code": None, "preempting": False}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["id"], found["project"] = record.run.run_id, record.run.project
            found["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            found["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            found["history"][record.history.step.num] = row
        elif kind == "summary":
            found["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                     for i in record.summary.update})
        elif kind == "exit":
            found["exit_code"] = record.exit.exit_code
        elif kind == "preempting":
            found["preempting"] = True
    return found


@pytest.mark.slow
def test_wandb_offline_gets_the_config_every_epoch_s_scalars_and_the_summary(logged):
    tmp_path, summary = logged
    run_dir = tmp_path / "run"
    (folder,) = (run_dir / "wandb").glob("offline-run-*")  # in the run directory, as WANDB_DIR is unset
    logged = wandb_run(folder)
    assert json.loads((run_dir / "trackers.json").read_text())["wandb"] == {"id": logged["id"], "project": "tests"}
    assert logged["project"] == "tests"
    assert logged["config"]["trainer"]["epochs"] == 2 and logged["config"]["method"]["name"] == "ce"
    assert logged["config"]["noise"]["rate_actual"] == summary["noise_rate_actual"]
    records = _records(run_dir)
    assert sorted(logged["history"]) == [1, 2]  # the epoch is the step
    for record in records:
        row = logged["history"][record["epoch"]]
        assert {k: row[k] for k in record if k != "epoch"} == pytest.approx({k: v for k, v in record.items()
                                                                             if k != "epoch"})
    assert logged["summary"]["best_test_acc"] == pytest.approx(summary["best_test_acc"])
    assert logged["exit_code"] == 0 and not logged["preempting"]
    assert f"wandb run {logged['id']} (offline, in {folder})" in (run_dir / "run.log").read_text()


# ---------------------------------------------------------------------- resume
@pytest.mark.slow
def test_a_killed_run_resumed_continues_its_mlflow_and_wandb_runs(tmp_path):
    from mlflow import MlflowClient

    run_dir = tmp_path / "run"
    both = [*_mlflow(tmp_path), "wandb.enabled=true", "wandb.mode=offline"]
    with pytest.raises(RunInterrupted):
        run(_cfg(tmp_path, *both), _KilledInSecondEpoch, run_dir=run_dir)
    first = json.loads((run_dir / "trackers.json").read_text())
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    assert client.get_run(first["mlflow"]["run_id"]).info.status == "KILLED"
    (killed,) = (run_dir / "wandb").glob("offline-run-*")
    killed_run = wandb_run(killed)
    assert killed_run["preempting"] and killed_run["exit_code"] == 130 and sorted(killed_run["history"]) == [1]

    run(_cfg(tmp_path, *both, "resume=true"), CE, run_dir=run_dir)
    assert json.loads((run_dir / "trackers.json").read_text()) == first  # the same runs, continued
    logged = client.get_run(first["mlflow"]["run_id"])
    assert logged.info.status == "FINISHED"
    history = client.get_metric_history(first["mlflow"]["run_id"], "test_acc")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["test_acc"]))
                                                    for r in _records(run_dir)]
    assert logged.data.params["resume"] == "false" and logged.data.tags["resumed.resume"] == "true"
    (resumed,) = set((run_dir / "wandb").glob("offline-run-*")) - {killed}  # W&B offline: a second file, same id
    resumed_run = wandb_run(resumed)
    assert resumed_run["id"] == killed_run["id"] == first["wandb"]["id"]
    assert sorted(resumed_run["history"]) == [2] and resumed_run["exit_code"] == 0
    assert resumed_run["config"]["resume"] is True


def test_a_resume_whose_mlflow_run_is_not_in_the_store_starts_a_new_one_and_says_so(tmp_path):
    cfg = OmegaConf.structured(RunConfig(tensorboard=False, resume=True))
    cfg.mlflow.enabled, cfg.mlflow.tracking_uri = True, (tmp_path / "b").as_uri()
    earlier = {"run_id": "0123abcd", "tracking_uri": (tmp_path / "a").as_uri(), "experiment_id": "1"}
    (tmp_path / trackers.TRACKERS_FILE).write_text(json.dumps({"mlflow": earlier, "wandb": {"id": "kept"}}))
    (tracker,) = trackers.open_trackers(cfg, tmp_path, "name")
    tracker.close("finished")
    assert tracker.run_id != "0123abcd"
    assert tracker.describe().endswith(f"; its earlier run 0123abcd is at {earlier['tracking_uri']})")
    saved = json.loads((tmp_path / trackers.TRACKERS_FILE).read_text())
    assert saved["mlflow"]["run_id"] == tracker.run_id and saved["wandb"] == {"id": "kept"}  # the others kept


def test_wandb_disabled_logs_nothing_and_says_so(tmp_path):
    cfg = OmegaConf.structured(RunConfig(tensorboard=False))
    cfg.wandb.enabled, cfg.wandb.mode = True, "disabled"
    (tracker,) = trackers.open_trackers(cfg, tmp_path, "name")
    tracker.log_scalars({"test_acc": 1.0}, 1)
    tracker.close("finished")
    assert tracker.describe() == "wandb (disabled: wandb.mode or WANDB_MODE)"
    assert not (tmp_path / trackers.TRACKERS_FILE).exists() and not (tmp_path / "wandb").exists()


# ---------------------------------------------------------------------- asked for, not installed
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlflow", "wandb"])
def test_a_tracker_asked_for_but_not_installed_stops_before_the_data_loads(tmp_path, monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError, as when it is missing
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigurationError) as stop:
        run(_cfg(tmp_path, f"{name}.enabled=true"), CE, run_dir=run_dir)
    message = str(stop.value)
    assert message.startswith(f"{name}.enabled=true, but {name} cannot be imported (")
    assert f'install it: pip install -e ".[{name}]"' in message and message.endswith(f"or set {name}.enabled=false")
    assert "\n" not in message and not run_dir.exists() and not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------- which trackers, and closing them
def test_tensorboard_is_opened_only_when_on_and_installed(tmp_path, monkeypatch):
    cfg = OmegaConf.structured(RunConfig())
    monkeypatch.setattr(trackers, "_summary_writer_cls", lambda: object)
    assert [t.name for t in trackers.open_trackers(cfg, tmp_path, "name")] == ["tensorboard"]
    cfg.tensorboard = False
    assert trackers.open_trackers(cfg, tmp_path, "name") == []
    cfg.tensorboard = True
    monkeypatch.setattr(trackers, "_summary_writer_cls", lambda: None)  # as where tensorboard is not installed
    assert trackers.open_trackers(cfg, tmp_path, "name") == []
    assert not (tmp_path / trackers.TRACKERS_FILE).exists()  # no run ids to keep


class _Tracker(trackers.Tracker):
    def __init__(self, name, fail=False):
        self.name, self.fail, self.logged, self.ended = name, fail, [], None

    def log_scalars(self, values, step):
        self.logged.append((step, values))

    def close(self, state):
        if self.fail:
            raise ConnectionError("server gone")
        self.ended = state


@pytest.mark.parametrize("state", ["finished", "interrupted", "failed"])
def test_trackers_end_with_the_run_s_state_and_a_failed_close_is_reported(tmp_path, state):
    good, bad = _Tracker("good"), _Tracker("bad", fail=True)
    recorder = RunRecorder(tmp_path, trackers=[bad, good])
    recorder.write_status("running")
    recorder.log_epoch({"epoch": 1, "test_acc": 50.0, "phase": "warmup"})
    recorder.write_status(state)
    assert recorder.close() == ["bad: not closed (ConnectionError: server gone)"]
    assert good.ended == state and good.logged == [(1, {"test_acc": 50.0})]
