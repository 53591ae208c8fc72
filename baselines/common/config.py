"""The run configuration's schema: Hydra composes `conf/` onto these dataclasses.

Because the primary configs start from a structured schema, a preset or a command line that names a
key that does not exist fails at composition instead of being ignored (struct mode), and values are
type-checked. Ranges are checked where the values are used (NoiseSpec, SANMConfig, the engine), so
the library and the command line share one set of checks.
"""

from __future__ import annotations

import hashlib
import dataclasses
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from sanm_plugin import SANMConfig

AUTO = "auto"


def dataset_dir_name(name: str, root: Optional[str]) -> str:
    """The dataset's part of a run directory. Image folders are told apart by their folder (its name and a
    hash of its absolute path), so runs on two different folders never share, or resume, a directory."""
    if name != "image_folder" or not root:
        return name
    folder = Path(root).expanduser().resolve()
    return f"image_folder-{folder.name}-{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"


def flatten(tree: dict, prefix: str = "") -> dict:
    """{dotted key: leaf} of a nested config (empty dicts stay leaves): how run identities and reports compare
    runs setting by setting."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


# conf/common.yaml names run directories with ${dataset_dir:${dataset.name},${dataset.root}}
OmegaConf.register_new_resolver("dataset_dir", dataset_dir_name, replace=True)


@dataclass
class DatasetConfig:
    name: str = "cifar10"  # digits | cifar10 | cifar100 | image_folder | animal10n | clothing1m | webvision
    root: Optional[str] = None  # CIFAR: where torchvision's pickles are (downloaded when missing); image_folder: required
    cache_dir: Optional[str] = None  # decoded image folders and noisy labels; default ~/.cache/sanm_plugin
    train_subset: Optional[int] = None  # class-balanced subset of the training split, for quick runs
    test_subset: Optional[int] = None  # at most this many test images, class-balanced: for quick checks
    download: bool = True
    # a dataset streamed from its files (streaming.py): DataLoader decoding processes per stream of batches
    # (0: decode in the training process)
    workers: int = 2
    decode_size: Optional[int] = None  # a streamed dataset's square decode size (clothing1m 256, webvision 320)
    first_classes: int = 50  # webvision: the first N classes (mini-WebVision: 50)
    imagenet_val: Optional[str] = None  # webvision: ImageNet's val folder (<class id>/ subfolders), a second test set


@dataclass
class NoiseConfig:
    name: str = "none"  # the run directory's name for this noise
    type: str = "none"  # none | sym | asym | pairflip | idn | file
    rate: float = 0.0
    protocol: str = "dividemix"  # dividemix (true class may be redrawn) | exclude_true
    asym_map: Optional[Dict[int, int]] = None
    file: Optional[str] = None
    file_key: Optional[str] = None
    # a label file in another order than the training images: index_file[i] is the file's row for image i
    # (the CIFAR-10 image-folder copy's orig_index, for the published CIFAR-10_human.pt)
    index_file: Optional[str] = None
    index_key: Optional[str] = None


@dataclass
class ModelConfig:
    name: str = "preact_resnet18"  # preact_resnet18 | resnet18 | cnn9 | torchvision | timm
    # channels of the first stage: preact_resnet18 and resnet18 64 (the paper, C2D), cnn9 128 (upstream); 16 or 8 on CPU
    width: int = 64
    dropout: float = 0.25  # cnn9 only
    arch: Optional[str] = None  # model=torchvision | timm: the architecture (resnet50, vgg19_bn, ...)
    weights: Optional[str] = None  # a state dict file to start from (ImageNet weights you saved); no downloads
    # a quirk of the official SANM network, reproduced for parity only (docs/baselines.md 9.6): the forward returns
    # softmax probabilities, which every loss then takes for logits (a second softmax); on in no preset
    softmax_output: bool = False


@dataclass
class AugmentConfig:
    """`augment=none|weak|autoaugment|randaugment|c2d_warmup|imagenet`: the training views (augment.py AUGMENT_PRESETS); a key
    left None keeps the preset's value."""

    name: str = "weak"
    crop_padding: Optional[int] = None  # zero padding of the random crop (4; 0 = no crop)
    crop_size: Optional[int] = None  # the views' side when smaller than the images (imagenet: 224 of 256)
    flip: Optional[bool] = None  # horizontal flip with p 0.5
    num_ops: Optional[int] = None  # randaugment: ops per image (2)
    magnitude: Optional[int] = None  # randaugment: each op's level ~ U{1..magnitude-1} (10)
    cutout: Optional[int] = None  # randaugment: side of the grey square after the ops (16; 0 = none)
    fill: Optional[int] = None  # pixel value the geometric ops fill with (autoaugment 128, randaugment 0)


