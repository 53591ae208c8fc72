"""Any torchvision or timm classifier as a method's network: `model=torchvision model.arch=resnet50`,
`model=timm model.arch=<name>`, with `model.weights=<state dict file>` for pretrained weights.

Nothing is downloaded at run time: pretrained weights come from a file the user saved (e.g.
`torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V2").state_dict(), "r50.pt")` on a machine with
a network). The classifier is sized for the run's classes; weights of a classifier of another size (ImageNet's
1000) are left out and it starts fresh, as fine-tuning does. SANM reads the feature map and the classifier
weight through FeatureTap: timm models provide both (`forward_features`, `get_classifier`); torchvision ones
are read with hooks found on the first forward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn


def build_torchvision(arch: Optional[str], num_classes: int, weights: Optional[str] = None) -> nn.Module:
    import torchvision

    if not arch:
        raise ValueError("model=torchvision needs model.arch=<name>, e.g. model.arch=resnet50")
    available = torchvision.models.list_models(module=torchvision.models)
    if arch not in available:
        raise ValueError(f"model.arch={arch!r} is not a torchvision classification model; e.g. "
                         f"{', '.join(a for a in ('resnet18', 'resnet50', 'vgg19_bn', 'inception_v3') if a in available)}")
    kwargs = {"aux_logits": False, "init_weights": True} if arch == "inception_v3" else {}
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    return load_weights(model, weights, _last_linear(model)) if weights else model


def build_timm(arch: Optional[str], num_classes: int, weights: Optional[str] = None) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ValueError("model=timm needs the timm package: pip install -e \".[timm]\"") from None
    if not arch:
        raise ValueError("model=timm needs model.arch=<name>, e.g. model.arch=resnet50 (timm.list_models())")
    if not timm.is_model(arch):
        raise ValueError(f"model.arch={arch!r} is not a timm model (timm.list_models('{arch[:6]}*') lists similar names)")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    classifier = next(name for name, module in model.named_modules() if module is model.get_classifier())
    return load_weights(model, weights, classifier) if weights else model


def _last_linear(model: nn.Module) -> str:
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier, which SANM's class activation map needs")
    return names[-1]


def load_weights(model: nn.Module, path: str, classifier: str) -> nn.Module:
    """Load a state dict file into `model`; the `classifier`'s weights only when their shape fits."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"model.weights={path}: no such file; save a state dict there first, e.g. torch.save("
                         "torchvision.models.resnet50(weights='IMAGENET1K_V1').state_dict(), path) on a machine with a "
                         "network, or give another path (docs/baselines.md 2.4)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that is not a plain state dict, or a torn file
        raise ValueError(f"model.weights={path} is not a readable state dict ({error})") from None
    for key in ("state_dict", "model"):  # checkpoints that wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    own = model.state_dict()
    prefix = classifier + "."
    head = {k for k in state if k.startswith(prefix) and (k not in own or own[k].shape != state[k].shape)}
    result = model.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(prefix)]
    if missing or result.unexpected_keys:
        raise ValueError(f"model.weights={path} does not fit model.arch: missing {missing[:3]}, unexpected "
                         f"{result.unexpected_keys[:3]}")
    return model
