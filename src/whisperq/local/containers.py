"""The API function's containers, as Lambda runs them behind API Gateway: one request at a time per
container, a new container (a cold start: a fresh process that imports the handler) when every
warm one is busy, up to the function's concurrency; idle containers are kept and reused.

A request that waits on its job (the OpenAI-compatible routes) holds one container, as in AWS, and
the status polls that arrive meanwhile get another."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from whisperq.local import xray
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.local.lifecycle import log_to

CONTAINER_START_TIMEOUT_S = 60.0


class Throttled(Exception):
    """Every container is busy and the function is at its concurrency limit."""


def container_main(conn: Connection, handler_path: str, function_name: str, timeout_s: int,
                   log_path: str | None) -> None:
    """Process target: import the handler (the cold start), say ready, then serve events until the
    front closes the pipe (or dies)."""
    log_to(log_path)
    module_name, _, attribute = handler_path.partition(":")
    init_start = time.time()
    handler = getattr(importlib.import_module(module_name), attribute)
    initialization: tuple[float, float] | None = (init_start, time.time())
    daemon_address = os.environ.get(xray.DAEMON_ADDRESS_ENV)
    conn.send(("ready", None))
    while True:
        try:
            event = conn.recv()
        except (EOFError, OSError):
            return
        context = LocalLambdaContext(function_name=function_name, timeout_s=timeout_s)
        try:
            with xray.Invocation(function_name, daemon_address, initialization) as invocation:
                result = handler(event, context)
                invocation.error = int(result.get("statusCode", 200)) >= 400
            conn.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 - the function failed: API Gateway answers 502
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        initialization = None


class Container:
    def __init__(self, ctx: Any, handler_path: str, function_name: str, timeout_s: int, log_path: str | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=container_main, args=(child, handler_path, function_name, timeout_s,
                                                                log_path), name=f"{function_name}-container",
                                   daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(CONTAINER_START_TIMEOUT_S):
            self.process.kill()
            raise RuntimeError(f"a {function_name} container did not start in {CONTAINER_START_TIMEOUT_S:.0f} s")
        self.conn.recv()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.conn.send(event)
        outcome, value = self.conn.recv()
        if outcome != "ok":
            raise RuntimeError(value)
        return dict(value)

    def stop(self) -> None:
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


class Containers:
    """A callable like a handler (event, context) -> result, that runs each event in a container."""

    def __init__(self, handler_path: str, function_name: str, limit: int = 4, timeout_s: int = 29,
                 log_path: str | None = None, throttle_wait_s: float = 5.0):
        self._ctx = multiprocessing.get_context("spawn")
        self._args = (handler_path, function_name, timeout_s, log_path)
        self.limit = limit
        self.throttle_wait_s = throttle_wait_s
        self._idle: list[Container] = []
        self._all: list[Container] = []
        self._starting = 0  # containers being started: they count against the limit
        self._cond = threading.Condition()

    # Invocations are traced and timed inside the containers, not by the front.
    runs_invocations = True

    def warm(self, count: int = 1) -> Containers:
        """Provisioned concurrency: start one container now and `count - 1` more in the background,
        so that neither the first request nor the first burst waits for a cold start (each is a
        process that imports the handler: about a second of CPU, which a burst of uploads would
        otherwise take from the workers)."""
        self._release(self._acquire())

        def more() -> None:
            for _ in range(min(count, self.limit) - 1):
                with self._cond:
                    if len(self._all) + self._starting >= self.limit:
                        return
                    self._starting += 1
                try:
                    self._release(self._start())
                except RuntimeError:
                    return  # it did not start: requests start their own, as before

        if count > 1:
            threading.Thread(target=more, name="provisioned-containers", daemon=True).start()
        return self

    def _acquire(self) -> Container:
        deadline = time.monotonic() + self.throttle_wait_s
        with self._cond:
            while not self._idle and len(self._all) + self._starting >= self.limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Throttled(f"all {self.limit} containers of the function are busy")
                self._cond.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._starting += 1
        return self._start()

    def _start(self) -> Container:
        """A cold start, outside the lock, of a container already counted in `_starting`."""
        container = None
        try:
            container = Container(self._ctx, *self._args)
            return container
        finally:
            with self._cond:
                self._starting -= 1
                if container is not None:
                    self._all.append(container)
                self._cond.notify()

    def _release(self, container: Container) -> None:
        with self._cond:
            self._idle.append(container)
            self._cond.notify()

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        container = self._acquire()
        try:
            result = container.invoke(event)
        except (EOFError, OSError):
            # The container died: drop it, as Lambda replaces a failed runtime.
            with self._cond:
                self._all.remove(container)
                self._cond.notify()
            container.stop()
            raise
        except Exception:
            self._release(container)  # the function raised; its container lives on
            raise
        self._release(container)
        return result

    def stop(self) -> None:
        with self._cond:
            containers, self._all, self._idle = self._all, [], []
        for container in containers:
            container.stop()