@dataclass
class TrainerConfig:
    """How the networks are optimised. Keys a method tunes per dataset and noise may be `auto` in its
    conf/<method>.yaml: the engine then fills them from `Method.trainer_defaults` (docs/baselines.md, per method)
    and writes the values used to resolved.yaml; a command-line value always wins."""

    epochs: Any = 300
    batch_size: Any = 128
    optimizer: Any = "sgd"  # sgd | adam (Co-teaching)
    lr: Any = 0.02
    momentum: float = 0.9  # SGD only
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam only
    weight_decay: Any = 5e-4
    # step: lr *= lr_gamma at each milestone | cosine: to lr_min at the end | cosine_restarts: cosine over
    # lr_restart_period epochs, restarting (ELR) | linear: constant, then linearly to 0 from lr_decay_start (Co-teaching)
    lr_schedule: Any = "step"
    lr_milestones: Any = field(default_factory=list)  # step only; methods' yamls: auto (scaled, trainer.py)
    lr_gamma: Any = 0.1
    lr_min: Any = None  # floor of the cosine schedules; None = lr * 1e-3
    lr_restart_period: Any = 10
    lr_decay_start: Any = 0
    eval_batch_size: int = 512
    grad_clip: Optional[float] = None  # max gradient norm, None = off
    # share of the (noisy) training set held out, seeded, as a noisy validation split: its accuracy
    # selects the epoch, and summary.json reports test_acc_at_best_val (CDR's protocol); 0 = none
    val_fraction: Any = 0.0
    # how fast, not what, it trains (a run may resume under other values): auto (bf16 on CUDA devices that
    # support it, else 32) | 32 | bf16 | fp16 (with loss scaling); channels_last memory format; torch.compile of the
    # networks' forwards: false | true (inductor) | a backend name (eager: the wiring without code generation)
    precision: Any = AUTO
    channels_last: bool = False
    compile: Any = False
    sync_bn: bool = False  # torchrun on CUDA: BatchNorm statistics over the global batch (default: per rank, as upstream)


@dataclass
class SANMEngineKeys:
    """The `sanm` group's own keys: which preset, and how the engine trains on the masked views."""

    name: str = "on"
    enabled: bool = True  # sanm=off sets false: the plain baseline, for sweeps
    preset: str = "paper"  # method (+sanm=on) | paper | official: the SANMConfig starting point (sanm_preset_values)
    train_on: str = AUTO  # auto | masked | clean_and_masked
    target: str = AUTO  # auto | label | prediction
    warmup_epochs: Any = AUTO  # auto | int: epochs before SANM starts (G needs a trained network)
    recon_source: str = AUTO  # methods that mix inputs: separate (a forward of the masked views) | mixed (the mixup forward's)

    def hook_settings(self, method_name: str) -> Dict[str, Any]:
        """Every SANMConfig field for a run of `method_name`: the values this group sets (its other keys are the
        engine's) on top of its preset's."""
        given = {f.name: getattr(self, f.name) for f in fields(SANMConfig) if getattr(self, f.name) is not None}
        return {**sanm_preset_values(self.preset, method_name), **given}


# `+sanm=on|official|off`: SANMEngineKeys plus every SANMConfig field as an optional override (None keeps the
# preset's value), generated from SANMConfig so that a new hook switch is a `sanm.` key with no edit here.
SANMGroupConfig = make_dataclass(
    "SANMGroupConfig",
    [(name, Optional[hint], field(default=None)) for name, hint in get_type_hints(SANMConfig).items()],
    bases=(SANMEngineKeys,),
)
SANMGroupConfig.__module__ = __name__


# `+sanm=on` is the paper's equations with each method's measured values on top (Method.sanm_defaults, filled in
# by register_method_schema); `+sanm=paper` the equations alone; `+sanm=official` the official code's choices.
SANM_PRESETS = ("method", "paper", "official")
SANM_METHOD_DEFAULTS: Dict[str, Dict[str, Any]] = {}


def sanm_preset_values(preset: str, method_name: str) -> Dict[str, Any]:
    """Every SANMConfig field as `preset` sets it for the method `method_name` (`method`: paper + the method's
    sanm_defaults; `paper`, `official`: SANMConfig's own presets, the same for every method)."""
    if preset not in SANM_PRESETS:
        raise ValueError(f"sanm.preset must be one of {SANM_PRESETS}, got {preset!r}")
    if preset == "method":
        return SANMConfig.paper(**SANM_METHOD_DEFAULTS.get(method_name, {})).to_dict()
    return getattr(SANMConfig, preset)().to_dict()


