"""What every child process of the twin does once it serves: wait for SIGTERM, or for the twin to die."""

from __future__ import annotations

import os
import signal
import time


def wait_until_stopped(parent_pid: int, poll_s: float = 0.2) -> None:
    """Return on SIGTERM, or when `parent_pid` is no longer our parent (the twin was killed), so that a
    killed twin never leaves a child holding a port."""
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    while not stop and os.getppid() == parent_pid:
        time.sleep(poll_s)
