"""Ctrl-C and SIGTERM during a run: which handler is installed when, what is held back, what is raised.

The end-to-end checks (a real signal to `python -m baselines.ce`, to torchrun, and submitit's requeue) are in
test_cli.py and test_distributed.py."""

import os
import signal
import threading

import pytest

from baselines.common.interrupts import Terminated, exit_code, interrupts_deferred, sigterm_as_interrupt


def test_sigterm_raises_terminated_once_and_the_default_comes_back():
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with sigterm_as_interrupt():
        with pytest.raises(KeyboardInterrupt) as info:  # Terminated is one: every Ctrl-C path handles it
            os.kill(os.getpid(), signal.SIGTERM)
        assert type(info.value) is Terminated
        os.kill(os.getpid(), signal.SIGTERM)  # a second one is ignored: the first one's clean-up goes on
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert exit_code(Terminated()) == 143 and exit_code(KeyboardInterrupt()) == 130


def test_a_sigterm_handler_installed_by_someone_else_is_left_alone():
    """submitit ignores SIGTERM in its jobs and requeues on USR2: taking SIGTERM over would stop a pre-empted job
    instead of requeueing it."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_nothing_is_installed():
    errors = []

    def body():
        try:
            with sigterm_as_interrupt(), interrupts_deferred():
                pass
        except Exception as error:  # signal.signal raises ValueError outside the main thread
            errors.append(error)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert errors == [] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("signum,raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_while_the_checkpoint_is_written_is_raised_after_it(signum, raised):
    """The engine writes each checkpoint inside `interrupts_deferred`: a Ctrl-C or SIGTERM there must neither cut
    the write short nor be lost (a blocked signal mask lost one under load, delivered to another thread)."""
    before = signal.getsignal(signal.SIGINT)
    written = []
    with sigterm_as_interrupt():
        with pytest.raises(raised):
            with interrupts_deferred():
                os.kill(os.getpid(), signum)
                written.append("checkpoint")  # still reached: the interrupt waits for the block's end
    assert written == ["checkpoint"] and signal.getsignal(signal.SIGINT) is before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with interrupts_deferred():  # no signal: nothing raised
        pass


def test_an_ignored_ctrl_c_stays_ignored_in_the_deferred_block():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
