"""What a run trains, recorded in its checkpoint so that `resume=true` continues only the same run.

A run's identity is every setting that decides what it trains, as {dotted key: JSON value}; the checkpoint keeps
it, and a resume whose identity differs is refused with the keys that differ (docs/runs.md section 4). Settings
added since a checkpoint was written take the value that trains as the code before them did
(`upgrade_identity`), so no saved run loses its progress to a new key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from .config import flatten, sanm_preset_values

__all__ = ["CHECKPOINT_FORMAT", "RESUMABLE_KEYS", "ResumeRefused", "check_resumable", "run_identity",
           "upgrade_identity"]


class ResumeRefused(ValueError):
    """A checkpoint cannot be continued by this command; the message says why and what to do, in one line."""


# Checkpoints since format 2 count epochs from 1 like every other output: "epoch" = epochs completed.
CHECKPOINT_FORMAT = 2
# What may change between a run and its resume: how long it trains and how it reports, not what it trains.
RESUMABLE_KEYS = ("trainer.epochs", "trainer.eval_batch_size", "trainer.precision", "trainer.channels_last",
                  "trainer.compile", "trainer.sync_bn")


def run_identity(cfg: DictConfig, dataset_identity: str) -> dict[str, str]:
    """Everything that determines what a run trains, as {dotted key: JSON value}: the data (by content, not
    by path), noise, model, method, SANM, trainer (as given, `auto`s unresolved), augmentation, seed and
    encoder; without RESUMABLE_KEYS and the run-control options (device, output paths, logging)."""
    given = OmegaConf.to_container(cfg, resolve=True)
    identity = {"dataset": dataset_identity, "seed": json.dumps(given["seed"]),
                "pretrained": json.dumps(given.get("pretrained")),
                "pretrain_epochs": json.dumps(given.get("pretrain_epochs")),
                "sanm": json.dumps(given.get("sanm") is not None)}
    for group in ("noise", "model", "method", "trainer", "augment", "sanm"):
        for key, value in flatten(given.get(group) or {}, group).items():
            if key not in RESUMABLE_KEYS and key != "noise.name":
                identity[key] = json.dumps(value, sort_keys=True)
    return _with_sanm_preset_values(identity)


def _with_sanm_preset_values(identity: dict[str, str]) -> dict[str, str]:
    """The identity with the hook settings a SANM run left to its preset (`null`) as the preset's values of
    today, so that a later change of a default (the decoder's, say) cannot change what a saved run resumes as."""
    if json.loads(identity.get("sanm.enabled", "false")) is not True:
        return identity
    preset = sanm_preset_values(json.loads(identity.get("sanm.preset", '"paper"')),
                                json.loads(identity.get("method.name", '""')))
    return {**identity, **{f"sanm.{name}": json.dumps(value, sort_keys=True) for name, value in preset.items()
                           if identity.get(f"sanm.{name}") == "null"}}


def check_resumable(state: dict, identity: dict[str, str], checkpoint: Path, method_name: str) -> None:
    """Refuse, in one line naming the keys, to continue a checkpoint under settings it was not trained with."""
    if state.get("format", 1) != CHECKPOINT_FORMAT:
        raise ResumeRefused(f"{checkpoint} was written by an older version of this library (epochs counted "
                            "from 0); finish it with that version, or start again with overwrite=true")
    if state["method_name"] != method_name:
        raise ResumeRefused(f"{checkpoint} was written by {state['method_name']}, not {method_name}; "
                            "use another run_dir or overwrite=true")
    saved = upgrade_identity(state["identity"], state.get("networks", {}))
    differ = sorted(key for key in saved.keys() | identity.keys() if saved.get(key) != identity.get(key))
    if differ:
        shown = ", ".join(f"{key} ({_short(saved.get(key))} -> {_short(identity.get(key))})" for key in differ[:6])
        more = f" and {len(differ) - 6} more" if len(differ) > 6 else ""
        raise ResumeRefused(f"resume=true, but this command differs from the run in {checkpoint.parent.parent} "
                            f"in {shown}{more}; resume with the run's own settings (see its resolved.yaml), or "
                            "use another run_dir= or overwrite=true")


# Keys added to the config after checkpoint format 2, with the value that trains as the code before them did:
# a checkpoint that lacks one was trained that way, so it still resumes (its progress is never lost).
ADDED_KEYS = {"method.recipe": '"paper"', "method.mix_views": "null", "method.warmup_augment": "null",
              "method.sanm_masked_set": '"all"'}
_AUGMENT_KEYS = ("crop_padding", "flip", "num_ops", "magnitude", "cutout", "fill")


def upgrade_identity(saved: dict[str, str], networks: Optional[dict] = None) -> dict[str, str]:
    """A checkpoint's identity in today's keys: `trainer.augment` true / false became `augment=weak` / `none`;
    ADDED_KEYS take their old behaviour; `sanm.extremes` did not exist while every preset read the map
    exactly, which is the paper preset's reading still (the official preset's is now uint8, so it is left
    missing there and such a run is refused). Identities written before the preset's SANM values were
    recorded hold `null` for them: the decoder's default changed (bn, then linear), so the saved weights say
    which one trained; every other default is unchanged since its key was added."""
    saved = dict(saved)
    if "trainer.augment" in saved and "augment.name" not in saved:
        saved["augment.name"] = json.dumps("weak" if json.loads(saved.pop("trainer.augment")) else "none")
        saved.update({f"augment.{key}": "null" for key in _AUGMENT_KEYS})
    if saved.get("method.name") in ('"dividemix"', '"c2d"'):  # the methods those keys were added to
        for key, value in ADDED_KEYS.items():
            saved.setdefault(key, value)
    if saved.get("sanm.preset") == '"paper"' and "sanm.extremes" not in saved:
        saved["sanm.extremes"] = "null"
    for key in ("model.arch", "model.weights"):  # added with model=torchvision|timm; our models leave them null
        saved.setdefault(key, "null")
    saved.setdefault("model.softmax_output", "false")  # added for parity with the official code (issue 42)
    # added with the cached auto encoders (issue 42): before, pretrained=auto (smoke and first-run presets) trained 2
    saved.setdefault("pretrain_epochs", "2" if saved.get("pretrained") == '"auto"' else '"auto"')
    for key in ("noise.index_file", "noise.index_key"):  # added for label files in another order (issue 39)
        saved.setdefault(key, "null")
    if "augment.name" in saved:  # added with augment=imagenet; every earlier preset views the whole image
        saved.setdefault("augment.crop_size", "null")
    if saved.get("sanm.decoder") == "null":
        saved["sanm.decoder"] = json.dumps(_saved_decoder_kind(networks or {}))
    saved = _with_sanm_preset_values(saved)
    if saved.get("sanm.name") == '"on"' and saved.get("sanm.preset") == '"paper"':
        saved["sanm.preset"] = '"method"'  # +sanm=on named the paper preset before the per-method one (issue 39);
        # its values, filled in above, are the paper's, so a changed method default shows as that key alone
    return saved


def _saved_decoder_kind(networks: dict) -> Optional[str]:
    """'bn' or 'linear': which reconstruction decoder a checkpoint's networks hold (BatchNorm keeps running
    statistics, the linear decoder has none); None without SANM weights."""
    keys = [key for net in networks.values() if isinstance(net, dict) for key in (net.get("sanm") or {})
            if ".decoder." in key]
    if not keys:
        return None
    return "bn" if any(key.endswith("running_mean") for key in keys) else "linear"


def _short(value: Optional[str]) -> str:
    if value is None:
        return "unset"
    return value if len(value) <= 40 else value[:18] + "..." + value[-18:]
