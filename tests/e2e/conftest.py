"""End-to-end fixtures: the real twin (`whisperq local up` as its own process: moto server, API
front, worker processes with the real model), driven through the CLI and the HTTP API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whisperq.local import state

WHISPERQ = [sys.executable, "-m", "whisperq.cli.main"]

# Short timeouts so that the retry and dead-letter paths play out in seconds.
FAST_RECOVERY = {
    "WHISPERQ_QUEUE_VISIBILITY_TIMEOUT_S": "2",
    "WHISPERQ_QUEUE_MAX_RECEIVE_COUNT": "2",
    "WHISPERQ_QUEUE_WAIT_TIME_S": "1",
    "WHISPERQ_QUEUE_MAX_CONCURRENCY": "2",
    "WHISPERQ_FAULT_POISON_KEY": "poison",
}


def run_cli(state_dir: Path, *args: str, timeout_s: float = 120, env: dict | None = None):
    return subprocess.run(
        [*WHISPERQ, "--state-dir", str(state_dir), *args], capture_output=True, text=True, timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )


def start_twin(state_dir: Path, extra_env: dict | None = None, timeout_s: float = 120, args: tuple[str, ...] = ()):
    env = {**os.environ, **FAST_RECOVERY, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
    state_dir.mkdir(parents=True, exist_ok=True)
    output = open(state_dir / "terminal.txt", "w")  # noqa: SIM115 - a file, not a pipe nobody reads
    process = subprocess.Popen(
        [*WHISPERQ, "--state-dir", str(state_dir), "local", "up", *args], stdout=output,
        stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = state.read_state(state_dir)
        if running and running["pid"] == process.pid:
            return process, running
        if process.poll() is not None:
            raise AssertionError(f"twin exited with {process.returncode}: {(state_dir / 'terminal.txt').read_text()}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError("twin did not start in time")


def stop_twin(process: subprocess.Popen, timeout_s: float = 60) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout_s)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("twin-state")
    process, running = start_twin(state_dir)
    yield state_dir, running
    stop_twin(process)
