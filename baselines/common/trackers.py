"""Experiment trackers beside a run's own files: TensorBoard, MLflow and Weights & Biases (docs/runs.md 3.6).

Every tracker gets what metrics.jsonl gets, epoch by epoch: each numeric entry, with the epoch as step. MLflow and
W&B also get the resolved config (MLflow as flattened dotted params, W&B as its nested config), the numbers of
summary.json, and how the run ended. Only rank 0 opens trackers (engine.run).

Each package is an optional extra, imported only when its tracker is used. TensorBoard is on by default wherever it
is installed; MLflow and W&B are asked for (`mlflow.enabled=true`, `wandb.enabled=true`), so a missing package is an
error before the run starts rather than a run that logs nowhere. `trackers.json` in the run directory keeps their
run ids, so `resume=true` continues the same MLflow and W&B runs.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path
from typing import Any, Optional

from .config import flatten
from .files import atomic_write

__all__ = ["MLflowTracker", "TRACKERS_FILE", "TensorBoardTracker", "Tracker", "TrackerError", "WandbTracker",
           "check_installed", "open_trackers", "tensorboard_available"]

TRACKERS_FILE = "trackers.json"
# How to install each package: the project's extra, or the packages themselves (an install from a wheel).
# MLflow's default store since 3.7 is sqlite:///mlflow.db, which mlflow-skinny opens only with SQLAlchemy and Alembic.
INSTALL = {
    "tensorboard": 'pip install -e ".[logging]"',
    "mlflow": 'pip install -e ".[mlflow]" (or: pip install mlflow-skinny sqlalchemy alembic)',
    "wandb": 'pip install -e ".[wandb]" (or: pip install wandb)',
}
# How a run ended (status.json's state, metrics.RunRecorder.write_status) as each tracker records it; any other
# state (a run closed while still `running`) counts as failed. W&B marks a non-zero exit code failed; 130 is the
# shell's code for Ctrl-C, and the run is first marked preempting, W&B's state for a run that may resume.
MLFLOW_STATUS = {"finished": "FINISHED", "interrupted": "KILLED"}
WANDB_EXIT_CODE = {"finished": 0, "interrupted": 130}


class TrackerError(ValueError):
    """A tracker that was asked for cannot be used; one line that says how to fix it (engine: ConfigurationError)."""


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise TrackerError(f"{name}.enabled=true, but {name} cannot be imported ({_one_line(error)}); "
                           f"install it: {INSTALL[name]}, or set {name}.enabled=false") from None


def check_installed(cfg: Any) -> None:
    """Imports the package of every tracker `cfg` asks for, so that a missing one stops the run before it loads
    any data (on every rank: a rank that stopped alone would leave the others waiting)."""
    for name in ("mlflow", "wandb"):
        if cfg[name].enabled:
            _import(name)


def _summary_writer_cls() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter  # raises ImportError when tensorboard is missing
    except ImportError:
        return None
    return SummaryWriter


def tensorboard_available() -> bool:
    return _summary_writer_cls() is not None


class Tracker:
    """What metrics.RunRecorder calls on each tracker. `log_scalars` gets plain numbers (metrics.scalars)."""

    name = ""

    def describe(self) -> str:
        """Where it logs, for the run's "logging to" line."""
        return self.name

    def ids(self) -> Optional[dict]:
        """What trackers.json keeps to continue this tracker's run on resume (None: nothing)."""
        return None

    def log_config(self, config: dict) -> None:
        pass

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def log_summary(self, values: dict[str, float]) -> None:
        pass

    def truncate_after(self, epoch: int) -> None:
        pass

    def close(self, state: str) -> None:
        pass


