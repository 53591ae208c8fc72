#!/usr/bin/env bash
# Baseline x noise x SANM: one Hydra multirun per method, each job in its own run directory
# (<output_root>/<method>/<dataset>/<noise>/<sanm>/seed<k>), then `python -m baselines.report`: mean ± std over
# the seeds and SANM's gain over its base method.
#
#   examples/sweep.sh +experiment=smoke                       # every method, tiny, on digits (minutes)
#   SEEDS=0,1,2 METHODS=ce examples/sweep.sh +experiment=smoke   # three seeds
#   METHODS="dividemix elr_plus" NOISES=sym_0.5,sym_0.8 examples/sweep.sh   # CIFAR-10, the paper's settings
#   LAUNCHER=joblib examples/sweep.sh ...                     # jobs in parallel here (pip install -e ".[sweeps]")
#   LAUNCHER=submitit_slurm examples/sweep.sh hydra.launcher.partition=gpu ...   # one SLURM job per run
#
# Extra arguments are Hydra overrides given to every job; re-running with resume=true continues each run.
set -euo pipefail

PYTHON=${PYTHON:-python}
METHODS=${METHODS:-$("$PYTHON" -m baselines --names)}  # default: every method the registry finds
NOISES=${NOISES:-"sym_0.5,asym_0.4"}
SANM=${SANM:-"off,on"}
SEEDS=${SEEDS:-0}
OUTPUT_ROOT=${OUTPUT_ROOT:-outputs/sweep}

for method in $METHODS; do
  "$PYTHON" -m "baselines.$method" -m "noise=$NOISES" "+sanm=$SANM" "seed=$SEEDS" "output_root=$OUTPUT_ROOT" \
    ${LAUNCHER:+"hydra/launcher=$LAUNCHER"} "$@"
done
"$PYTHON" -m baselines.report "$OUTPUT_ROOT"
