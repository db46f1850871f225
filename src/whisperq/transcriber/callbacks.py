"""Completion callbacks, sent without holding a transcriber.

A job that ends with a `callbackUrl` puts one message on the callbacks queue (`enqueue`: its job id),
and the worker goes on with the next job. The sender (`handler`: a Lambda function on that queue, or
threads of the twin) POSTs the job's final state, signed with HMAC-SHA256 over "<timestamp>.<body>",
through the guarded way out (transcriber/egress.py): one attempt per delivery, ATTEMPT_DEADLINE_S for
the whole exchange, its outcome on the job (`callbackStatus`). A failed attempt comes back after a
backoff, MAX_ATTEMPTS in all; a URL that leads to a private address is refused and not tried again. A
receiver that fails never changes the job's outcome."""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.queues import Queue
from whisperq.config import Settings
from whisperq.core.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from whisperq.core.errors import JobNotFound, WhisperqError
from whisperq.core.jobs import Job
from whisperq.tracing import Log
from whisperq.transcriber.context import Metrics
from whisperq.transcriber.egress import EgressRefused, GuardedClient

MAX_ATTEMPTS = 4
ATTEMPT_DEADLINE_S = 10.0
QUEUED = "queued"
FINAL_OUTCOMES = ("delivered", "refused", "failed", "not sent")


class CallbackFailed(WhisperqError):
    """One attempt did not deliver: the receiver answered an error, or could not be reached in time."""


def payload_of(job: Job) -> dict[str, Any]:
    return {
        "jobId": job.job_id, "status": job.status.value, "filename": job.filename,
        "createdAt": job.created_at, "updatedAt": job.updated_at, "attempts": job.attempts,
        "error": job.error, "transcriptKeys": dict(job.transcript_keys),
        "audioDurationS": job.run.audio_duration_s, "language": job.run.language,
    }


def enqueue(job: Job, settings: Settings, queue: Callable[[], Queue], jobs: JobsTable, log: Log) -> None:
    """Hand a final job's callback to the sender (if it has one); never raises: the job's outcome stands."""
    if not job.callback_url:
        return
    try:
        if not settings.callback_secret:
            jobs.set_callback_status(job.job_id, "not sent: no callback signing secret is configured "
                                                 "(WHISPERQ_CALLBACK_SECRET)")
            return
        # "queued" first: a sender that answers at once must not have its outcome overwritten.
        jobs.set_callback_status(job.job_id, QUEUED)
        queue().send(json.dumps({"jobId": job.job_id}))
    except WhisperqError as exc:
        log.warning("could not queue the callback", extra={"job_id": job.job_id, "error": str(exc)})
        with contextlib.suppress(WhisperqError):
            jobs.set_callback_status(job.job_id, f"not sent: it could not be queued ({exc.message})")


def deliver(client: GuardedClient, url: str, payload: dict[str, Any], secret: str,
            deadline_s: float = ATTEMPT_DEADLINE_S) -> str:
    """One signed POST; "delivered (HTTP n)", or CallbackFailed / EgressRefused / EgressFailed."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
               SIGNATURE_HEADER: sign(secret, timestamp, body), "User-Agent": "whisperq-callback"}
    reply = client.request("POST", url, body, headers, deadline_s=deadline_s, max_bytes=4096)
    if reply.status >= 300:
        raise CallbackFailed(f"HTTP {reply.status}")
    return f"delivered (HTTP {reply.status})"


class RetryLater(Exception):
    """This delivery's attempt failed and another is due: the message comes back after a backoff."""


class Sender:
    """Sends one queued callback per delivery (see the module docstring)."""

    def __init__(self, settings: Settings, jobs: JobsTable, client: GuardedClient, log: Log,
                 metrics: Metrics | None = None, rng: random.Random | None = None):
        self.settings, self.jobs, self.client, self.log = settings, jobs, client, log
        self.metrics = metrics
        self.rng = rng or random.Random()

    def send(self, body: str, receive_count: int) -> str:
        """The outcome recorded on the job; RetryLater when another attempt is due."""
        try:
            job = self.jobs.get(json.loads(body)["jobId"])
        except (ValueError, KeyError, TypeError):
            return "ignored: not a callback message"
        except JobNotFound:
            return "ignored: no such job"
        if not job.callback_url or (job.callback_status or "").startswith(FINAL_OUTCOMES):
            return "skipped"  # a copy of a message whose callback already ended
        if receive_count > MAX_ATTEMPTS:  # an attempt that outlived its function: no more of them
            outcome = f"failed after {MAX_ATTEMPTS} attempts: the last did not end in time"
            self.jobs.set_callback_status(job.job_id, outcome)
            return outcome
        try:
            outcome = deliver(self.client, job.callback_url, payload_of(job), self.settings.callback_secret)
        except EgressRefused as exc:
            outcome = f"refused: {exc.message}"
        except WhisperqError as exc:
            if receive_count < MAX_ATTEMPTS:
                self.jobs.set_callback_status(job.job_id, f"retrying (attempt {receive_count} of {MAX_ATTEMPTS} "
                                                          f"failed: {exc.message})")
                raise RetryLater(exc.message) from exc
            outcome = f"failed after {MAX_ATTEMPTS} attempts: {exc.message}"
        if not outcome.startswith("delivered"):
            self.log.warning("callback not delivered", extra={"job_id": job.job_id, "error": outcome})
            if self.metrics is not None:
                self.metrics.add_metric("CallbacksFailed", "Count", 1)
        self.jobs.set_callback_status(job.job_id, outcome)
        return outcome

    def backoff_s(self, receive_count: int) -> int:
        """How long a failed attempt's message stays hidden: 2, 4, 8 s... with jitter."""
        return int(2 ** receive_count * (0.5 + self.rng.random()))


# --- the Lambda function (and the twin's sender threads) ------------------------------------------
logger = Logger(service="whisperq-callbacks")
_handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None


def build(settings: Settings, clients: Any, log: Log = logger) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A handler of the callbacks queue's batches: each record one attempt, a failed one hidden for its
    backoff and reported failed (it comes back), the others acknowledged."""
    queues: dict[str, Queue] = {}

    def queue(arn: str) -> Queue:
        if arn not in queues:
            queues[arn] = Queue.by_arn(clients, arn)
        return queues[arn]

    sender = Sender(settings, JobsTable(clients, settings.table),
                    GuardedClient(allow_private=settings.allow_private_callbacks), log)

    def record_handler(record: SQSRecord) -> str:
        count = int(record.attributes.approximate_receive_count)
        try:
            return sender.send(record.body, count)
        except RetryLater:
            queue(record.event_source_arn).change_visibility_by_handle(record.receipt_handle,
                                                                                 sender.backoff_s(count))
            raise

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                             context=context))

    return handle


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda function on the callbacks queue (infra/template.yaml, CallbacksFunction)."""
    global _handler
    if _handler is None:
        from whisperq.aws.clients import Clients

        settings = Settings.from_env()
        _handler = build(settings, Clients(settings))
    return _handler(event, context)
