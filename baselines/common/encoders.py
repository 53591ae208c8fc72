"""The SimCLR encoders networks start from (`pretrained=`): saved, read, loaded, and pre-trained once on demand.

`pretrained=PATH` names an encoder file in either of two formats:

- ours (`save_encoder`, what `python -m baselines.pretrain_simclr` writes): {"model": the network's weights without
  its classifier, "model_name", "width"};
- C2D's released SimCLR checkpoints (SupContrast's `{"model": state dict, ...}` of a projection-head ResNet under
  DataParallel): keys `module.encoder.<name>`; the `module.` and `encoder.` prefixes are dropped, and so are the
  projection head (`head.`) and any classifier (`fc.`). They are standard ResNets (`model=resnet18`).

`pretrained=auto` gives the methods that start from an encoder (`Method.starts_from_encoder`: C2D, and DivideMix
under `+recipe=official`) one pre-trained by `baselines.pretrain_simclr` at conf/pretrain_simclr.yaml's settings, for
`pretrain_epochs` epochs (auto: that file's). It is cached under `<cache_dir>/encoders/`, in a folder named by
everything that determines it (the data's content, model, width, seed and the pre-training settings), so every later
run of the same data and model reuses it, and an interrupted pre-training resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .config import AUTO

__all__ = ["Encoder", "EncoderFile", "choose_encoder", "load_encoder", "read_encoder", "save_encoder"]

ENCODER_CACHE_VERSION = 1  # part of every cached encoder's key: bump when the pre-training's code changes
# the SupContrast keys C2D's releases hold beside the weights (argparse options): allowed by the weights-only loader
torch.serialization.add_safe_globals([argparse.Namespace])


@dataclass
class EncoderFile:
    """An encoder file's weights in our module names, and the network they fit."""

    weights: dict[str, torch.Tensor]
    model_name: str
    width: int
    format: str  # sanm (save_encoder) | c2d (C2D's SimCLR releases)


@dataclass
class Encoder:
    """The encoder a run starts from: its file (None: an auto encoder not yet trained, on a resume, where the
    checkpoint holds the weights) and what resolved.yaml records about it."""

    path: Optional[str]
    record: dict[str, Any]


def save_encoder(model: torch.nn.Module, path: Path, model_cfg: DictConfig) -> None:
    """The feature extractor without its classifier, for `pretrained=` (C2D's initialisation)."""
    classifier = {f"{name}." for name, module in model.named_modules() if module is model.get_classifier()}
    weights = {k: v for k, v in model.state_dict().items() if not any(k.startswith(c) for c in classifier)}
    save_checkpoint(path, {"model": weights, "model_name": model_cfg.name, "width": model_cfg.width})


def read_encoder(path: str) -> EncoderFile:
    """The weights of an encoder file of either format, with the network they fit; a clear error otherwise."""
    if not Path(path).is_file():
        raise ValueError(f"pretrained checkpoint {path} not found (python -m baselines.pretrain_simclr writes one)")
    try:
        state = load_checkpoint(path, map_location="cpu")
    except RuntimeError as error:
        raise ValueError(f"pretrained checkpoint {path} is not an encoder checkpoint ({error})") from error
    if isinstance(state, dict) and "model_name" in state and "width" in state and isinstance(state.get("model"), dict):
        return EncoderFile(state["model"], state["model_name"], state["width"], "sanm")
    weights = state.get("model") if isinstance(state, dict) else None
    if isinstance(weights, dict) and any(_c2d_name(key) is not None for key in weights):
        try:
            return _from_c2d(weights)
        except ValueError as error:
            raise ValueError(f"pretrained checkpoint {path}: {error}") from None
    raise ValueError(f"pretrained checkpoint {path} is not an encoder checkpoint: it is neither this library's "
                     "(python -m baselines.pretrain_simclr) nor C2D's SimCLR format "
                     "({'model': {'module.encoder.*': ...}})")


def _c2d_name(key: str) -> Optional[str]:
    """Our module name for one of C2D's keys; None for its projection head (`head.`), a classifier (`fc.`) or
    anything else outside `encoder.`."""
    bare = key.removeprefix("module.")
    return bare.removeprefix("encoder.") if bare.startswith("encoder.") else None


def _from_c2d(weights: dict[str, torch.Tensor]) -> EncoderFile:
    """C2D's `module.encoder.*` weights renamed to ours; the width read from the stem (C2D's ResNets: 64)."""
    renamed = {name: value for key, value in weights.items() if (name := _c2d_name(key)) is not None}
    if "conv1.weight" not in renamed:
        raise ValueError("a C2D checkpoint without its stem (encoder.conv1.weight): not a ResNet encoder")
    return EncoderFile(renamed, "resnet18", int(renamed["conv1.weight"].shape[0]), "c2d")


