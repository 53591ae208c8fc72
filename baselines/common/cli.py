"""Hydra entry points: `python -m baselines.<method>` composes conf/<method>.yaml and runs the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .engine import ConfigurationError, Method, report_and_exit, run

# An absolute path: Hydra would read a relative one as a Python package under `python -m`.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def entry_point(method_cls: type[Method], config_name: str) -> Callable[[], None]:
    """A `main()` for `method_cls`; the run directory is Hydra's (deterministic, see conf/common.yaml)."""

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)
    def main(cfg: DictConfig) -> None:
        try:
            run(cfg, method_cls, run_dir=cfg.run_dir or HydraConfig.get().runtime.output_dir)
        except ConfigurationError as error:
            report_and_exit(error)

    return main
