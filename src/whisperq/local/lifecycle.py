"""What every child process of the twin shares: its log, and waiting for SIGTERM or for the twin to die."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time


def log_to(log_path: str | None) -> None:
    """Send this process's output to the twin's log file (if it has one) for the rest of its life."""
    if log_path:
        log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        sys.stdout = sys.stderr = log


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


def give_back_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim): after a job the engine's
    freed buffers (a batch's decoder caches, hundreds of MB) would otherwise stay resident in an idle
    worker. Returning them for every job costs milliseconds; lowering malloc's mmap threshold instead
    cost a quarter of the engine's speed (docs/performance.md)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process already runs with
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)
