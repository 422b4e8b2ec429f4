"""Spot safety: SIGTERM only raises a flag, the loop writes a checkpoint at the next step and exits 143.

AWS Batch and SageMaker send SIGTERM before they take a Spot instance back (a two-minute warning, then
a grace period of seconds); a retry of the job resumes from the checkpoint. Outside the loop (reading
data, exporting) SIGTERM raises Terminated where the job is, as SIGINT raises KeyboardInterrupt, so
every cleanup runs (no staging folder is left) before the job exits 143 (SIGINT: 130).
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from training.cloud.contract import EXIT_INTERRUPTED as EXIT_INTERRUPTED  # the exit code that goes with Interrupted


class Interrupted(Exception):
    """SIGTERM arrived: a checkpoint at the exact position was written; rerun with --resume to continue."""


class SigtermFlag:
    """Installed for the duration of fit: SIGTERM only sets a flag, so the loop stops at a step boundary."""

    def __init__(self) -> None:
        self.raised = False
        self.installed = False
        self.previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.raised = True

    def __enter__(self) -> "SigtermFlag":
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)


class Terminated(BaseException):
    """SIGTERM arrived outside the training loop. A BaseException, like KeyboardInterrupt: no `except Exception`
    on the way (ours, torch's exporter's) may swallow it."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated("SIGTERM")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """For the duration, SIGTERM raises Terminated (the training loop's SigtermFlag takes over inside fit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (renames that must not stop half-way), then act as before.

    Handlers, not a signal mask: the kernel may hand a signal to any of torch's threads, which a mask on this
    thread does not cover, and Python runs every handler in the main thread anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)

    previous = {number: signal.signal(number, hold) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        if arrived:
            signal.raise_signal(arrived[0])  # now its own handler runs: KeyboardInterrupt, Terminated, the default