# One line per key of the `sanm` group, for `--help` (conf/hydra/help/baselines.yaml renders it); the hook keys'
# values under each preset are added from the code that sets them (sanm_preset_values), never written here.
SANM_KEY_HELP = {
    "mu": "peak-box ratio scale, r = mu*(1-G) (Eq. 3; the paper finds 0.1-0.3 all help)",
    "delta": "box aspect ~ U(delta, 1/delta) (Eq. 4)",
    "beta": "weight of the reconstruction loss (Eq. 10)",
    "activation": "cam (class activation map, Eq. 1) | energy (sum of squared channels)",
    "ratio": "paper (r = mu*(1-G)) | official (U(0.02, 0.07) + 0.03*(1-G))",
    "box": "centered on the peak (Eq. 4) | corner (top-left corner at the peak)",
    "fill": "pixel (i.i.d. U(0,1), Eq. 5) | channel (one U(0,1) per box and channel)",
    "trough": "same_image | separate_image | off",
    "label_spread": "all (Eq. 7) | others: where NLR moves the mass r",
    "validate": "the hooks' value checks (a host sync per step on CUDA; off in the presets)",
    "fill_space": "pixel (U(0,1) pixel values, normalised like the image) | input (U(0,1) in normalised units)",
    "recon_target": "input (reconstruct the normalised tensor) | pixel (the image in [0, 1])",
    "decoder": "linear (transposed convs only) | bn (transposed convs + BN + ReLU)",
    "extremes": "exact (arg-max/min of the map) | uint8 (rescaled to 0..255 and floored first)",
    "train_on": "auto | masked (replaces the clean view) | clean_and_masked (adds it)",
    "target": "auto | label (NLR on the method's target) | prediction (on the detached clean prediction)",
    "warmup_epochs": "auto (when the method's warm-up ends) | epochs before SANM starts",
    "recon_source": "auto | separate (a forward of the masked views) | mixed (the mixup forward's features)",
}


