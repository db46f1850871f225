"""Audio that is already somewhere, brought to the job's audio key by a worker; from there its S3 event
queues it as an upload's would (whole_file).

- `Fetcher`: a job created from an https URL. Its fetch message comes here: the audio is streamed through
  the guarded way out (transcriber/egress.py: resolved once, private addresses refused, each redirect
  checked, one deadline, the size cap kept while streaming) into a temporary file, then written to S3. A
  refused source, an answer that says the audio is not there (4xx), or a failure on the message's last
  delivery ends the job FAILED with the reason; a failure that may pass (a 5xx, a reset, the deadline) is
  retried with the message.
- `Inbox`: an object put under the drop folder's prefix. It becomes a job by itself, one per object
  version (the same event twice names the same job), owned by the configured key, with the deployment's
  default options; its audio is copied server-side to the job's key, and its transcripts are also written
  beside it (completion.publish).
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
import time

from whisperq.aws.jobs_table import JobIdTaken
from whisperq.aws.s3_events import ObjectEvent, object_created_body
from whisperq.core.audio import content_type_for
from whisperq.core.errors import (
    InvalidRequest,
    InvalidTransition,
    JobNotFound,
    PermanentJobError,
    TransientError,
    WhisperqError,
)
from whisperq.core.jobs import Job, JobStatus, iso, utc_now
from whisperq.core.keys import audio_key, clean_filename
from whisperq.core.options import TranscribeOptions
from whisperq.core.sources import S3_SCHEME, inbox_job_id, outputs_stem
from whisperq.tracing import stage
from whisperq.transcriber.context import WorkerContext
from whisperq.transcriber.egress import EgressFailed, EgressRefused, GuardedClient
from whisperq.transcriber.endings import notify
from whisperq.transcriber.messages import Delivery

# The time a fetch leaves its invocation for writing to S3 and ending; a fetch is not started in less.
FETCH_MARGIN_S = 15.0
MIN_FETCH_S = 5.0
MAX_REDIRECTS = 5


class Fetcher:
    """Brings a URL job's audio to its audio key (see the module docstring)."""

    def __init__(self, context: WorkerContext, client: GuardedClient | None = None):
        self.context = context
        self.client = client or GuardedClient(allow_private=context.settings.allow_private_sources)

    def handle(self, job_id: str, delivery: Delivery) -> str:
        context = self.context
        try:
            job = context.jobs.get(job_id)
        except JobNotFound:
            return "ignored:unknown-job"
        if job.status not in (JobStatus.UPLOADING, JobStatus.QUEUED):  # QUEUED: revived by a replay
            return f"skipped:{job.status.value}"  # fetched already (a copy of the message), cancelled, failed
        if not job.source or job.source.startswith(S3_SCHEME):
            return "ignored:not-a-url-job"
        if context.blobs.head(job.audio_key) is not None:
            return "skipped:fetched"
        settings = context.settings
        left_s = delivery.time_left_s(settings.queue.function_timeout_s) - FETCH_MARGIN_S
        budget_s = min(float(settings.source_fetch_timeout_s), left_s)
        last = delivery.receive_count >= settings.queue.max_receive_count
        try:
            if left_s < MIN_FETCH_S:
                raise TransientError("not enough time left in this invocation to fetch the audio")
            with stage("fetch", jobId=job_id):
                size, took_s = self._fetch(job, budget_s)
        except (EgressRefused, PermanentJobError) as exc:
            return self._fail(job, exc.message)
        except (EgressFailed, TransientError) as exc:
            if last:
                return self._fail(job, f"{exc.message} (delivery {delivery.receive_count} of "
                                       f"{settings.queue.max_receive_count}, the last)")
            context.log.warning("fetch failed; it is retried", extra={"job_id": job_id, "error": exc.message})
            raise TransientError(f"fetching {job.source}: {exc.message}") from exc
        context.metrics.add_metric("SourceFetches", "Count", 1)
        context.log.info("audio fetched", extra={"job_id": job_id, "bytes": size, "fetch_s": round(took_s, 3)})
        if not settings.tiers.serves_key(job.audio_key) and context.queue.can_send(delivery):
            # A job made before tiers: no notification reaches its key's prefix, so its event is sent here.
            context.queue.send(delivery, [object_created_body(settings.bucket, job.audio_key, size)])
        return "fetched"

    def _fetch(self, job: Job, budget_s: float) -> tuple[int, float]:
        """Stream the URL's body into a temporary file, then write it to the job's audio key."""
        assert job.source is not None
        started = time.monotonic()
        with tempfile.NamedTemporaryFile(prefix="whisperq-fetch-") as sink:
            reply = self.client.request("GET", job.source, headers={"User-Agent": "whisperq", "Accept": "audio/*"},
                                        deadline_s=budget_s, max_bytes=self.context.settings.max_upload_bytes,
                                        max_redirects=MAX_REDIRECTS, sink=sink)
            if reply.status in (408, 425, 429) or reply.status >= 500:
                raise EgressFailed(f"the server answered {reply.status}")
            if not 200 <= reply.status < 300:
                raise PermanentJobError(f"the server answered {reply.status}, not the audio"
                                        + (" (a redirect past the limit of the redirects followed)"
                                           if 300 <= reply.status < 400 else ""))
            sink.flush()
            size = sink.tell()
            if size == 0:
                raise PermanentJobError("the server answered with an empty body")
            took_s = time.monotonic() - started
            self.context.blobs.upload_file(sink.name, job.audio_key, job.content_type)
        return size, took_s

    def _fail(self, job: Job, why: str) -> str:
        reason = f"the audio could not be fetched from {_short(job.source or '')}: {why}"
        if self.context.blobs.head(job.audio_key) is not None:
            return "skipped:fetched"  # a copy of this message fetched it meanwhile: its job goes on
        try:
            failed = self.context.jobs.fail_without_audio(job.job_id, reason)
        except InvalidTransition:
            return "skipped:moved"  # cancelled (or fetched by a copy of the message) meanwhile
        self.context.metrics.add_metric("SourceFetchesFailed", "Count", 1)
        self.context.log.warning("fetch refused or failed; job FAILED", extra={"job_id": job.job_id, "error": why})
        notify(self.context, failed)
        return "failed:fetch"


