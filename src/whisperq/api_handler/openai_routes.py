"""OpenAI-compatible audio routes on the ordinary job pipeline: the audio in the request is stored
where an upload would put it, its S3 event queues the job, a worker transcribes it, and the route
waits for the job (bounded below API Gateway's integration timeout) to answer in OpenAI's shapes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from whisperq.api_handler.service import JobService
from whisperq.aws.wait_slots import WaitSlots
from whisperq.core.audio import content_type_for
from whisperq.core.errors import WhisperqError
from whisperq.core.jobs import Job, JobStatus
from whisperq.core.keys import transcript_key
from whisperq.core.openai_compat import OpenAIRequestError, parse_request, render
from whisperq.core.transcript import Transcript

# The first seconds a read of the status alone every 25 ms (a short job answers soon after its end;
# reads cost $0.25 a million in DynamoDB on demand), later every 250 ms while a long job runs.
POLL_S = 0.025
RETRY_AFTER_S = 5  # what a 429 of too many waiting requests tells the client
SLOW_POLL_S = 0.25
FAST_POLLS_FOR_S = 3.0


class TooManyWaiting(WhisperqError):
    """The key already has as many requests waiting on these routes as it may."""

    status_code = 429
    code = "too_many_waiting"
    headers = {"Retry-After": str(RETRY_AFTER_S)}


class FileTooLarge(OpenAIRequestError):
    status_code = 413
    code = "file_too_large"


class JobNotDone(WhisperqError):
    """The job did not end within the route's wait; it keeps running and can be fetched by its id."""

    status_code = 408
    code = "job_pending"

    def __init__(self, job_id: str, status: JobStatus, waited_s: float, keyed: bool):
        super().__init__(f"job {job_id} is still {status.value} after {waited_s:.0f} s; it keeps running: "
                         f"fetch it with GET /jobs/{job_id} (or `whisperq wait {job_id}`), or send the "
                         f"request with an Idempotency-Key header so that a retry waits for the same job")
        # OpenAI's SDK retries a 408 unless told not to: a retry waits for the same job only when the
        # request named it with an Idempotency-Key; without one it would make a second job.
        self.headers = {"x-whisperq-job-id": job_id, "x-should-retry": "true" if keyed else "false"}


class JobUnsuccessful(WhisperqError):
    """The job ended FAILED or CANCELLED: its reason, with its id."""

    status_code = 400
    code = "transcription_failed"

    def __init__(self, job: Job):
        reason = (job.error or "no reason recorded") if job.status is JobStatus.FAILED else "it was cancelled"
        super().__init__(f"job {job.job_id} ended {job.status.value}: {reason}")
        self.headers = {"x-whisperq-job-id": job.job_id}


@dataclass(frozen=True)
class Answer:
    content_type: str
    body: str
    job_id: str


class OpenAIRoutes:
    def __init__(self, jobs: JobService, wait_s: float, max_bytes: int,
                 sleep: Callable[[float], None] = time.sleep, slots: WaitSlots | None = None):
        self.jobs = jobs
        self.wait_s = wait_s
        self.max_bytes = max_bytes
        self.sleep = sleep
        self.slots = slots or WaitSlots(jobs.jobs, jobs.settings.openai_waits_per_key, wait_s + 5)

    def audio(self, fields: dict, owner: str, task: str, idempotency_key: str | None) -> Answer:
        """POST /v1/audio/transcriptions (task "transcribe") and /v1/audio/translations ("translate")."""
        request = parse_request(fields, task, self.jobs.settings.tiers.models)
        if len(request.audio) > self.max_bytes:
            raise FileTooLarge(
                f"the file is {len(request.audio)} bytes; this route takes at most {self.max_bytes} (the API "
                f"function's payload limit): upload larger audio with POST /jobs and its pre-signed form, "
                f"which takes up to {self.jobs.settings.max_upload_bytes} bytes", "file")
        try:
            content_type = content_type_for(request.filename)
        except WhisperqError as exc:
            raise OpenAIRequestError(exc.message, "file", "invalid_file_format") from exc
        slot = self.slots.take(owner)
        if slot is None:
            raise TooManyWaiting(
                f"this API key already has {self.slots.per_key} request(s) waiting on the synchronous routes; send "
                f"this one again in a few seconds, or use POST /jobs for many files (no wait held)")
        try:
            body = {"filename": request.filename, "contentType": content_type, "options": request.options}
            if request.model is not None:
                body["model"] = request.model
            job = self.jobs.create_with_audio(body, owner, request.audio, idempotency_key)
            self._wait(job, idempotency_key is not None)
            return Answer(*render(request, self._transcript(job.job_id)), job.job_id)
        finally:
            self.slots.give_back(slot)

    def _wait(self, job: Job, keyed: bool) -> None:
        started = time.monotonic()
        status = job.status
        while not status.is_final:
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                raise JobNotDone(job.job_id, status, waited, keyed)
            self.sleep(POLL_S if waited < FAST_POLLS_FOR_S else SLOW_POLL_S)
            status = self.jobs.jobs.status_of(job.job_id)
        if status is not JobStatus.COMPLETED:
            raise JobUnsuccessful(self.jobs.jobs.get(job.job_id))

    def _transcript(self, job_id: str) -> Transcript:
        # Where every COMPLETED job's JSON transcript is: no second read of the job to learn it.
        return Transcript.from_dict(json.loads(self.jobs.blobs.get_text(transcript_key(job_id, "json"))))

