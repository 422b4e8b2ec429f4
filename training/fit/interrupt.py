"""Spot safety: SIGTERM only raises a flag, the loop writes a checkpoint at the next step and exits 143.

AWS Batch and SageMaker send SIGTERM before they take a Spot instance back (a two-minute warning, then
a grace period of seconds); a retry of the job resumes from the checkpoint.
"""

import signal
import threading
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
