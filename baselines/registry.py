"""Every method by name (kept out of baselines/__init__ so `python -m baselines.<name>` imports it once)."""

from baselines.ce import CE
from baselines.common.engine import Method

BASELINES: dict[str, type[Method]] = {"ce": CE}
