"""Transcribing one uploaded object, safely under at-least-once delivery.

The job is the unit of idempotency (never the SQS message id). A worker takes a job by moving it
to PROCESSING with a fresh lease in one conditional write; only the lease holder may finish it.
A duplicate delivery finds the job COMPLETED, FAILED or leased, and is acknowledged without work.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote_plus

from whisperq.aws.blobs import Blobs
from whisperq.aws.jobs_table import JobsTable
from whisperq.config import Settings
from whisperq.core import writers
from whisperq.core.audio import AUDIO_CONTENT_TYPES
from whisperq.core.errors import (
    InjectedFault,
    InvalidRequest,
    InvalidTransition,
    JobNotFound,
    PermanentJobError,
    TransientError,
    WhisperqError,
)
from whisperq.core.jobs import Job, JobStatus, iso, utc_now
from whisperq.core.keys import job_id_from_audio_key, transcript_key
from whisperq.core.options import TranscribeOptions
from whisperq.core.transcript import Transcript
from whisperq.faults import Injector
from whisperq.tracing import stage
from whisperq.transcriber import audio, callbacks
from whisperq.transcriber.engines import Engine
from whisperq.transcriber.heartbeat import Heartbeat


class UnprocessableMessage(WhisperqError):
    """A queue message that is not an S3 event; it is failed so that it ends in the DLQ for a person."""

    code = "unprocessable_message"


@dataclass(frozen=True)
class Delivery:
    """What the queue tells us about one message: enough to reason about retries."""

    message_id: str
    receive_count: int
    sent_timestamp_ms: int | None
    receipt_handle: str | None = None
    queue_arn: str | None = None


class Metrics(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


class _NoMetrics:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        pass


# Extends a received message's visibility: (queue ARN, receipt handle, seconds).
ExtendVisibility = Callable[[str, str, int], None]


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str
    size_bytes: int | None
    event_name: str


def parse_s3_notification(body: str) -> list[ObjectEvent]:
    """The ObjectCreated records of an S3 notification body; [] for s3:TestEvent.

    Keys arrive URL-encoded (spaces as '+'), as in AWS; they are decoded here."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise UnprocessableMessage(f"message body is not JSON: {body[:200]!r}") from exc
    if not isinstance(payload, dict):
        raise UnprocessableMessage(f"message body is not an S3 event: {body[:200]!r}")
    if payload.get("Event") == "s3:TestEvent":
        return []
    records = payload.get("Records")
    if not isinstance(records, list):
        raise UnprocessableMessage(f"message body has no S3 Records: {body[:200]!r}")
    events = []
    for record in records:
        try:
            s3 = record["s3"]
            name = str(record.get("eventName", ""))
            key = unquote_plus(s3["object"]["key"])
            bucket = s3["bucket"]["name"]
            size = s3["object"].get("size")
        except (KeyError, TypeError) as exc:
            raise UnprocessableMessage(f"S3 record without bucket or key: {str(record)[:200]}") from exc
        if name.startswith("ObjectCreated"):
            events.append(ObjectEvent(bucket, key, int(size) if size is not None else None, name))
    return events


class LeaseStillHeld(TransientError):
    """A job's own message came back while an earlier attempt's lease is live: retry later."""