def sanm_help(method_name: str = "") -> str:
    """The `sanm` keys with their one-line descriptions and, for the hook keys, each preset's value for this
    method, aligned, for the --help page."""
    values = {preset: sanm_preset_values(preset, method_name) for preset in SANM_PRESETS}
    width = max(map(len, SANM_KEY_HELP)) + len("sanm.")
    lines = []
    for key, text in SANM_KEY_HELP.items():
        if key in values["paper"] and key != "validate":
            on, paper, official = (values[p][key] for p in SANM_PRESETS)
            text += f" [on: {on}, paper: {paper}, official: {official}]"
        lines.append(f"  {'sanm.' + key:<{width}}  {text}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("sanm_help", sanm_help, replace=True)


@dataclass
class MethodConfig:
    """The `method` keys every method has; a method's own keys and defaults live in a subclass of this, its
    class's `config` (the one place they are declared: conf/<method>.yaml holds no `method:` block)."""

    name: str = ""  # empty: the method class's `name`
    warmup_epochs: Any = AUTO  # the method's warm-up; sanm.warmup_epochs=auto starts SANM when it ends
    sanm_train_on: str = "clean_and_masked"  # what sanm.train_on=auto means
    sanm_target: str = "label"  # what sanm.target=auto means
    sanm_recon_source: str = "separate"  # what sanm.recon_source=auto means (methods that mix their inputs)


@dataclass
class PlotsConfig:
    """What a run draws (baselines/plot.py) and saves for it; none of it changes what the run trains."""

    enabled: bool = True  # PNGs into run_dir/plots at the end of the run, when matplotlib is installed
    epochs: Any = AUTO  # when to save G, mask ratios and the gallery (auto: 4 epochs over SANM's; [] none)
    gallery: int = 8  # training images in the gallery, half of them with wrong labels


@dataclass
class MLflowConfig:
    """`mlflow.enabled=true`: the run's scalars, resolved config and summary also go to an MLflow run
    (baselines/common/trackers.py; docs/runs.md 3.6). Off by default: the package is an extra (`.[mlflow]`)."""

    enabled: bool = False
    # None: MLFLOW_TRACKING_URI, else MLflow's default (since 3.7: sqlite:///mlflow.db in the working directory);
    # or http(s)://<server>, sqlite:///<file>, databricks
    tracking_uri: Optional[str] = None
    experiment: str = "sanm-plugin"  # created when missing
    run_name: Optional[str] = None  # None: <method>/<dataset>/<noise>/<sanm>/seed<k>, the default run directory's


@dataclass
class WandbConfig:
    """`wandb.enabled=true`: the same to a Weights & Biases run (trackers.py; docs/runs.md 3.6). Off by default: the
    package is an extra (`.[wandb]`)."""

    enabled: bool = False
    project: str = "sanm-plugin"
    entity: Optional[str] = None  # None: your default entity
    # online | offline (files only, uploaded later by `wandb sync`) | disabled; None: WANDB_MODE, else online
    mode: Optional[str] = None
    run_name: Optional[str] = None  # None: as mlflow.run_name


@dataclass
class RunConfig:
    method: Any = field(default_factory=MethodConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sanm: Optional[SANMGroupConfig] = None  # absent = plain baseline; +sanm=on adds it
    seed: int = 0
    device: str = AUTO  # auto | cpu | cuda | cuda:N
    resume: bool = False  # continue the run in run_dir from its last completed epoch
    overwrite: bool = False  # start again in a run_dir that already holds a run
    output_root: str = "outputs"
    run_dir: Optional[str] = None  # default: Hydra's run directory, outputs/<method>/<dataset>/<noise>/<sanm>/seed<k>
    # the encoder the networks start from (baselines/common/encoders.py): a file (python -m baselines.pretrain_simclr
    # writes one; C2D's released SimCLR checkpoints load too), or auto: where the method starts from one (C2D,
    # +recipe=official), a SimCLR pre-training of this run's data and model, cached and reused; else none
    pretrained: Optional[str] = None
    pretrain_epochs: Any = AUTO  # epochs of pretrained=auto's pre-training: auto = conf/pretrain_simclr.yaml's (1000)
    tensorboard: bool = True  # scalars under run_dir/tensorboard when tensorboard is installed
    mlflow: MLflowConfig = field(default_factory=MLflowConfig)  # experiment trackers (trackers.py), rank 0 only
    wandb: WandbConfig = field(default_factory=WandbConfig)
    progress: bool = True  # within each epoch: a tqdm bar on a terminal, else a line every progress_every_s
    progress_every_s: float = 30.0  # seconds between those lines when the output is not a terminal (0: every batch)
    plots: PlotsConfig = field(default_factory=PlotsConfig)


ConfigStore.instance().store(name="run_schema", node=RunConfig)


def declared_keys(method_config: type[MethodConfig]) -> tuple[set[str], set[str]]:
    """(every dotted key the schema declares, the keys whose values are free-form mappings or lists) for a run of
    the method whose `config` is `method_config`: what a command-line key is checked against before Hydra composes
    (a `+key=value` would otherwise add an unknown key to the config and train without it)."""
    declared, open_ended = set(), set()

    def walk(schema: type, prefix: str) -> None:
        for name, hint in get_type_hints(schema).items():
            key = f"{prefix}{name}"
            declared.add(key)
            if key == "method":
                hint = method_config
            elif key == "sanm":
                hint = SANMGroupConfig
            if dataclasses.is_dataclass(hint):
                walk(hint, key + ".")
            elif any(getattr(h, "__origin__", None) in (dict, list) for h in (hint, *getattr(hint, "__args__", ()))):
                open_ended.add(key)  # a mapping or a list (noise.asym_map): its entries are the user's

    walk(RunConfig, "")
    return declared, open_ended  # the first entry of every conf/<method>.yaml


def register_method_schema(name: str, config: type[MethodConfig], sanm_defaults: Optional[Dict[str, Any]] = None) -> None:
    """Store a method's `config` dataclass as `<name>_method` (package `method`), the second entry of
    conf/<name>.yaml's defaults: unknown keys fail, and its defaults are the method's; and its `sanm_defaults`, what
    `+sanm=on` sets on top of the paper's equations for it. Called for every Method subclass that declares a `name`
    (engine.Method.__init_subclass__)."""
    unknown = sorted(set(sanm_defaults or {}) - {f.name for f in fields(SANMConfig)})
    if unknown:
        raise TypeError(f"{name}'s sanm_defaults name {unknown}, which are not SANMConfig fields")
    SANMConfig.paper(**(sanm_defaults or {}))  # a bad value fails at declaration, not in a run
    SANM_METHOD_DEFAULTS[name] = dict(sanm_defaults or {})
    node = config()
    if not node.name:
        node.name = name
    elif node.name != name and "${" not in node.name:
        raise TypeError(f"{config.__name__}.name is {node.name!r}, but the method is {name!r}; leave it empty")
    ConfigStore.instance().store(name=f"{name}_method", node=node, package="method")
