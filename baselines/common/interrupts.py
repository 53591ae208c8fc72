"""Ctrl-C and SIGTERM stop a run the same way (docs/runs.md 4.4).

SLURM and most schedulers send SIGTERM at a time limit or a pre-emption, and SIGKILL after a grace period
(SLURM's KillWait, 30 s by default); torchrun's agent passes a SIGTERM on to every rank. Python's default action
for SIGTERM is to die at once, which leaves status.json at `running` and says nothing. During a run,
`sigterm_as_interrupt` makes SIGTERM raise `Terminated`, a KeyboardInterrupt, so every place that handles Ctrl-C
handles it too: the epoch in progress is dropped, the last checkpoint stays, status.json says `interrupted`,
and the command line says how to continue and exits 128 + 15 = 143 (Ctrl-C: 128 + 2 = 130), as schedulers expect.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["Terminated", "exit_code", "interrupts_deferred", "signal_name", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run, raised where Ctrl-C would raise KeyboardInterrupt."""


def exit_code(interrupt: BaseException) -> int:
    """128 + the signal's number, as a shell reports a process that the signal ended."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def signal_name(interrupt: BaseException) -> str:
    """SIGTERM or SIGINT: which signal raised `interrupt`, for status.json and the last line."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, the first SIGTERM raises `Terminated`; the previous handler is restored afterwards.

    Later SIGTERMs are ignored: a scheduler signals every process of a job and torchrun signals its ranks again,
    and a second one must not cut the first one's clean-up short (SIGKILL follows anyway). Only a SIGTERM left
    at its default action is taken over, and only in the main thread (Python allows no other): a handler another
    program installed stays, such as submitit's, which ignores SIGTERM and requeues on its own signal (USR2)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    received: list[int] = []

    def terminate(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A Ctrl-C or SIGTERM inside the block is held back and delivered, to the handler it would have met, when
    the block ends (the engine writes its checkpoint inside one, so the file and the epoch count agree).

    A Python-level handler rather than a blocked signal mask: a process-directed signal that the main thread
    blocks is delivered to whichever other thread does not (torch's, tensorboard's), and one was seen to be lost
    that way under load. Only the main thread may install handlers; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda received, frame: pending.append(received)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    for signum in dict.fromkeys(pending):  # once each, in the order they came
        signal.raise_signal(signum)  # its handler runs before this returns (raising KeyboardInterrupt / Terminated)
