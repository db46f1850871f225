"""The API front in a process of its own, as the API function is separate from the transcriber in
AWS (the function itself in containers, one request each at a time, as Lambda runs it): its logs and
metrics go to the twin's log file, and the twin's own terminal stays quiet."""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection

from whisperq.local.lifecycle import log_to, wait_until_stopped


def serve(conn: Connection, parent_pid: int, env: dict[str, str], api_keys: list[str], port: int,
          log_path: str | None, function_name: str = "whisperq-api") -> None:
    """Process target: serve the API handler on 127.0.0.1, report the URL, run until told to stop
    or until the twin dies."""
    log_to(log_path)
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the twin decides when we stop
    from whisperq.config import Settings
    from whisperq.local.containers import Containers
    from whisperq.local.front import ApiFront

    try:
        settings = Settings.from_env()
        containers = Containers("whisperq.api_handler.handler:handler", function_name, settings.api_concurrency,
                                log_path=log_path).warm(settings.api_provisioned)
    except Exception as exc:  # noqa: BLE001 - told to the twin, which refuses to start
        conn.send(("error", f"the API function cannot start: {type(exc).__name__}: {exc}"))
        return
    try:
        front = ApiFront(containers, port=port, function_name=function_name, api_keys=api_keys).start()
    except OSError as exc:
        containers.stop()
        conn.send(("error", f"cannot listen on 127.0.0.1:{port}: {exc}"))
        return
    conn.send(("ok", front.url))
    conn.close()
    wait_until_stopped(parent_pid)
    front.stop()
    containers.stop()
