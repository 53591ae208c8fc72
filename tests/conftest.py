"""Suite-wide settings: with pytest-xdist each worker keeps to one thread, so two workers on a 2-core machine do
not oversubscribe it (torch would start a thread per core in every worker and in every run it spawns)."""

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # the subprocesses the end-to-end tests start inherit it
    torch.set_num_threads(1)