class Inbox:
    """Turns an object dropped under the inbox prefix into a job (see the module docstring)."""

    def __init__(self, context: WorkerContext):
        self.context = context

    def handle(self, event: ObjectEvent) -> str:
        context, settings = self.context, self.context.settings
        name = posixpath.basename(event.key)
        try:
            filename = clean_filename(name)
            content_type = content_type_for(filename)
        except InvalidRequest:
            # Not audio (a transcript written beside a dropped file among them): nothing to do.
            return "ignored:not-audio"
        version = event.version_id or event.sequencer or event.etag or ""
        job_id = inbox_job_id(event.bucket, event.key, version)
        now = iso(utc_now())
        # Dropped files run on the default model: its tier's queue is the one the drop folder notifies.
        tier = settings.tiers.default
        job = Job(job_id=job_id, status=JobStatus.UPLOADING, filename=filename, content_type=content_type,
                  audio_key=audio_key(job_id, filename, tier.id), created_at=now, updated_at=now,
                  owner=settings.inbox_owner, tier=tier.id, tier_model=tier.model,
                  options=TranscribeOptions().to_api(), source=f"{S3_SCHEME}{event.bucket}/{event.key}",
                  outputs_stem=outputs_stem(event.key, settings.inbox, settings.inbox_output_prefix),
                  expires_at=int(time.time()) + settings.job_retention_days * 86400)
        try:
            job = context.jobs.create(job)
        except JobIdTaken:
            job = context.jobs.get(job_id)
            if job.status is not JobStatus.UPLOADING or context.blobs.head(job.audio_key) is not None:
                return "skipped:duplicate"  # the same object version's event again: its job exists
        context.log.info("dropped file became a job", extra={"job_id": job_id, "key": event.key})
        size = event.size_bytes
        if size is not None and not 0 < size <= settings.max_upload_bytes:
            return self._fail(job, f"the dropped file is {size} bytes; a file of 1 to {settings.max_upload_bytes} "
                                   "bytes is transcribed")
        try:
            context.blobs.copy_in(event.bucket, event.key, job.audio_key, job.content_type, event.etag)
        except PermanentJobError as exc:
            return self._fail(job, exc.message)
        with contextlib.suppress(WhisperqError):  # best effort: its S3 event moves it on
            context.jobs.mark_queued(job_id)
        return "inbox:queued"

    def _fail(self, job: Job, reason: str) -> str:
        with contextlib.suppress(InvalidTransition):
            self.context.jobs.fail_without_audio(job.job_id, reason)
        return "failed:inbox"


def _short(url: str) -> str:
    """A source as a reason shows it: no query string (it may hold a signature)."""
    return url.split("?", 1)[0][:200]
