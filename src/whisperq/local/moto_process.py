"""moto in server mode, in a process of its own (its SQS is CPU-bound; it should not share a GIL)."""

from __future__ import annotations

import os
import signal
import sys
import time
from multiprocessing.connection import Connection


def serve(conn: Connection, parent_pid: int, log_path: str | None) -> None:
    """Process target: start moto on 127.0.0.1 (a free port), report the port, serve until told to
    stop or until the parent dies (so that a killed twin never leaves a server holding a port)."""
    if log_path:
        log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        sys.stdout = sys.stderr = log
    import logging

    from moto.server import ThreadedMotoServer

    # One access-log line per AWS call drowns the workers' logs in the twin's log file.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port()[1])
    conn.close()
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the twin decides when we stop
    while not stop and os.getppid() == parent_pid:
        time.sleep(0.2)
    server.stop()