class TensorBoardTracker(Tracker):
    """Scalars under `log_dir`. The writer is made at the first epoch it logs, with TensorBoard's purge_step at that
    epoch, so that after a resume the events a killed session wrote past its checkpoint are dropped."""

    name = "tensorboard"

    def __init__(self, log_dir: str | Path, writer_cls: Any) -> None:
        self.log_dir = Path(log_dir)
        self._writer_cls = writer_cls  # torch's SummaryWriter (_summary_writer_cls)
        self._writer: Any = None

    def describe(self) -> str:
        return f"{self.log_dir.name}/"

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        if self._writer is None:
            self._writer = self._writer_cls(str(self.log_dir), purge_step=step)
        for key, value in values.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def truncate_after(self, epoch: int) -> None:
        self._close_writer()  # the next writer purges from the first epoch it logs

    def close(self, state: str) -> None:
        self._close_writer()

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _param_text(value: Any) -> str:
    """A config value as an MLflow param: strings as they are, the rest as JSON (`null`, `true`, `[0.9, 0.999]`),
    as they would be typed on the command line."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class MLflowTracker(Tracker):
    """A run in an MLflow experiment, through MlflowClient rather than the fluent API: no process-wide active run,
    so runs one after another in a process (a multirun, the tests) never find another's run still open.

    Args:
        settings: The `mlflow` config group (config.MLflowConfig).
        run_name: The MLflow run name.
        previous: trackers.json's `mlflow` entry when resuming: that run is continued if the store still has it.
    """

    name = "mlflow"

    def __init__(self, settings: Any, run_name: str, previous: Optional[dict] = None) -> None:
        mlflow = _import("mlflow")
        self._entities = importlib.import_module("mlflow.entities")
        self.uri = settings.tracking_uri or mlflow.get_tracking_uri()
        self.experiment = settings.experiment
        self.note = ""
        try:
            self.client = mlflow.MlflowClient(tracking_uri=self.uri)
            run = self._previous_run(previous, mlflow.exceptions.MlflowException)
            if run is None:
                run = self._new_run(run_name)
            else:
                self.client.update_run(run.info.run_id, status="RUNNING")
        except Exception as error:  # noqa: BLE001 - the store's own error (unreachable, wrong scheme), in one line
            raise TrackerError(f"mlflow.enabled=true, but no MLflow run could be started at {self.uri} "
                               f"({_one_line(error)}); set mlflow.tracking_uri= or mlflow.enabled=false") from error
        self.run_id = run.info.run_id
        self.experiment_id = run.info.experiment_id
        self._params = dict(run.data.params)  # params are immutable in MLflow: a resumed run's stay as logged
        self._step = 0

    def _previous_run(self, previous: Optional[dict], not_found: type[Exception]) -> Any:
        if not previous:
            return None
        if previous.get("tracking_uri") != self.uri:
            self.note = f"; its earlier run {previous.get('run_id')} is at {previous.get('tracking_uri')}"
            return None
        try:
            return self.client.get_run(previous["run_id"])
        except not_found:
            self.note = f"; its earlier run {previous['run_id']} is not in this store"
            return None

    def _new_run(self, run_name: str) -> Any:
        from mlflow.tracking.context.registry import resolve_tags  # user, source, git commit: as mlflow.start_run

        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
        return self.client.create_run(experiment_id, run_name=run_name, tags=resolve_tags())

    def describe(self) -> str:
        return f"mlflow run {self.run_id} (experiment {self.experiment!r} at {self.uri}{self.note})"

    def ids(self) -> dict:
        return {"run_id": self.run_id, "tracking_uri": self.uri, "experiment_id": self.experiment_id}

    def log_config(self, config: dict) -> None:
        """The config as params; on resume, a value that changed (`resume`, a longer `trainer.epochs`) becomes the
        tag `resumed.<key>`, since MLflow refuses to change a param."""
        values = {key: _param_text(value) for key, value in flatten(config).items()}
        params = [self._entities.Param(k, v) for k, v in values.items() if k not in self._params]
        tags = [self._entities.RunTag(f"resumed.{k}", v) for k, v in values.items()
                if k in self._params and self._params[k] != v]
        self.client.log_batch(self.run_id, params=params, tags=tags)
        self._params.update({param.key: param.value for param in params})

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._entities.Metric(k, float(v), stamp, step)
                                                    for k, v in values.items()])
        self._step = step

    def log_summary(self, values: dict[str, float]) -> None:
        self.log_scalars(values, self._step)  # at the last epoch's step

    def close(self, state: str) -> None:
        self.client.set_terminated(self.run_id, status=MLFLOW_STATUS.get(state, "FAILED"))


class WandbTracker(Tracker):
    """A Weights & Biases run; its files go to `run_dir/wandb` unless WANDB_DIR says otherwise.

    Args:
        settings: The `wandb` config group (config.WandbConfig).
        run_dir: The run directory.
        run_name: The W&B display name.
        previous: trackers.json's `wandb` entry when resuming: wandb.init resumes that run id (resume="allow").
    """

    name = "wandb"

    def __init__(self, settings: Any, run_dir: Path, run_name: str, previous: Optional[dict] = None) -> None:
        wandb = _import("wandb")
        resume = {"id": previous["id"], "resume": "allow"} if previous else {}
        try:
            self.run = wandb.init(project=settings.project, entity=settings.entity, name=run_name, mode=settings.mode,
                                  dir=None if os.environ.get("WANDB_DIR") else str(run_dir), **resume)
        except Exception as error:  # noqa: BLE001 - wandb's own error (no API key, no network), in one line
            raise TrackerError(f"wandb.enabled=true, but wandb.init failed ({_one_line(error)}); log in with "
                               "`wandb login`, or run with wandb.mode=offline, or set wandb.enabled=false") from error
        self._disabled = bool(getattr(self.run, "disabled", False))  # mode=disabled: a run that keeps nothing

    def describe(self) -> str:
        if self._disabled:
            return "wandb (disabled: wandb.mode or WANDB_MODE)"
        where = f"offline, in {Path(self.run.dir).parent}" if self.run.offline else self.run.url
        return f"wandb run {self.run.id} ({where})"

    def ids(self) -> Optional[dict]:
        return None if self._disabled else {"id": self.run.id, "project": self.run.project}

    def log_config(self, config: dict) -> None:
        self.run.config.update(config, allow_val_change=True)  # a resumed run's `resume` and `trainer.epochs` change

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def log_summary(self, values: dict[str, float]) -> None:
        self.run.summary.update(values)

    def close(self, state: str) -> None:
        if state == "interrupted":
            self.run.mark_preempting()
        self.run.finish(exit_code=WANDB_EXIT_CODE.get(state, 1))


def open_trackers(cfg: Any, run_dir: Path, run_name: str) -> list[Tracker]:
    """The trackers `cfg` turns on, started, their run ids written to run_dir/trackers.json. With `cfg.resume`,
    MLflow and W&B continue the runs trackers.json names. A tracker that cannot start raises TrackerError, after
    closing those already started."""
    saved = _read_ids(run_dir) if cfg.resume else {}
    opened: list[Tracker] = []
    try:
        writer_cls = _summary_writer_cls() if cfg.tensorboard else None
        if writer_cls is not None:
            opened.append(TensorBoardTracker(run_dir / "tensorboard", writer_cls))
        if cfg.mlflow.enabled:
            opened.append(MLflowTracker(cfg.mlflow, cfg.mlflow.run_name or run_name, saved.get("mlflow")))
        if cfg.wandb.enabled:
            opened.append(WandbTracker(cfg.wandb, run_dir, cfg.wandb.run_name or run_name, saved.get("wandb")))
    except BaseException:
        for tracker in opened:
            tracker.close("failed")
        raise
    ids = {**saved, **{tracker.name: tracker.ids() for tracker in opened if tracker.ids() is not None}}
    if ids:
        with atomic_write(run_dir / TRACKERS_FILE, "w") as handle:
            json.dump(ids, handle, indent=2)
            handle.write("\n")
    return opened


def _read_ids(run_dir: Path) -> dict:
    path = run_dir / TRACKERS_FILE
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return ids if isinstance(ids, dict) else {}
