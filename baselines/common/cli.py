"""Hydra entry points: `python -m baselines.<method>` composes conf/<method>.yaml and runs the engine.

The configs are found in the source checkout's conf/ (editable installs and runs from a clone) or, in a
regular install or wheel, as the package data `baselines.conf` that setup.cfg maps conf/ to.
"""

from __future__ import annotations

import difflib
import os
import shlex
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from .config import declared_keys
from .engine import ConfigurationError, Method, RunInterrupted, report_and_exit, run
from .interrupts import exit_code

_CHECKOUT_CONF = Path(__file__).resolve().parents[2] / "conf"


def config_path() -> str:
    """conf/ of the source checkout when there is one, else the packaged copy (Hydra's pkg:// search path)."""
    if (_CHECKOUT_CONF / "common.yaml").is_file():
        return str(_CHECKOUT_CONF)  # absolute: Hydra would read a relative path as a package under `python -m`
    return "pkg://baselines.conf"


def entry_point(method_cls: type[Method], config_name: Optional[str] = None) -> Callable[[], None]:
    """A `main()` for `method_cls` on conf/<config_name>.yaml (default: the method's name); the run directory is
    Hydra's (deterministic, see conf/common.yaml)."""
    config_name = config_name or method_cls.name

    @hydra.main(version_base="1.3", config_path=config_path(), config_name=config_name)
    def compose_and_run(cfg: DictConfig) -> None:
        try:
            run(cfg, method_cls, run_dir=cfg.run_dir or HydraConfig.get().runtime.output_dir)
        except ConfigurationError as error:
            report_and_exit(error)
        except RunInterrupted as stop:
            report_interrupt(stop, f"baselines.{config_name}", HydraConfig.get().overrides.task)

    def main() -> None:
        problem = (sanm_keys_without_preset(sys.argv[1:]) or undeclared_key(sys.argv[1:], method_cls, config_name)
                   or multirun_under_torchrun(sys.argv[1:]))
        if problem:
            report_and_exit(ConfigurationError(problem))
        if not _is_main_rank():  # one run directory, written by rank 0 alone (Hydra's copy too)
            sys.argv.append("hydra.output_subdir=null")
        try:
            compose_and_run()
        except KeyboardInterrupt as interrupt:  # before training started (loading data): no epoch to continue
            if _is_main_rank():
                print("interrupted before training started; nothing to resume", file=sys.stderr)
            sys.exit(exit_code(interrupt))

    return main


def _parsed_overrides(arguments: Sequence[str]) -> Optional[list]:
    """The command line's `key=value` overrides as Hydra parses them; None when one is malformed (Hydra itself
    then reports it, with its own message)."""
    candidates = [a for a in arguments if "=" in a and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(candidates)
    except Exception:
        return None


def sanm_keys_without_preset(arguments: Sequence[str]) -> Optional[str]:
    """The one-line error for `sanm.<key>=...` given without a `+sanm=<preset>` (Hydra's own error is a
    20-line assertion about a None root); None when the command line is fine."""
    overrides = _parsed_overrides(arguments)
    if overrides is None:
        return None
    keys = [o.key_or_group for o in overrides]
    if "sanm" in keys:
        return None
    for override in overrides:
        if override.key_or_group.startswith("sanm."):
            return (f"{override.key_or_group} needs a SANM preset: add +sanm=on (the paper's equations) or "
                    "+sanm=official (the official code's choices), e.g. +sanm=on " + override.input_line)
    return None


def config_groups() -> set[str]:
    """The config groups (conf/<group>/) a command line may select, with or without `+`."""
    if (_CHECKOUT_CONF / "common.yaml").is_file():
        return {p.name for p in _CHECKOUT_CONF.iterdir() if p.is_dir() and not p.name.startswith("_")}
    from importlib.resources import files

    return {p.name for p in files("baselines.conf").iterdir() if p.is_dir() and not p.name.startswith("_")}


def undeclared_key(arguments: Sequence[str], method_cls: type[Method], config_name: str) -> Optional[str]:
    """The one-line error for a key no schema declares, with or without `+`/`++` (Hydra's own error advises `+`,
    which adds the key and trains silently without it); None when every key is declared."""
    overrides = _parsed_overrides(arguments)
    if overrides is None:
        return None
    declared, open_ended = declared_keys(method_cls.config)
    groups = config_groups()
    for override in overrides:
        key = override.key_or_group
        if override.is_delete() or key.split(".")[0].split("/")[0] == "hydra" or key in declared or key in groups:
            continue
        if any(key.startswith(prefix + ".") for prefix in open_ended):
            continue
        leaves = {k for k in declared if not any(other.startswith(k + ".") for other in declared)}
        near = difflib.get_close_matches(key, sorted(leaves | groups), n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}? " if near else ""
        return (f"unknown key {key} (in {override.input_line}): no config of baselines.{config_name} declares it; "
                f"{hint}python -m baselines.{config_name} --help lists every key")
    return None


def multirun_under_torchrun(arguments: Sequence[str]) -> Optional[str]:
    """torchrun starts one run over N processes; a Hydra sweep would start the whole sweep in each."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and any(a in ("-m", "--multirun") for a in arguments):
        return ("a multirun (-m) cannot run under torchrun: sweep without torchrun, or launch one torchrun per "
                "combination (docs/gpus.md 2)")
    return None


def report_interrupt(stop: RunInterrupted, module: str, overrides: Sequence[str]) -> None:
    """Ctrl-C or SIGTERM: one line that says what is safe and how to continue, instead of a traceback, from rank 0
    alone under torchrun; exits 130 (Ctrl-C) or 143 (SIGTERM), as a shell or a scheduler expects."""
    kept = [o for o in overrides if o.split("=")[0].lstrip("+~") not in ("resume", "overwrite")]
    command = " ".join(["python -m", module, *map(shlex.quote, kept), "resume=true"])
    if stop.completed:
        state = f"epoch {stop.completed} of {stop.epochs} is checkpointed in {stop.run_dir}"
    else:
        state = f"no epoch had finished yet in {stop.run_dir}"
    by = "" if stop.signal == "SIGINT" else f" by {stop.signal}"
    if _is_main_rank():
        print(f"interrupted{by}: {state}; continue with: {command}", file=sys.stderr)
    sys.exit(stop.exit_code)


def _is_main_rank() -> bool:
    return int(os.environ.get("RANK", 0)) == 0