class Transcriber:
    """Turns S3 upload events into transcripts and job status changes."""

    def __init__(self, settings: Settings, jobs: JobsTable, blobs: Blobs, engine: Engine, logger: Any,
                 metrics: Metrics | None = None, extend_visibility: ExtendVisibility | None = None,
                 faults: Injector | None = None):
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
        self._retries = 0
        self._queue_wait_s: float | None = None

    def note_retry(self, what: str, error: BaseException, attempt: int) -> None:
        """Called by the adapters' retry policy before each retry of an AWS call."""
        self._retries += 1
        self.metrics.add_metric("Retries", "Count", 1)
        self.log.warning("retrying", extra={"call": what, "attempt": attempt, "error": str(error)})

    # --- entry point ---------------------------------------------------------------------
    def handle_message(self, body: str, delivery: Delivery) -> list[str]:
        """Handle one queue message; returns what happened to each object in it.

        Raises for anything that should be retried (or dead-lettered): the batch processor
        reports that record as failed."""
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
                    self._return_after(delivery, lease_left_s)
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

    def _return_after(self, delivery: Delivery, seconds: float) -> None:
        """Best effort: make the message visible again just after `seconds`."""
        if not (self.extend_visibility and delivery.receipt_handle and delivery.queue_arn):
            return
        try:
            self.extend_visibility(delivery.queue_arn, delivery.receipt_handle, min(43_200, int(seconds) + 1))
        except WhisperqError as exc:
            self.log.warning("could not delay the message", extra={"error": str(exc)})

    def _finish(self, job_id: str, lease: str, status: JobStatus, changes: dict[str, Any],
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
            return False
        if status.is_final:
            self._callback(job)
        return True

    def _callback(self, job: Job) -> None:
        """Tell the job's callback URL, if it has one; failures are recorded, never raised."""
        url = job.details.get("callbackUrl")
        if not url:
            return
        if not self.settings.callback_secret:
            outcome = "not sent: no callback signing secret is configured (WHISPERQ_CALLBACK_SECRET)"
        else:
            payload = {
                "jobId": job.job_id, "status": job.status.value, "filename": job.filename,
                "createdAt": job.created_at, "updatedAt": job.updated_at, "attempts": job.attempts,
                "error": job.error, "transcriptKeys": job.details.get("transcriptKeys", {}),
                "audioDurationS": job.details.get("audioDurationS"), "language": job.details.get("language"),
            }
            try:
                outcome = callbacks.deliver(url, payload, self.settings.callback_secret,
                                            self.settings.allow_private_callbacks, sleep=self.callback_sleep)
            except Exception as exc:  # noqa: BLE001 - a failing receiver never changes the job's outcome
                outcome = f"failed: {type(exc).__name__}: {exc}"
                self.metrics.add_metric("CallbacksFailed", "Count", 1)
                self.log.warning("callback failed", extra={"callback_url": url, "error": outcome})
        try:
            self.jobs.set_fields(job.job_id, {"callbackStatus": outcome})
        except WhisperqError as exc:
            self.log.warning("could not record the callback outcome", extra={"error": str(exc)})

    def _heartbeat(self, job_id: str, lease: str, delivery: Delivery) -> Heartbeat:
        visibility_s = self.settings.queue.visibility_timeout_s

        def beat() -> None:
            if self.extend_visibility and delivery.receipt_handle and delivery.queue_arn:
                self.extend_visibility(delivery.queue_arn, delivery.receipt_handle, visibility_s)
            self.jobs.transition(
                job_id, JobStatus.PROCESSING, expected=[JobStatus.PROCESSING],
                changes={"leaseExpiresAt": time.time() + visibility_s},
                extra_condition=("#leaseId = :lease", {":lease": lease}),
            )

        # Beat at a third of the timeout, so two beats can fail before a redelivery.
        return Heartbeat(max(1.0, visibility_s / 3), beat, self.log)

    def _run(self, job: Job, event: ObjectEvent, delivery: Delivery, lease: str) -> str:
        job_id = job.job_id
        self._retries = 0
        try:
            options = TranscribeOptions.from_api(job.details.get("options"), self.engine.model_name)
            with self._heartbeat(job_id, lease, delivery):
                changes = self._transcribe(job_id, event, options)
        except (InvalidRequest, PermanentJobError) as exc:
            # Not transcribable however often we try (InvalidRequest: options stored at creation that
            # this worker's model cannot honour): FAILED with the reason, and acknowledged.
            self.log.warning("job failed permanently", extra={"job_id": job_id, "error": exc.message})
            with stage("status-update", jobId=job_id):
                self._finish(job_id, lease, JobStatus.FAILED, {"error": exc.message, "failedAt": iso(utc_now())})
            self.metrics.add_metric("JobsFailed", "Count", 1)
            return "failed"
        except Exception as exc:
            self._after_retryable(job_id, lease, delivery, exc)
            raise
        changes["retries"] = self._retries
        with stage("status-update", jobId=job_id):
            self._finish(job_id, lease, JobStatus.COMPLETED, changes, remove=("lastError", "error"))
        self.metrics.add_metric("JobsCompleted", "Count", 1)
        self.metrics.add_metric("AudioSeconds", "Seconds", changes["audioDurationS"])
        self.metrics.add_metric("TranscribeTime", "Seconds", changes["transcribeS"])
        self.metrics.add_metric("RealTimeFactor", "None", changes["realTimeFactor"])
        if self._queue_wait_s is not None:
            self.metrics.add_metric("QueueWait", "Seconds", self._queue_wait_s)
        self.log.info("job completed", extra={"job_id": job_id, "audio_s": changes["audioDurationS"],
                                              "rtf": changes["realTimeFactor"]})
        return "completed"

    def _after_retryable(self, job_id: str, lease: str, delivery: Delivery, exc: Exception) -> None:
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
                self._finish(job_id, lease, JobStatus.FAILED,
                             {"error": message, "lastError": reason, "failedAt": iso(utc_now()),
                              "deadLettered": True})
                self.metrics.add_metric("JobsFailed", "Count", 1)
            else:
                self._finish(job_id, lease, JobStatus.QUEUED, {"lastError": reason})
        except WhisperqError as bookkeeping_error:
            # The message still returns after its visibility timeout; the lease then expires.
            self.log.warning("could not record the failed attempt",
                             extra={"job_id": job_id, "error": str(bookkeeping_error)})

    # --- the work ------------------------------------------------------------------------
    def _transcribe(self, job_id: str, event: ObjectEvent, options: TranscribeOptions) -> dict[str, Any]:
        settings = self.settings
        if settings.fault_poison_key and settings.fault_poison_key in event.key:
            raise InjectedFault(f"injected poison fault: key contains {settings.fault_poison_key!r}")
        timings: dict[str, float] = {}
        info = self.blobs.head(event.key)
        if info is None:
            raise PermanentJobError(f"the uploaded audio {event.key} no longer exists (deleted after upload?)")
        if info.size_bytes == 0:
            raise PermanentJobError("the uploaded file is empty (0 bytes); upload the audio again with a new job")
        if info.size_bytes > settings.max_upload_bytes:
            raise PermanentJobError(
                f"the uploaded file is {info.size_bytes} bytes, over the limit of {settings.max_upload_bytes} bytes"
            )
        stored_type = info.content_type.split(";", 1)[0].strip().lower()
        if stored_type not in AUDIO_CONTENT_TYPES:
            # AWS enforces the type in the upload policy; the twin (moto) does not, so check here too.
            raise PermanentJobError(
                f"the upload was stored as {info.content_type or 'no content type'!r}, not an accepted audio type; "
                "upload with the Content-Type the job was created with"
            )
        display_name = event.key.rsplit("/", 1)[-1]
        notes = {"jobId": job_id, "engine": self.engine.name, "model": self.engine.model_name}
        with tempfile.TemporaryDirectory(prefix="whisperq-") as workdir:
            local_path = os.path.join(workdir, "audio")
            started = time.perf_counter()
            with stage("download", **notes):
                self.blobs.download(event.key, local_path)
            timings["downloadS"] = time.perf_counter() - started
            started = time.perf_counter()
            with stage("decode", **notes):
                samples = audio.decode(local_path, display_name)
        timings["decodeS"] = time.perf_counter() - started
        duration_s = samples.size / audio.SAMPLE_RATE
        if duration_s > settings.max_audio_duration_s:
            raise PermanentJobError(
                f"the audio lasts {duration_s:.0f} s, over the limit of {settings.max_audio_duration_s} s; "
                "split it into shorter files"
            )
        started = time.perf_counter()
        with stage("transcribe", **notes):
            if is_silent(samples):
                # Whisper invents words for pure silence ("you", "Thank you."): say nothing instead.
                transcript = Transcript((), options.language or "en", 0.0, duration_s, self.engine.name,
                                        self.engine.model_name, {"silent": True})
            else:
                transcript = self.engine.transcribe(samples, options)
            if self.faults is not None:
                time.sleep(self.faults.extra_delay_s())
        timings["transcribeS"] = time.perf_counter() - started
        transcribed_at = iso(utc_now())
        if self.faults is not None:
            self.faults.maybe_crash()  # mid-batch: the job taken, its transcript not yet written
        started = time.perf_counter()
        outputs: dict[str, str] = {}
        with stage("upload", **notes):
            for fmt, text in writers.render_all(transcript).items():
                key = transcript_key(job_id, fmt)
                self.blobs.put_text(key, text, writers.CONTENT_TYPES[fmt])
                outputs[fmt] = key
        timings["uploadS"] = time.perf_counter() - started
        cold, self._cold = self._cold, False
        return {
            **{name: round(value, 4) for name, value in timings.items()},
            "audioDurationS": round(duration_s, 3),
            "realTimeFactor": round(duration_s / timings["transcribeS"], 2) if timings["transcribeS"] else 0.0,
            "engine": self.engine.name,
            "model": self.engine.model_name,
            "modelLoadS": round(self.engine.load_time_s, 4),
            "coldStart": cold,
            "language": transcript.language,
            "languageProbability": transcript.language_probability,
            "transcriptKeys": outputs,
            "modelReadyAt": self.model_ready_at,
            "transcribedAt": transcribed_at,
            "completedAt": iso(utc_now()),
        }


SILENCE_PEAK = 10 ** (-60 / 20)  # -60 dBFS: below any recording's noise floor


def is_silent(samples: Any) -> bool:
    """Digital silence: no sample reaches -60 dBFS."""
    return bool(samples.size) and max(float(samples.max()), -float(samples.min())) < SILENCE_PEAK


def iso_from_ms(epoch_ms: int) -> str:
    return iso(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))
