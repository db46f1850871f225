"""The callbacks' sender on the twin (AWS: CallbacksFunction on the callbacks queue): pollers in threads
of the twin's own process, CALLBACK_SENDERS at once, so that a slow receiver holds one sender, never a
transcriber."""

from __future__ import annotations

import logging
import os
import threading
from typing import IO

from whisperq.aws.clients import Clients
from whisperq.aws.provision import Resources
from whisperq.aws.queues import Queue
from whisperq.config import Settings
from whisperq.local import esm
from whisperq.transcriber import callbacks

CALLBACKS_FUNCTION = "whisperq-callbacks"
CALLBACK_SENDERS = 4  # the callbacks' sender's concurrency on the twin (AWS: the function's reserved concurrency)


class CallbackSenders:
    def __init__(self, settings: Settings, clients: Clients, resources: Resources, log: logging.Logger):
        self.settings = settings
        self.clients = clients
        self.resources = resources
        self.log = log
        self._running: list[tuple[esm.Poller, threading.Thread]] = []
        self._log_file: IO[str] | None = None

    def start(self, log_path: str | None) -> None:
        handle = callbacks.build(self.settings, self.clients, self.log)
        log = self._log_file = open(log_path or os.devnull, "a", encoding="utf-8")  # noqa: SIM115
        queue = Queue(self.clients, self.resources.callbacks_queue_url)
        for index in range(CALLBACK_SENDERS):
            poller = esm.Poller(queue, self.resources.callbacks_queue_arn, self.settings.region, 1, 0, 1, handle,
                                CALLBACKS_FUNCTION, 30, log, in_process=True)
            thread = threading.Thread(target=poller.run, name=f"twin-callbacks-{index}", daemon=True)
            thread.start()
            self._running.append((poller, thread))

    def stop(self) -> None:
        for poller, _ in self._running:
            poller.stopping = True
        for _, thread in self._running:
            thread.join(timeout=15)
        alive = any(thread.is_alive() for _, thread in self._running)
        self._running = []
        if self._log_file is not None and not alive:  # one still in an attempt writes to it yet
            self._log_file.close()
            self._log_file = None
