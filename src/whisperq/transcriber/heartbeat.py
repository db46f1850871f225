"""Keeping a slow but healthy job from being redelivered: while it runs, a heartbeat extends the
message's visibility timeout (and the job's lease) before they run out."""

from __future__ import annotations

import threading
from collections.abc import Callable

from whisperq.tracing import Log


class Heartbeat:
    """Calls `beat` every `interval_s` seconds in a thread until the block ends."""

    def __init__(self, interval_s: float, beat: Callable[[], None], log: Log):
        self.interval_s = interval_s
        self._beat = beat
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._beat()
            except Exception as exc:  # noqa: BLE001 - a missed beat only risks a harmless duplicate
                self._log.warning("heartbeat failed", extra={"error": str(exc)})

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="whisperq-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
