"""Suite-wide settings: with pytest-xdist each worker keeps to one thread, so two workers on a 2-core machine do
not oversubscribe it (torch would start a thread per core in every worker and in every run it spawns)."""

import os
import signal

import torch

# A suite started in the background by a non-interactive shell (`bash .ci/run &`) inherits an ignored SIGINT, which
# the engine honours and the runs the tests spawn inherit: the Ctrl-C tests would see no Ctrl-C. They test one
# typed at a terminal, so the suite takes SIGINT as Python does by default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # the subprocesses the end-to-end tests start inherit it
    torch.set_num_threads(1)
