"""How a run uses its device: numeric precision, memory format and compilation (trainer.precision,
trainer.channels_last, trainer.compile).

These change how fast a run trains, not what it trains, so a run may resume under other values (identity.py's
RESUMABLE_KEYS). SANM's map and box arithmetic disable autocast themselves and stay in fp32 whatever is chosen
here; losses are computed on `.float()` logits.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager, Optional

import torch

# the ResNets whose CPU backward crashes the process (segmentation fault) under channels_last below this first-stage
# width: measured with torch 2.14.1 (widths 2-7 crash, 8 and up run; cnn9 runs at 4); benchmarks/RESULTS.md
CHANNELS_LAST_CPU_MIN_WIDTH = {"preact_resnet18": 8, "resnet18": 8}
PRECISIONS = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_BACKENDS = ("inductor", "eager", "aot_eager", "cudagraphs")


def channels_last_crashes(name: str, width: int, device_type: str) -> bool:
    """Whether torch's backward crashes in channels_last for model `name` at `width` on this kind of device
    (CHANNELS_LAST_CPU_MIN_WIDTH)."""
    return device_type == "cpu" and width < CHANNELS_LAST_CPU_MIN_WIDTH.get(name, 0)


def resolve_precision(value: Any, device: torch.device) -> str:
    """'32', 'bf16' or 'fp16' for trainer.precision; `auto` is bf16 on a CUDA device that supports it, else 32."""
    text = str(value).lower()
    if text == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "32"
    text = {"fp32": "32", "float32": "32", "bfloat16": "bf16", "16": "fp16", "float16": "fp16"}.get(text, text)
    if text not in PRECISIONS:
        raise ValueError(f"trainer.precision must be auto, 32, bf16 or fp16, got {value!r}")
    if text == "fp16" and device.type not in ("cuda", "cpu"):
        raise ValueError(f"trainer.precision=fp16 needs a CUDA or CPU device, not {device}")
    return text


def resolve_compile(value: Any) -> Optional[str]:
    """The torch.compile backend trainer.compile asks for: false -> None, true -> inductor, or a backend name
    ('eager' checks the wiring through TorchDynamo without generating code)."""
    if value is False or value is None or str(value).lower() in ("false", "off", "none"):
        return None
    if value is True or str(value).lower() in ("true", "on"):
        return "inductor"
    if str(value) not in COMPILE_BACKENDS:
        raise ValueError(f"trainer.compile must be false, true or a backend ({', '.join(COMPILE_BACKENDS)}), "
                         f"got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Acceleration:
    """The resolved speed options of one run."""

    device: torch.device
    precision: str = "32"
    channels_last: bool = False
    compile_backend: Optional[str] = None

    @classmethod
    def from_trainer(cls, trainer: Any, device: torch.device) -> "Acceleration":
        if not isinstance(trainer.channels_last, bool):
            raise ValueError(f"trainer.channels_last must be true or false, got {trainer.channels_last!r}")
        return cls(device, resolve_precision(trainer.precision, device), trainer.channels_last,
                   resolve_compile(trainer.compile))

    def check_model(self, name: str, width: int) -> None:
        """Refuse, before any work, a network that channels_last would crash on this device: a segmentation
        fault ends a run without a message."""
        if self.channels_last and channels_last_crashes(name, width, self.device.type):
            least = CHANNELS_LAST_CPU_MIN_WIDTH[name]
            raise ValueError(f"trainer.channels_last=true with model={name} model.width={width} on a CPU: torch's "
                             f"CPU backward crashes (segmentation fault) in a channels_last convolution of this "
                             f"network below width {least} (measured with torch 2.14.1; you have "
                             f"{torch.__version__}); give model.width={least} or more, or trainer.channels_last=false")

    @property
    def dtype(self) -> Optional[torch.dtype]:
        return PRECISIONS[self.precision]

    def autocast(self) -> ContextManager:
        """Mixed precision for forwards (and the losses on them); a no-op at 32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> Optional[torch.amp.GradScaler]:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def place_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def place_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images in the networks' memory format (a no-op copy-free view when already so)."""
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def compile(self, module: torch.nn.Module) -> Any:
        """`module` compiled (same parameters, same state_dict keys) or as it is."""
        if self.compile_backend is None:
            return module
        return torch.compile(module, backend=self.compile_backend)

    def describe(self) -> str:
        parts = [f"precision {self.precision}"]
        if self.channels_last:
            parts.append("channels_last")
        if self.compile_backend:
            parts.append(f"torch.compile ({self.compile_backend})")
        return ", ".join(parts)


class _Forwards(torch.nn.Module):
    """What DDP and torch.compile wrap: the network's forward, or only its feature map (FeatureTap's first half,
    whose classifier half, `forward_head`, then runs on the network itself: DDP averages the gradients of every
    parameter that takes part in the backward, whichever call used it)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, features_only: bool = False) -> torch.Tensor:
        return self.model.forward_features(images) if features_only else self.model(images)


class RoutedModel:
    """`net.model` when DDP or torch.compile is on: calls and `forward_features` go through them, every other
    attribute (`forward_head`, `get_classifier`, `train`, `parameters`, ...) is the network's own.

    Forwards without gradient (evaluation, co-guessing, the clean forward that only places SANM's masks) skip
    DDP: they need no gradient averaging, and DDP would broadcast BN buffers in them, a collective that ranks
    evaluating different numbers of rows would not all join.
    """

    def __init__(self, module: torch.nn.Module, training_call: Any, plain_call: Any) -> None:
        self.__dict__.update(module=module, _training_call=training_call, _plain_call=plain_call)

    def _call(self, images: torch.Tensor, features_only: bool) -> torch.Tensor:
        call = self._training_call if torch.is_grad_enabled() else self._plain_call
        return call(images, features_only=features_only)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self._call(images, False)

    def __getattr__(self, name: str) -> Any:
        if name == "forward_features" and callable(getattr(self.module, name, None)):
            return lambda images: self._call(images, True)
        return getattr(self.module, name)

    def train(self, mode: bool = True) -> "RoutedModel":
        self.module.train(mode)
        return self

    def eval(self) -> "RoutedModel":
        self.module.eval()
        return self


def routed_model(module: torch.nn.Module, acceleration: Acceleration, world: Any, device: torch.device) -> Any:
    """`module` itself in one uncompiled process (the plain path, unchanged); else a RoutedModel over it."""
    if not world.active and acceleration.compile_backend is None:
        return module
    from .distributed import wrap

    forwards = _Forwards(module)
    plain = acceleration.compile(forwards)
    training = acceleration.compile(wrap(forwards, world, device)) if world.active else plain
    return RoutedModel(module, training, plain)
