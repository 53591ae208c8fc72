"""Every method by name (kept out of baselines/__init__ so `python -m baselines.<name>` imports it once)."""

from baselines.c2d import C2D
from baselines.cdr import CDR
from baselines.ce import CE
from baselines.common.engine import Method
from baselines.coteaching import CoTeaching
from baselines.dividemix import DivideMix
from baselines.elr_plus import ELRPlus
from baselines.pretrain_simclr import PretrainSimCLR

# the noisy-label methods; PRETRAINING holds the label-free steps some of them start from
BASELINES: dict[str, type[Method]] = {"ce": CE, "dividemix": DivideMix, "c2d": C2D, "elr_plus": ELRPlus,
                                      "cdr": CDR, "coteaching": CoTeaching}
PRETRAINING: dict[str, type[Method]] = {"pretrain_simclr": PretrainSimCLR}
