"""The small file through which a running twin tells other commands where it runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from whisperq import constants

STATE_FILE = "twin.json"


def state_dir(explicit: str | None = None) -> Path:
    """Where the twin keeps its state file and log: explicit, else $WHISPERQ_STATE_DIR, else ~/.whisperq."""
    raw = explicit or os.environ.get(constants.STATE_DIR) or os.path.join(os.path.expanduser("~"), ".whisperq")
    return Path(raw)


def pid_alive(pid: int) -> bool:
    """Whether a process runs with this pid (an exited one that nobody has reaped yet does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            # The state is the first field after the parenthesised command name; Z is a zombie.
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_state(directory: Path) -> dict[str, Any] | None:
    """The running twin's state, or None when none runs (a stale file is ignored)."""
    path = directory / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(state, dict) or not pid_alive(int(state.get("pid", 0))):
        return None
    return state


def write_state(directory: Path, state: dict[str, Any]) -> Path:
    """Write the state file readable by its owner only: it holds the twin's API key."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(state, indent=2))
    tmp.replace(path)
    return path


def remove_state(directory: Path, pid: int) -> None:
    """Remove the state file if it is ours."""
    path = directory / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    if isinstance(state, dict) and state.get("pid") == pid:
        path.unlink(missing_ok=True)