def load_encoder(model: torch.nn.Module, path: str, model_cfg: DictConfig) -> str:
    """Load an encoder file (`read_encoder`) into `model`; the classifier stays freshly initialised (C2D,
    strict=False). Returns the file's format."""
    encoder = read_encoder(path)
    if (encoder.model_name, encoder.width) != (model_cfg.name, model_cfg.width):
        hint = " (+recipe=official builds it)" if encoder.format == "c2d" else ""
        raise ValueError(f"pretrained checkpoint {path} holds {encoder.model_name} width {encoder.width}, but this run "
                         f"builds {model_cfg.name} width {model_cfg.width}; set model={encoder.model_name} "
                         f"model.width={encoder.width}{hint}")
    try:
        result = model.load_state_dict(encoder.weights, strict=False)
    except RuntimeError as error:  # same names, other shapes (a ResNet-50's bottlenecks)
        raise ValueError(f"pretrained checkpoint {path} does not fit {model_cfg.name}: "
                         f"{' '.join(str(error).split())[:300]}") from None
    classifier = {f"{n}." for n, m in model.named_modules() if m is model.get_classifier()}
    missing = [k for k in result.missing_keys if not any(k.startswith(c) for c in classifier)]
    if missing or result.unexpected_keys:
        raise ValueError(f"pretrained checkpoint {path} does not fit the model: missing {missing[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]}")
    return encoder.format


def choose_encoder(cfg: DictConfig, data_digest: str, cache_dir: Path, *, wanted: bool, required: bool,
                   resuming: bool, method: str, distributed: bool = False) -> Optional[Encoder]:
    """The encoder this run starts from, or None.

    `pretrained=PATH` is always loaded. `pretrained=auto` means an encoder only where the method starts from one
    (`wanted`); it is pre-trained first unless cached, or, on a resume (`resuming`: the checkpoint holds the
    weights), only looked up. `required` (C2D) refuses a run without one."""
    given = cfg.pretrained
    if given is None:
        if required:
            raise ValueError(f"{method} starts from a SimCLR encoder: pass pretrained=PATH (python -m "
                             "baselines.pretrain_simclr writes <run_dir>/encoder.pt, C2D's released checkpoints load "
                             "too) or pretrained=auto")
        return None
    if given != AUTO:
        encoder = read_encoder(given)
        return Encoder(str(Path(given).expanduser()), {"source": "file", "format": encoder.format})
    if not wanted:
        return None
    if distributed:
        raise ValueError("pretrained=auto pre-trains in one process: run python -m baselines.pretrain_simclr first "
                         "(or one run without torchrun), then pass pretrained=<its encoder.pt>")
    settings = pretraining_settings(cfg)
    folder = Path(cache_dir) / "encoders" / _cache_name(cfg, data_digest, settings)
    path = folder / "encoder.pt"
    if not path.is_file() and not resuming:
        _pretrain(cfg, settings, folder)
    record = {"source": "auto", "format": "sanm", **settings}
    return Encoder(str(path) if path.is_file() else None, record)


def pretraining_settings(cfg: DictConfig) -> dict[str, Any]:
    """The trainer settings of the auto pre-training: conf/pretrain_simclr.yaml's, with `pretrain_epochs`."""
    from .cli import config_path

    file = _conf_file(config_path(), "pretrain_simclr.yaml")
    trainer = dict(OmegaConf.to_container(OmegaConf.create(file)["trainer"]))
    epochs = cfg.get("pretrain_epochs", AUTO)
    if epochs != AUTO:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"pretrain_epochs must be auto or an integer >= 1, got {epochs!r}")
        trainer["epochs"] = epochs
    return trainer


def _conf_file(root: str, name: str) -> str:
    """The text of a file of conf/, from the checkout or the installed package (cli.config_path's two places)."""
    if root.startswith("pkg://"):
        from importlib.resources import files

        return (files("baselines.conf") / name).read_text()
    return (Path(root) / name).read_text()


def _cache_name(cfg: DictConfig, data_digest: str, settings: dict[str, Any]) -> str:
    """A folder name that changes with everything the encoder depends on: readable parts, then a hash of all."""
    from baselines.pretrain_simclr import SimCLRConfig

    model = OmegaConf.to_container(cfg.model, resolve=True)
    identity = {"version": ENCODER_CACHE_VERSION, "data": data_digest, "model": model, "seed": cfg.seed,
                "trainer": settings, "simclr": OmegaConf.to_container(OmegaConf.structured(SimCLRConfig()))}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"simclr-{cfg.model.name}-w{cfg.model.width}-e{settings['epochs']}-seed{cfg.seed}-{digest}"


def _pretrain(cfg: DictConfig, settings: dict[str, Any], folder: Path) -> None:
    """baselines.pretrain_simclr on this run's data and model into `folder` (resumed if interrupted before).

    The pre-training seeds and draws from the global RNGs; they are put back afterwards, so the networks built next
    start the same whether the encoder was trained now or found in the cache."""
    from baselines.pretrain_simclr import PretrainSimCLR, SimCLRConfig

    from .config import RunConfig
    from .engine import run

    started = (folder / "checkpoints" / "last.pt").is_file()  # an interrupted pre-training continues; else anew
    pre = OmegaConf.merge(OmegaConf.structured(RunConfig(method=SimCLRConfig(name=PretrainSimCLR.name))), {
        "dataset": cfg.dataset, "model": cfg.model, "seed": cfg.seed, "device": cfg.device, "trainer": settings,
        "resume": started, "overwrite": not started, "output_root": "", "progress": cfg.progress,
        "progress_every_s": cfg.progress_every_s, "tensorboard": False, "plots": {"enabled": False},
    })
    print(f"pretrained=auto: a {settings['epochs']}-epoch SimCLR pre-training of {cfg.model.name} first, in {folder} "
          "(cached: later runs of the same data, model and seed reuse it)")
    streams = capture_rng_state()
    run(pre, PretrainSimCLR, run_dir=folder)
    restore_rng_state(streams)
