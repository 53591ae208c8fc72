"""Configuration of the SANM hooks (the math only; how a method trains on masked views is the engine's).

Every field maps to one choice in the paper (Tu et al., "Learning with Noisy Labels via Self-supervised
Adversarial Noisy Masking", CVPR 2023, Eq. 1-10) or in the official code (yuanpengtu/SANM,
`Train_cifar.py`). `SANMConfig.paper()` is the default; `SANMConfig.official()` reproduces the code.

A config travels as a plain dict (`to_dict()` / `from_mapping()`) or as itself: it is registered as a safe
global for `torch.load(weights_only=True)`, and it survives tools that copy dataclasses field by field
(Lightning's `save_hyperparameters` and loggers), so it can sit in a LightningModule's hyper-parameters.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, asdict, dataclass, fields
from typing import Any, Mapping

import torch

_CHOICES = {
    "activation": ("cam", "energy"),
    "ratio": ("paper", "official"),
    "box": ("centered", "corner"),
    "fill": ("pixel", "channel"),
    "trough": ("same_image", "separate_image", "off"),
    "label_spread": ("all", "others"),
    "fill_space": ("pixel", "input"),
    "recon_target": ("input", "pixel"),
    "decoder": ("bn", "linear"),
    "extremes": ("exact", "uint8"),
}


# Not frozen=True: Lightning's apply_to_collection (save_hyperparameters' loggers) rebuilds a dataclass by
# assigning every field its own value, which a frozen dataclass refuses. __setattr__ below keeps it immutable.
@dataclass(unsafe_hash=True)
class SANMConfig:
    """Hyper-parameters and variant switches of SANM's three hooks (immutable once built).

    Attributes:
        mu: peak-box ratio scale, r = mu * (1 - G) (Eq. 3; paper 0.2, 0.1-0.3 all help, 0 = no masking).
        delta: box aspect d ~ U(delta, 1/delta) (Eq. 4; 0.8 gives the official U(0.8, 1.25)).
        beta: weight of the reconstruction loss, L = L_c + beta * L_r (Eq. 10; official 0.02).
        activation: 'cam' = class activation map of the predicted class (Eq. 1);
            'energy' = sum of squared feature channels (official, class-agnostic).
        ratio: 'paper' = r = mu*(1-G), box area r*H*W, trough ratio mu*G;
            'official' = r = U(0.02, 0.07) + 0.03*(1-G), box area 0.5*r*H*W, trough box as large.
        box: 'centered' on the peak (Eq. 4) or 'corner' = top-left corner at the peak, shifted inward.
        fill: 'pixel' = i.i.d. U(0,1) per pixel and channel (Eq. 5); 'channel' = one U(0,1) per box channel.
        trough: mask the trough in the 'same_image', in a 'separate_image' (official), or 'off'.
        label_spread: NLR moves mass r from the arg-max to 'all' c classes (Eq. 7) or the 'others' (c-1).
        validate: check values (clean_prob range, NaN, label range); costs one host sync on CUDA.
        fill_space: where the U(0,1) fill is drawn: 'pixel' = as pixel intensities of the image, then normalised
            like it (Eq. 5 masks the image; needs the augmenter's input_normalization, else the input is taken
            to be raw pixels) or 'input' = into the tensor as given (official: normalised units).
        recon_target: what the decoder reconstructs: the 'input' tensor as given (official: normalised) or the
            'pixel' image (the input with its normalisation undone).
        decoder: 'linear' = transposed convolutions only, no normalisation or activation (the official decoder's
            kind; the paper does not describe its decoder, and this one measured better, docs/method.md 3.4);
            'bn' = 2x transposed-convolution stages with BN and ReLU.
        extremes: how the peak and trough pixels are read off the upsampled map: 'exact' arg-max / arg-min, or
            'uint8' = the official rescale to 0..255 and floor first, so pixels within 1/255 of the range of
            the minimum tie and the first in row-major order wins (it moves the trough, never the peak).
    """

    mu: float = 0.2
    delta: float = 0.8
    beta: float = 1.0
    activation: str = "cam"
    ratio: str = "paper"
    box: str = "centered"
    fill: str = "pixel"
    trough: str = "same_image"
    label_spread: str = "all"
    validate: bool = True
    fill_space: str = "pixel"
    recon_target: str = "input"
    decoder: str = "linear"
    extremes: str = "exact"

    def __setattr__(self, name: str, value: Any) -> None:
        """Fields are set once, by __init__; assigning a field the value it already holds is a no-op."""
        if name in self.__dict__ and not _same(self.__dict__[name], value):
            raise FrozenInstanceError(
                f"cannot assign to field {name!r}: SANMConfig is immutable; build a new one, e.g. "
                f"SANMConfig.paper({name}=...) or dataclasses.replace(config, {name}=...)"
            )
        object.__setattr__(self, name, value)

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"SANMConfig.{name} must be one of {choices}, got {value!r}")
        for name in ("mu", "delta", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise ValueError(f"SANMConfig.{name} must be a number, got {value!r}")
        if not 0.0 <= self.mu <= 1.0:
            raise ValueError(f"SANMConfig.mu must be in [0, 1] (a fraction of the image), got {self.mu}")
        if not 0.0 < self.delta <= 1.0:
            raise ValueError(
                f"SANMConfig.delta must be in (0, 1] (aspect ~ U(delta, 1/delta)), got {self.delta}"
            )
        if self.beta < 0.0 or math.isinf(self.beta):
            raise ValueError(f"SANMConfig.beta must be a finite number >= 0, got {self.beta}")
        if not isinstance(self.validate, bool):
            raise ValueError(f"SANMConfig.validate must be True or False, got {self.validate!r}")

    @classmethod
    def paper(cls, **overrides: Any) -> "SANMConfig":
        """The equations of the paper (docs/method.md section 1): the library default."""
        return cls(**overrides)

    @classmethod
    def official(cls, **overrides: Any) -> "SANMConfig":
        """The official code's choices (docs/baselines.md 9.3-9.5): energy map, corner box, channel fill."""
        settings = dict(
            mu=0.2,  # unused by ratio='official'; kept at the paper value
            delta=0.8,  # U(0.8, 1.25) aspect in Train_cifar.py
            beta=0.02,  # 0.02 * (MSE_max + MSE_min) in Train_cifar.py
            activation="energy",
            ratio="official",
            box="corner",
            fill="channel",
            trough="separate_image",
            label_spread="others",
            fill_space="input",  # one U(0,1) constant per box and channel "in normalised units" (S6)
            decoder="linear",  # resnetc2d.py Decoder: three ConvTranspose2d, no BN, no activation
            extremes="uint8",  # attention_erase_map: np.uint8(np.floor(255 * min-max rescaled map)), argmax/argmin
        )
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SANMConfig":
        """Build from a plain mapping (e.g. a Hydra group), rejecting keys that are not fields.

        A key named 'preset' ('paper' or 'official') picks the starting point; the rest override it.
        """
        values = dict(values)
        preset = values.pop("preset", "paper")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SANMConfig keys {unknown}; valid keys are {sorted(known)}")
        if preset not in ("paper", "official"):
            raise ValueError(f"SANM preset must be 'paper' or 'official', got {preset!r}")
        return getattr(cls, preset)(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (str, float, bool values): `SANMConfig.from_mapping(c.to_dict()) == c`.

        The form to put in a config file, a run record or a checkpoint that must load anywhere.
        """
        return asdict(self)


def _same(old: Any, new: Any) -> bool:
    """Equal values of the same type (1 and 1.0 and True are not the same field value here)."""
    return type(old) is type(new) and old == new


# a checkpoint holding a SANMConfig (a LightningModule's hyper-parameters) loads with weights_only=True
torch.serialization.add_safe_globals([SANMConfig])
