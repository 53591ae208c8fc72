"""Every method by name, found rather than listed: a module `baselines/<name>.py` whose Method subclass declares
`name = "<name>"` is a method (engine.Method). Adding one is its module, its conf/<name>.yaml and its tests;
the registry, `python -m baselines`, the registry-wide tests and examples/sweep.sh follow from here.
(Kept out of baselines/__init__ so `python -m baselines.<name>` imports its module once.)"""

from __future__ import annotations

import importlib
import pkgutil

import baselines
from baselines.common.engine import Method

NOT_METHODS = {"common", "conf", "registry", "report", "plot", "__main__"}  # the package's other modules


def _discover() -> dict[str, type[Method]]:
    found: dict[str, type[Method]] = {}
    for info in sorted(pkgutil.iter_modules(baselines.__path__), key=lambda m: m.name):
        if info.ispkg or info.name in NOT_METHODS:
            continue
        module = importlib.import_module(f"baselines.{info.name}")
        declared = [obj for obj in vars(module).values() if isinstance(obj, type) and issubclass(obj, Method)
                    and obj.__module__ == module.__name__ and obj.__dict__.get("name") == info.name]
        if len(declared) != 1:
            raise TypeError(f"baselines/{info.name}.py must declare one Method subclass with name = "
                            f"{info.name!r} (found {len(declared)}); a helper module belongs in baselines/common/")
        found[info.name] = declared[0]
    return found


METHODS = _discover()
# the noisy-label methods; PRETRAINING holds the label-free steps some of them start from (SimCLR for C2D)
BASELINES: dict[str, type[Method]] = {name: cls for name, cls in METHODS.items() if not cls.pretraining}
PRETRAINING: dict[str, type[Method]] = {name: cls for name, cls in METHODS.items() if cls.pretraining}
