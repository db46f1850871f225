"""Transcribing one uploaded object, safely under at-least-once delivery.

The job is the unit of idempotency (never the SQS message id). A worker takes a job by moving it
to PROCESSING with a fresh lease in one conditional write; only the lease holder may finish it.
A duplicate delivery finds the job COMPLETED, FAILED or leased, and is acknowledged without work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from whisperq.aws.blobs import Blobs
from whisperq.aws.jobs_table import JobsTable
from whisperq.config import Settings
from whisperq.core.errors import (
    InjectedFault,
    InvalidRequest,
    InvalidTransition,
    JobNotFound,
    PermanentJobError,
    TransientError,
    WhisperqError,
)
from whisperq.core.fanout import parse_chunk_message
from whisperq.core.jobs import Job, JobStatus, iso, utc_now
from whisperq.core.keys import job_id_from_audio_key
from whisperq.core.options import TranscribeOptions
from whisperq.faults import Injector
from whisperq.tracing import stage
from whisperq.transcriber import callbacks, work
from whisperq.transcriber.engines import Engine
from whisperq.transcriber.heartbeat import Heartbeat
from whisperq.transcriber.messages import (
    Delivery,
    LeaseLost,
    ObjectEvent,
    UnprocessableMessage,
    iso_from_ms,
    parse_s3_notification,
)

__all__ = ["Delivery", "ObjectEvent", "Transcriber", "UnprocessableMessage", "parse_s3_notification"]


class Metrics(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


class _NoMetrics:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        pass


# Extends a received message's visibility: (queue ARN, receipt handle, seconds).
ExtendVisibility = Callable[[str, str, int], None]
# Sends message bodies to the queue a delivery came from: (queue ARN, bodies).
SendMessages = Callable[[str, list[str]], None]


class LeaseStillHeld(TransientError):
    """A job's own message came back while an earlier attempt's lease is live: retry later."""


class Transcriber:
    """Turns S3 upload events into transcripts and job status changes."""

    def __init__(self, settings: Settings, jobs: JobsTable, blobs: Blobs, engine: Engine, logger: Any,
                 metrics: Metrics | None = None, extend_visibility: ExtendVisibility | None = None,
                 faults: Injector | None = None, send_messages: SendMessages | None = None,
                 backlog: Callable[[str], int] | None = None):
        from whisperq.transcriber.fanout import FanOut  # fan-out builds on this module

        self.settings = settings
        self.jobs = jobs
        self.blobs = blobs
        self.engine = engine
        self.log = logger
        self.metrics = metrics or _NoMetrics()
        self.extend_visibility = extend_visibility
        self.callback_sleep: Callable[[float], None] = time.sleep
        self._cold = True
        # When this worker's model was ready (the engine is loaded before the transcriber is built).
        self.model_ready_at = iso(utc_now())
        self.faults = faults  # chaos runs only (WHISPERQ_FAULTS)
        self.retries = 0  # AWS call retries during the current job
        self._queue_wait_s: float | None = None
        self.fanout = FanOut(self, send_messages, backlog)

    def note_retry(self, what: str, error: BaseException, attempt: int) -> None:
        """Called by the adapters' retry policy before each retry of an AWS call."""
        self.retries += 1
        self.metrics.add_metric("Retries", "Count", 1)
        self.log.warning("retrying", extra={"call": what, "attempt": attempt, "error": str(error)})

    # --- entry point ---------------------------------------------------------------------
    def handle_message(self, body: str, delivery: Delivery) -> list[str]:
        """Handle one queue message; returns what happened to each object in it.

        Raises for anything that should be retried (or dead-lettered): the batch processor
        reports that record as failed."""
        try:
            chunk = parse_chunk_message(body)
        except ValueError as exc:
            raise UnprocessableMessage(str(exc)) from exc
        if chunk is not None:
            return [self.fanout.handle_chunk(chunk, delivery)]
        outcomes = []
        for event in parse_s3_notification(body):
            outcomes.append(self.handle_object(event, delivery))
        return outcomes

    def mark_queued(self, body: str, delivery: Delivery) -> None:
        """Best effort: jobs whose audio arrived move UPLOADING -> QUEUED as soon as a batch holds them."""
        try:
            events = parse_s3_notification(body)
        except UnprocessableMessage:
            return
        for event in events:
            job_id = job_id_from_audio_key(event.key)
            if job_id is None:
                continue
            try:
                self.jobs.transition(
                    job_id, JobStatus.QUEUED, expected=[JobStatus.UPLOADING], changes=self._enqueue_fields(delivery)
                )
            except (InvalidTransition, JobNotFound):
                pass
            except WhisperqError as exc:
                self.log.warning("could not mark job queued", extra={"job_id": job_id, "error": str(exc)})

    def handle_object(self, event: ObjectEvent, delivery: Delivery) -> str:
        job_id = job_id_from_audio_key(event.key)
        # Every log line about this object carries its job id (and the message it came in).
        self.log.append_keys(job_id=job_id, message_id=delivery.message_id)
        try:
            return self._handle_object(job_id, event, delivery)
        finally:
            self.log.remove_keys(["job_id", "message_id"])

    def _handle_object(self, job_id: str | None, event: ObjectEvent, delivery: Delivery) -> str:
        if job_id is None:
            self.log.warning("ignoring an object outside audio/<jobId>/", extra={"key": event.key})
            return "ignored:foreign-key"
        try:
            job = self.jobs.get(job_id)
        except JobNotFound:
            self.log.warning("ignoring audio for an unknown job", extra={"job_id": job_id, "key": event.key})
            return "ignored:unknown-job"
        if job.audio_key != event.key:
            self.log.warning("ignoring an object that is not the job's upload", extra={"job_id": job_id})
            return "ignored:not-the-upload"
        if job.status.is_final:
            self.log.info("job already final; duplicate delivery acknowledged", extra={"job_id": job_id})
            return f"skipped:{job.status.value}"
        if job.details.get("chunksSentAt"):
            if job.details.get("chunksDone") == job.details.get("chunks") and job.status is not JobStatus.FAILED:
                # Every chunk done and nobody merged (a merge failed after the split finished it): merge.
                return self.fanout.merge(job, delivery)
            self.log.info("job was fanned out; its chunk messages carry it", extra={"job_id": job_id})
            return "skipped:fanned-out"
        lease = self._take(job, delivery)
        if lease is None:
            return "skipped:leased-elsewhere"
        return self._run(job, event, delivery, lease)

    # --- taking and finishing a job -------------------------------------------------------
    def _enqueue_fields(self, delivery: Delivery) -> dict[str, Any]:
        if delivery.sent_timestamp_ms is None:
            return {}
        return {"enqueuedAt": iso_from_ms(delivery.sent_timestamp_ms)}

    def _take(self, job: Job, delivery: Delivery) -> str | None:
        """Move the job to PROCESSING under a new lease; None when another worker holds it."""
        now = time.time()
        lease = str(uuid.uuid4())
        changes: dict[str, Any] = {
            "leaseId": lease,
            "leaseExpiresAt": now + self.settings.queue.visibility_timeout_s,
            "startedAt": iso(utc_now()),
            "receiveCount": delivery.receive_count,
            "leaseMessageId": delivery.message_id,
            **self._enqueue_fields(delivery),
        }
        self._queue_wait_s = None
        if delivery.sent_timestamp_ms is not None:
            self._queue_wait_s = round(max(0.0, now - delivery.sent_timestamp_ms / 1000), 3)
            changes["queueWaitS"] = self._queue_wait_s
        try:
            if job.status is JobStatus.PROCESSING:
                lease_left_s = float(job.details.get("leaseExpiresAt", 0)) - now
                if lease_left_s > 0:
                    if job.details.get("leaseMessageId") not in (None, delivery.message_id):
                        # Another copy of the event while the job runs: the holder's own message
                        # carries the job (and returns if the holder dies), so this one can go.
                        self.log.info("job is leased by another worker; acknowledging duplicate",
                                      extra={"job_id": job.job_id})
                        return None
                    # The lease holder's own message is back: the holder died, or could not extend
                    # the message's visibility. Acknowledging it would lose the job if the holder is
                    # dead, so hand it back to return when the lease has run out.
                    self.return_after(delivery, lease_left_s)
                    raise LeaseStillHeld(
                        f"job {job.job_id} is still leased by an earlier attempt for {lease_left_s:.1f} s; "
                        "its message will return when the lease runs out"
                    )
                self.jobs.transition(
                    job.job_id, JobStatus.PROCESSING, expected=[JobStatus.PROCESSING], changes=changes,
                    increment_attempts=True,
                    extra_condition=("#leaseId = :oldLease", {":oldLease": job.details.get("leaseId", "")}),
                )
            else:
                self.jobs.transition(
                    job.job_id, JobStatus.PROCESSING, expected=[JobStatus.UPLOADING, JobStatus.QUEUED],
                    changes=changes, increment_attempts=True,
                )
        except InvalidTransition:
            self.log.info("job was taken by another delivery; acknowledging", extra={"job_id": job.job_id})
            return None
        return lease

    def extend_message(self, delivery: Delivery, seconds: int) -> None:
        """Hide the delivered message for `seconds` more (the heartbeat of a long transcription)."""
        if self.extend_visibility and delivery.receipt_handle and delivery.queue_arn:
            self.extend_visibility(delivery.queue_arn, delivery.receipt_handle, seconds)

    def return_after(self, delivery: Delivery, seconds: float) -> None:
        """Best effort: make the message visible again just after `seconds`."""
        if not (self.extend_visibility and delivery.receipt_handle and delivery.queue_arn):
            return
        try:
            self.extend_visibility(delivery.queue_arn, delivery.receipt_handle, min(43_200, int(seconds) + 1))
        except WhisperqError as exc:
            self.log.warning("could not delay the message", extra={"error": str(exc)})

    def finish(self, job_id: str, lease: str, status: JobStatus, changes: dict[str, Any],
                remove: tuple[str, ...] = ()) -> bool:
        try:
            job = self.jobs.transition(
                job_id, status, expected=[JobStatus.PROCESSING], changes=changes,
                remove=("leaseId", "leaseExpiresAt", "leaseMessageId", *remove),
                extra_condition=("#leaseId = :lease", {":lease": lease}),
            )
        except InvalidTransition as exc:
            if exc.current == JobStatus.CANCELLED.value:
                # Cancelled while we worked: remove what we wrote after the API deleted the rest.
                self.log.info("job was cancelled while running; removing its transcripts")
                self.blobs.delete(list(changes.get("transcriptKeys", {}).values()))
                return False
            # Our lease was taken over (we were slower than the visibility timeout): the other
            # attempt owns the job now, and it writes the same transcript.
            self.log.warning("lost the job's lease; leaving it to the newer attempt",
                             extra={"job_id": job_id, "error": str(exc)})
            raise LeaseLost(f"job {job_id}: a newer attempt holds its lease; its message is left to it") from exc
        if status.is_final:
            self.callback(job)
        return True

    def callback(self, job: Job) -> None:
        """Tell the job's callback URL, if it has one; failures are recorded, never raised."""
        callbacks.notify(job, self.settings, self.jobs, self.metrics, self.log, self.callback_sleep)

    def heartbeat(self, job_id: str, lease: str, delivery: Delivery) -> Heartbeat:
        visibility_s = self.settings.queue.visibility_timeout_s

        def beat() -> None:
            self.extend_message(delivery, visibility_s)
            self.jobs.transition(
                job_id, JobStatus.PROCESSING, expected=[JobStatus.PROCESSING],
                changes={"leaseExpiresAt": time.time() + visibility_s},
                extra_condition=("#leaseId = :lease", {":lease": lease}),
            )

        # Beat at a third of the timeout, so two beats can fail before a redelivery.
        return Heartbeat(max(1.0, visibility_s / 3), beat, self.log)

    def _run(self, job: Job, event: ObjectEvent, delivery: Delivery, lease: str) -> str:
        job_id = job.job_id
        self.retries = 0
        try:
            options = TranscribeOptions.from_api(job.details.get("options"), self.engine.model_name)
            with self.heartbeat(job_id, lease, delivery):
                fetched = self._fetch(job_id, event)
                if self.fanout.wanted(job, fetched, delivery):
                    return self.fanout.split(job, lease, delivery, fetched)
                changes = self._transcribe(job_id, fetched, options)
        except (InvalidRequest, PermanentJobError) as exc:
            # Not transcribable however often we try (InvalidRequest: options stored at creation that
            # this worker's model cannot honour): FAILED with the reason, and acknowledged.
            self.log.warning("job failed permanently", extra={"job_id": job_id, "error": exc.message})
            with stage("status-update", jobId=job_id):
                self.finish(job_id, lease, JobStatus.FAILED, {"error": exc.message, "failedAt": iso(utc_now())})
            self.metrics.add_metric("JobsFailed", "Count", 1)
            return "failed"
        except Exception as exc:
            self.after_retryable(job_id, lease, delivery, exc)
            raise
        changes["retries"] = self.retries
        with stage("status-update", jobId=job_id):
            self.finish(job_id, lease, JobStatus.COMPLETED, changes, remove=("lastError", "error"))
        self.record_completion(job_id, changes)
        return "completed"

    def record_completion(self, job_id: str, changes: dict[str, Any]) -> None:
        """Metrics and the log line of a completed job."""
        self.metrics.add_metric("JobsCompleted", "Count", 1)
        self.metrics.add_metric("AudioSeconds", "Seconds", changes["audioDurationS"])
        self.metrics.add_metric("TranscribeTime", "Seconds", changes["transcribeS"])
        self.metrics.add_metric("RealTimeFactor", "None", changes["realTimeFactor"])
        if self._queue_wait_s is not None:
            self.metrics.add_metric("QueueWait", "Seconds", self._queue_wait_s)
        self.log.info("job completed", extra={"job_id": job_id, "audio_s": changes["audioDurationS"],
                                              "rtf": changes["realTimeFactor"]})

    def after_retryable(self, job_id: str, lease: str, delivery: Delivery, exc: Exception) -> None:
        """Release the job for the next delivery, or, on the last one, end it FAILED with the reason.

        Either way the caller re-raises, so SQS redelivers the message or dead-letters it."""
        reason = f"{type(exc).__name__}: {exc}"
        max_receives = self.settings.queue.max_receive_count
        self.metrics.add_metric("AttemptsFailed", "Count", 1)
        self.log.exception("attempt failed", extra={"job_id": job_id, "receive_count": delivery.receive_count})
        try:
            if delivery.receive_count >= max_receives:
                message = (
                    f"transcription failed on all {max_receives} attempts; last error: {reason}. "
                    "The upload's message was moved to the dead-letter queue, where an operator can inspect it"
                )
                self.finish(job_id, lease, JobStatus.FAILED,
                             {"error": message, "lastError": reason, "failedAt": iso(utc_now()),
                              "deadLettered": True})
                self.metrics.add_metric("JobsFailed", "Count", 1)
            else:
                self.finish(job_id, lease, JobStatus.QUEUED, {"lastError": reason})
        except WhisperqError as bookkeeping_error:
            # The message still returns after its visibility timeout; the lease then expires.
            self.log.warning("could not record the failed attempt",
                             extra={"job_id": job_id, "error": str(bookkeeping_error)})

    # --- the work ------------------------------------------------------------------------
    def notes(self, job_id: str) -> dict[str, Any]:
        """The annotations of this job's trace subsegments."""
        return {"jobId": job_id, "engine": self.engine.name, "model": self.engine.model_name}

    def _fetch(self, job_id: str, event: ObjectEvent) -> work.Fetched:
        settings = self.settings
        if settings.fault_poison_key and settings.fault_poison_key in event.key:
            raise InjectedFault(f"injected poison fault: key contains {settings.fault_poison_key!r}")
        work.check_upload(self.blobs, settings, event.key)
        fetched = work.fetch(self.blobs, event.key, self.notes(job_id))
        if fetched.duration_s > settings.max_audio_duration_s:
            raise PermanentJobError(
                f"the audio lasts {fetched.duration_s:.0f} s, over the limit of {settings.max_audio_duration_s} s; "
                "split it into shorter files"
            )
        return fetched

    def _transcribe(self, job_id: str, fetched: work.Fetched, options: TranscribeOptions) -> dict[str, Any]:
        notes = self.notes(job_id)
        timings = dict(fetched.timings)
        transcript, timings["transcribeS"] = work.transcribe(self.engine, fetched.samples, options, notes,
                                                             self.faults)
        transcribed_at = iso(utc_now())
        if self.faults is not None:
            self.faults.maybe_crash()  # mid-batch: the job taken, its transcript not yet written
        started = time.perf_counter()
        outputs = work.write_outputs(self.blobs, job_id, transcript, notes)
        timings["uploadS"] = time.perf_counter() - started
        return {
            **{name: round(value, 4) for name, value in timings.items()},
            **self.run_fields(fetched.duration_s, timings["transcribeS"]),
            "language": transcript.language,
            "languageProbability": transcript.language_probability,
            "transcriptKeys": outputs,
            "transcribedAt": transcribed_at,
            "completedAt": iso(utc_now()),
        }

    def run_fields(self, duration_s: float, transcribe_s: float) -> dict[str, Any]:
        """What a completed job records about the audio, the engine and this worker."""
        cold, self._cold = self._cold, False
        return {
            "audioDurationS": round(duration_s, 3),
            "realTimeFactor": round(duration_s / transcribe_s, 2) if transcribe_s else 0.0,
            "engine": self.engine.name,
            "model": self.engine.model_name,
            "modelLoadS": round(self.engine.load_time_s, 4),
            "coldStart": cold,
            "modelReadyAt": self.model_ready_at,
        }
