"""An emulator of Lambda's SQS event source mapping: the poller that AWS runs for us.

Each worker process long-polls the queue, gathers a batch (batch size, batching window), builds
the SQS event Lambda would, calls the transcriber handler in-process, and deletes only the records
that did not fail. Failed records stay invisible until their visibility timeout ends, come back,
and after maxReceiveCount receives the queue's redrive policy moves them to the DLQ (SQS does
that, not us). Up to max_concurrency workers run, like ScalingConfig.MaximumConcurrency.

It holds the function to Lambda's time limit: an invocation that runs past the function timeout is
ended as Lambda ends it (the process dies with "Task timed out after N seconds", nothing of the batch
is deleted, its messages return after their visibility timeout, the twin starts a new worker), and
every invocation leaves Lambda's REPORT line (its duration and memory) in the twin's log.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
from multiprocessing.queues import Queue as ProcessQueue
from typing import Any

from whisperq.aws.queues import Message, Queue
from whisperq.local import xray
from whisperq.local.lifecycle import give_back_free_memory, log_to

# The exit status of a worker ended at its function timeout (as Lambda ends a runtime that overran).
TIMED_OUT_EXIT = 124


class _Stop(BaseException):
    """Raised inside a long poll when the worker is told to stop: it holds nothing yet. A
    BaseException, so that no `except Exception` on the way (botocore has some) swallows it."""


def lambda_record(message: Message, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the SQS event Lambda hands to a function."""
    attributes = {
        name: message.attributes[name]
        for name in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
                     "AWSTraceHeader", "MessageGroupId", "MessageDeduplicationId", "SequenceNumber")
        if name in message.attributes
    }
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in message.message_attributes.items()
    }
    return {
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_ids(response: Any, batch: list[Message]) -> set[str]:
    """The message ids a handler reported failed. As in Lambda, a malformed response (or an item
    identifier that is empty or unknown) fails the whole batch."""
    all_ids = {m.message_id for m in batch}
    if response is None:
        return set()
    if not isinstance(response, dict):
        return all_ids
    failures = response.get("batchItemFailures") or []
    ids = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in all_ids:
            return all_ids
        ids.add(identifier)
    return ids


class Poller:
    """One worker's loop: gather a batch, invoke, delete the successes."""

    def __init__(self, queue: Queue, queue_arn: str, region: str, batch_size: int, batching_window_s: int,
                 wait_time_s: int, handler: Any, function_name: str, timeout_s: int, log: Any,
                 in_process: bool = False):
        self.queue = queue
        self.queue_arn = queue_arn
        self.region = region
        self.batch_size = batch_size
        self.batching_window_s = batching_window_s
        self.wait_time_s = wait_time_s
        self.handler = handler
        self.function_name = function_name
        self.timeout_s = timeout_s
        self.log = log
        # A poller in a thread of the twin itself (the callbacks' sender), not in a worker process of its
        # own: an invocation past its timeout is logged, not ended by ending the process.
        self.in_process = in_process
        self.stopping = False
        self.polling = False
        # Where Lambda's X-Ray segments go (None: untraced), and the cold start's init, traced once.
        self.daemon_address = os.environ.get(xray.DAEMON_ADDRESS_ENV)
        self.initialization: tuple[float, float] | None = None

    def request_stop(self) -> None:
        self.stopping = True
        if self.polling:
            raise _Stop()

    def gather(self) -> list[Message]:
        """A batch: wait for a first message, then fill up to batch_size until the window ends."""
        batch: list[Message] = []
        try:
            self.polling = True
            if self.stopping:
                return batch
            batch.extend(self.queue.receive(self.batch_size, self.wait_time_s))
            deadline = time.monotonic() + self.batching_window_s
            while batch and len(batch) < self.batch_size and not self.stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                more = self.queue.receive(self.batch_size - len(batch), min(int(remaining) or 1, 20))
                batch.extend(more)
        except _Stop:
            self.release(batch)
            return []
        finally:
            self.polling = False
        if self.stopping and batch:
            self.release(batch)
            return []
        return batch

    def release(self, batch: list[Message]) -> None:
        """Give messages back at once (visibility 0) rather than after the visibility timeout."""
        for message in batch:
            # Best effort: if this fails the visibility timeout returns the message anyway.
            with contextlib.suppress(Exception):
                self.queue.change_visibility(message, 0)

    def invoke(self, batch: list[Message]) -> tuple[int, int]:
        """Call the function with one batch; returns (succeeded, failed)."""
        from whisperq.local.lambda_context import LocalLambdaContext

        event = {"Records": [lambda_record(m, self.queue_arn, self.region) for m in batch]}
        context = LocalLambdaContext(function_name=self.function_name, timeout_s=self.timeout_s,
                                     region=self.region)
        init, self.initialization = self.initialization, None
        started = time.monotonic()
        watchdog = threading.Timer(self.timeout_s, self._time_out, args=(context.aws_request_id,))
        watchdog.daemon = True
        watchdog.start()
        try:
            with xray.Invocation(self.function_name, self.daemon_address, init) as invocation:
                try:
                    response = self.handler(event, context)
                    failed = failed_ids(response, batch)
                except Exception:  # noqa: BLE001 - a function error fails the whole batch, as in Lambda
                    self.log.write(traceback.format_exc())
                    failed = {m.message_id for m in batch}
                invocation.error = bool(failed)
        finally:
            watchdog.cancel()
        self.report(context.aws_request_id, time.monotonic() - started, context.memory_limit_in_mb)
        succeeded = [m for m in batch if m.message_id not in failed]
        if succeeded:
            self.queue.delete(succeeded)
        give_back_free_memory()
        return len(succeeded), len(failed)

    def report(self, request_id: str, duration_s: float, memory_mb: int) -> None:
        """Lambda's REPORT line: how long the invocation ran and the most memory the worker used."""
        used_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # Linux: kilobytes
        self.log.write(f"REPORT RequestId: {request_id}\tDuration: {duration_s * 1000:.2f} ms\t"
                       f"Billed Duration: {math.ceil(duration_s * 1000)} ms\tMemory Size: {memory_mb} MB\t"
                       f"Max Memory Used: {used_mb} MB\n")
        self.log.flush()

    def _time_out(self, request_id: str) -> None:
        """The invocation ran past the function timeout: end the worker as Lambda ends the runtime. Nothing
        is cleaned up, nothing of the batch deleted; its messages return after their visibility timeout."""
        self.log.write(f"{request_id} Task timed out after {self.timeout_s:.2f} seconds\n")
        self.log.flush()
        if not self.in_process:
            os._exit(TIMED_OUT_EXIT)

    def run(self) -> None:
        while not self.stopping:
            try:
                batch = self.gather()
            except Exception as exc:  # noqa: BLE001 - the queue endpoint hiccuped: back off, poll again
                self.log.write(f"poll failed: {exc}\n")
                time.sleep(1)
                continue
            if batch:
                self.invoke(batch)


def worker_main(index: int, env: dict[str, str], queue_url: str, queue_arn: str, function_name: str,
                parent_pid: int, ready: ProcessQueue, log_path: str | None) -> None:
    """Process target of one emulated Lambda worker (one warm container)."""
    log_to(log_path)
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the twin decides when workers stop

    from whisperq.aws.clients import Clients
    from whisperq.config import Settings
    from whisperq.transcriber import handler as function

    settings = Settings.from_env()
    # Below the control plane (moto, the API, its front), as Lambda never competes with AWS's own.
    os.nice(settings.worker_nice)
    init_started = time.time()
    try:
        runtime = function.warm_up(settings)
    except Exception as exc:  # noqa: BLE001 - report why we cannot start, then exit
        ready.put((index, None, f"{type(exc).__name__}: {exc}"))
        raise
    config = settings.queue
    poller = Poller(
        Queue(Clients(settings), queue_url), queue_arn, settings.region, config.batch_size,
        config.max_batching_window_s, config.wait_time_s, function.handler, function_name,
        config.function_timeout_s, sys.stderr,
    )
    poller.initialization = (init_started, time.time())

    def on_sigterm(signum: int, frame: object) -> None:
        poller.request_stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    ready.put((index, runtime.engine.load_time_s, None))

    # Leave when the twin is gone too, so a killed twin leaves no orphan polling a dead endpoint.
    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, daemon=True).start()
    poller.run()
