"""`python -m baselines`: the methods there are, or `python -m baselines <method> [overrides]` to run one."""

from __future__ import annotations

import importlib
import runpy
import sys

from baselines.registry import BASELINES, PRETRAINING

USAGE = "usage: python -m baselines.<method> [+sanm=on|official|off] [noise=sym_0.5] [key=value ...] (--help for its options)"


def summary_line(name: str) -> str:
    """The first line of the method module's docstring."""
    doc = importlib.import_module(f"baselines.{name}").__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def listing() -> str:
    methods = {**BASELINES, **PRETRAINING}
    width = max(map(len, methods))
    rows = [f"  {name:<{width}}  {summary_line(name)}" for name in methods]
    return "\n".join([USAGE, "methods:", *rows])


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(listing())
        return
    if argv[0] == "--names":  # the noisy-label methods, one per line, for scripts (examples/sweep.sh)
        print("\n".join(BASELINES))
        return
    name, rest = argv[0], argv[1:]
    if name not in {**BASELINES, **PRETRAINING}:
        print(listing(), file=sys.stderr)
        print(f"error: unknown method {name!r}; choose one of {', '.join({**BASELINES, **PRETRAINING})}",
              file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"baselines.{name}", *rest]
    runpy.run_module(f"baselines.{name}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
