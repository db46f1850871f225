"""moto in server mode, in a process of its own (its SQS is CPU-bound; it should not share a GIL)."""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection

from whisperq.local.lifecycle import log_to, wait_until_stopped


def serve(conn: Connection, parent_pid: int, log_path: str | None) -> None:
    """Process target: start moto on 127.0.0.1 (a free port), report the port, serve until told to
    stop or until the parent dies (so that a killed twin never leaves a server holding a port)."""
    log_to(log_path)
    import logging

    from moto.server import ThreadedMotoServer

    from whisperq.local import moto_patches

    print(moto_patches.apply(), flush=True)

    # One access-log line per AWS call drowns the workers' logs in the twin's log file.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(("ok", server.get_host_and_port()[1]))
    conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the twin decides when we stop
    wait_until_stopped(parent_pid)
    server.stop()
