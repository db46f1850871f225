"""X-Ray in the local twin, as AWS does it around a Lambda function.

Around each invocation Lambda gives the function a trace header (`_X_AMZN_TRACE_ID`: a new root
and the id of the function's segment), the SDK streams the function's subsegments over UDP to the
daemon at `AWS_XRAY_DAEMON_ADDRESS`, and Lambda itself sends the function's segment, with an
"Initialization" subsegment on a cold start. `Invocation` plays Lambda's part here.

`Collector` plays the daemon: it listens on 127.0.0.1 (UDP), and forwards what it receives to the
X-Ray API of the twin's moto server with PutTraceSegments, so that traces are read back with the
same GetTraceSummaries / BatchGetTraces calls as in AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

TRACE_HEADER_ENV = "_X_AMZN_TRACE_ID"
DAEMON_ADDRESS_ENV = "AWS_XRAY_DAEMON_ADDRESS"
# The aws_xray_sdk decides at import time that it runs in Lambda when this is set.
TASK_ROOT_ENV = "LAMBDA_TASK_ROOT"
FUNCTION_NAME_ENV = "AWS_LAMBDA_FUNCTION_NAME"
_DATAGRAM_HEADER = b'{"format": "json", "version": 1}\n'
MAX_DATAGRAM = 64 * 1024


def new_trace_id(now: float | None = None) -> str:
    """An X-Ray trace id: version 1, the epoch second in hex, 96 random bits."""
    return f"1-{int(now if now is not None else time.time()):08x}-{secrets.token_hex(12)}"


def new_segment_id() -> str:
    return secrets.token_hex(8)


def lambda_environment(function_name: str, daemon_address: str | None) -> dict[str, str]:
    """The variables a Lambda runtime has before any invocation (tracing only where a daemon is)."""
    env = {FUNCTION_NAME_ENV: function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           TASK_ROOT_ENV: os.getcwd()}
    if daemon_address:
        env[DAEMON_ADDRESS_ENV] = daemon_address
    return env


def send(address: str, document: dict[str, Any]) -> None:
    """One segment document to a daemon, as the SDK's UDP emitter sends it. Best effort, as UDP is."""
    host, _, port = address.rpartition(":")
    data = _DATAGRAM_HEADER + json.dumps(document, separators=(",", ":")).encode("utf-8")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(data, (host, int(port)))


class Invocation:
    """Lambda's side of tracing one invocation: sets the trace header for the function, then sends
    the function's segment (with the cold start's Initialization, if any) when it returns."""

    def __init__(self, function_name: str, daemon_address: str | None,
                 initialization: tuple[float, float] | None = None):
        self.function_name = function_name
        self.daemon_address = daemon_address
        self.initialization = initialization
        self.trace_id = new_trace_id()
        self.segment_id = new_segment_id()
        self.error = False
        self._start = 0.0

    @property
    def header(self) -> str:
        return f"Root={self.trace_id};Parent={self.segment_id};Sampled=1"

    def __enter__(self) -> Invocation:
        self._start = time.time()
        if self.daemon_address:
            os.environ[TRACE_HEADER_ENV] = self.header
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.daemon_address:
            return
        end = time.time()
        document: dict[str, Any] = {
            "name": self.function_name, "id": self.segment_id, "trace_id": self.trace_id,
            "start_time": self._start, "end_time": end, "origin": "AWS::Lambda::Function",
            "aws": {"function_name": self.function_name},
        }
        if exc_type is not None:
            document["fault"] = True
        elif self.error:
            document["error"] = True
        if self.initialization:
            init_start, init_end = self.initialization
            document["subsegments"] = [{"name": "Initialization", "id": new_segment_id(),
                                        "start_time": init_start, "end_time": init_end}]
        send(self.daemon_address, document)


class Collector:
    """A stand-in for the X-Ray daemon: UDP on 127.0.0.1, forwarding to an X-Ray API in batches."""

    def __init__(self, put_segments: Callable[[list[str]], Any], port: int = 0, flush_interval_s: float = 0.5,
                 batch: int = 50):
        self._put = put_segments
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", port))
        self._socket.settimeout(0.2)
        self._flush_interval_s = flush_interval_s
        self._batch = batch
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.received = 0
        self.forwarded = 0
        self.dropped = 0

    @property
    def address(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> Collector:
        for target, name in ((self._receive, "xray-receive"), (self._flush_loop, "xray-flush")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            header, _, body = data.partition(b"\n")
            try:
                json.loads(header)
                document = body.decode("utf-8")
                json.loads(document)
            except ValueError:
                self.dropped += 1
                continue
            with self._lock:
                self._pending.append(document)
                self.received += 1

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._batch):
            chunk = pending[start:start + self._batch]
            try:
                self._put(chunk)
                self.forwarded += len(chunk)
            except Exception:  # noqa: BLE001 - as the daemon does, drop what the API will not take
                self.dropped += len(chunk)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._flush_interval_s):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.flush()
        self._socket.close()
