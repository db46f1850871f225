"""What the API does, independent of how requests arrive."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from whisperq.api_handler.contract import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    CreateFromSource,
    CreateJob,
    CreateRequest,
    CreateUpload,
)
from whisperq.aws.blobs import Blobs, ObjectInfo
from whisperq.aws.jobs_table import JobIdTaken, JobsTable
from whisperq.aws.queues import Queue
from whisperq.aws.s3_events import object_created_body
from whisperq.config import Settings
from whisperq.core.audio import AUDIO_CONTENT_TYPES, content_type_for
from whisperq.core.callbacks import validate_callback_url
from whisperq.core.contract import validated
from whisperq.core.errors import (
    Conflict,
    InvalidRequest,
    InvalidTransition,
    JobNotFound,
    PermanentJobError,
)
from whisperq.core.jobs import DEFAULT_OWNER, Job, JobStatus, iso, new_job_id, parse_iso, utc_now, validate_job_id
from whisperq.core.keys import audio_key, clean_filename, output_keys, work_prefixes
from whisperq.core.options import TranscribeOptions
from whisperq.core.sources import S3Object, SourceRefused, fetch_message, parse_source
from whisperq.core.writers import WRITERS

# Seconds after the upload URL expires before a job that never received its audio is failed
# (an upload that started just before expiry may still be arriving).
UPLOAD_GRACE_S = 60
_CREATE: TypeAdapter[CreateJob | CreateFromSource] = TypeAdapter(CreateRequest)

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f0c3b1e-8a5d-4f7e-9c2b-3d4e5f607182")
def idempotent_job_id(owner: str, key: str) -> str:
    """The job id an idempotency key names, for one owner (uuid5: the same inputs, the same id)."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{owner}\n{key}"))


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


class JobService:
    def __init__(self, settings: Settings, jobs: JobsTable, blobs: Blobs, allow_private_callbacks: bool = False):
        self.settings = settings
        self.jobs = jobs
        self.blobs = blobs
        self.allow_private_callbacks = allow_private_callbacks
        self._queues: dict[str, Queue] = {}

    def queue(self, tier: str | None) -> Queue:
        """A tier's transcription queue (looked up once): a fetch of audio by URL is queued there for one of
        its workers."""
        chosen = self.settings.tiers.by_id(tier or "") or self.settings.tiers.default
        if chosen.id not in self._queues:
            self._queues[chosen.id] = Queue.by_name(self.jobs.clients, chosen.queue_name(self.settings.queue_name))
        return self._queues[chosen.id]

    # --- creating ------------------------------------------------------------------------
    def _new_job(self, request: CreateJob | CreateFromSource, owner: str, idempotency_key: str | None = None,
                 audio: bytes | None = None, filename: str | None = None, content_type: str | None = None) -> Job:
        """A new job in UPLOADING from a checked request (`filename`, `content_type`: what a source's
        request left out, found)."""
        tier = self.settings.tiers.for_model(request.model)
        options = TranscribeOptions.from_api(request.options, tier.model)
        callback_url = None
        if request.callback_url is not None:
            callback_url = validate_callback_url(request.callback_url, self.allow_private_callbacks)
        filename = request.filename or filename
        content_type = request.content_type or content_type
        if filename is None or content_type is None:
            raise InvalidRequest("the request needs filename and contentType")
        job_id = new_job_id()
        if idempotency_key is not None:
            # The same key (for the same API key) names the same job: a create sent again finds it.
            job_id = idempotent_job_id(owner, idempotency_key)
        now = iso(utc_now())
        # The model as resolved (omitted, whisper-1 and the default's own name are one request); the
        # default's requests hash as they did before tiers.
        sent = {name: value for name, value in request.sent().items() if name != "model"}
        if not tier.default:
            sent["model"] = tier.model
        return Job(job_id=job_id, status=JobStatus.UPLOADING, filename=filename, content_type=content_type,
                   audio_key=audio_key(job_id, filename, tier.id), created_at=now, updated_at=now, owner=owner,
                   tier=tier.id, tier_model=tier.model, options=options.to_api(), callback_url=callback_url,
                   idempotency_key=idempotency_key,
                   # What the request asks for, audio included when it came with it: the same key with
                   # other audio under the same name is another request (409), not a replay.
                   request_hash=request_hash(sent if audio is None else
                                             {**sent, "audioSha256": hashlib.sha256(audio).hexdigest()})
                   if idempotency_key else None,
                   expires_at=int(time.time()) + self.settings.job_retention_days * 86400)

    def _store(self, job: Job) -> tuple[Job, bool]:
        """Store the new job; with an idempotency key already used, the job it made (and True)."""
        try:
            return self.jobs.create(job), False
        except JobIdTaken:
            if job.idempotency_key is None:
                raise
        earlier = self.jobs.get(job.job_id)
        if (earlier.owner, earlier.request_hash) != (job.owner, job.request_hash):
            raise Conflict("this Idempotency-Key was already used with a different request; use a new key "
                           "for a new job")
        return earlier, True

    def create_upload(self, body: CreateUpload | dict[str, Any], owner: str = DEFAULT_OWNER,
                      idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /upload: a job in UPLOADING and a pre-signed PUT URL (the original contract), signed for the
        file's size (`contentLength`): S3 refuses a body of any other size, so no upload is unbounded."""
        request = CreateUpload.parse(body)
        job = self._new_job(request, owner, idempotency_key)
        size = request.content_length
        limit = self.settings.max_upload_bytes
        if size > limit:
            raise InvalidRequest(f"contentLength must be the file's size in bytes, 1 to {limit}: the upload URL is "
                                 "signed for exactly that size (larger audio: split it, or ask for a higher "
                                 "WHISPERQ_MAX_UPLOAD_BYTES)")
        expires_in = self.settings.upload_url_expiry_s
        # Sign first: if signing fails, no job is left behind waiting for an upload.
        signed = job.audio_key
        url = self.blobs.presign_put(job.audio_key, job.content_type, expires_in, size)
        job, replayed = self._store(job)
        if job.audio_key != signed:  # a replay of a job made with another key (before tiers, another default)
            url = self.blobs.presign_put(job.audio_key, job.content_type, expires_in, size)
        return {
            **({"idempotentReplayed": True} if replayed else {}),
            "jobId": job.job_id,
            "status": job.status.value,
            "uploadUrl": url,
            "uploadMethod": "PUT",
            "uploadHeaders": {"Content-Type": job.content_type, "Content-Length": str(size)},
            "expiresIn": expires_in,
            "options": dict(job.options),
        }

    def create_job(self, body: CreateJob | CreateFromSource | dict[str, Any], owner: str = DEFAULT_OWNER,
                   idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /jobs: a job and a pre-signed POST form whose policy S3 enforces (size, type, key); or, with
        a `source`, a job whose audio the service takes from S3 or a URL itself."""
        request = validated(_CREATE.validate_python, body) if isinstance(body, dict) else body
        if isinstance(request, CreateFromSource):
            return self.create_from_source(request, owner, idempotency_key)
        job = self._new_job(request, owner, idempotency_key)
        expires_in = self.settings.upload_url_expiry_s
        signed = job.audio_key
        form = self.blobs.presign_post(job.audio_key, job.content_type, self.settings.max_upload_bytes, expires_in)
        job, replayed = self._store(job)
        if job.audio_key != signed:  # a replay of a job made with another key (before tiers, another default)
            form = self.blobs.presign_post(job.audio_key, job.content_type, self.settings.max_upload_bytes,
                                           expires_in)
        view = self.describe(job)
        if replayed:
            view["idempotentReplayed"] = True
        view["upload"] = {
            "method": "POST",
            "url": form["url"],
            "fields": form["fields"],
            "fileField": "file",
            "maxBytes": self.settings.max_upload_bytes,
            "expiresIn": expires_in,
        }
        return view

    def create_from_source(self, body: CreateFromSource | dict[str, Any], owner: str = DEFAULT_OWNER,
                           idempotency_key: str | None = None) -> dict[str, Any]:
        """A job whose audio is already somewhere. An s3:// object in a granted bucket is checked (it exists,
        its size and type are within the limits) and copied server-side into the job's audio key, whose S3
        event queues it as an upload's would. A URL is fetched by a worker (transcriber/sources.py): its
        job waits in UPLOADING until the audio lands, or ends FAILED with the reason the fetch failed."""
        request = CreateFromSource.parse(body)
        source = parse_source(request.source, self.settings.allow_private_sources)
        filename = request.filename or clean_filename(source.filename)
        info = self._check_object(source) if isinstance(source, S3Object) else None
        content_type = request.content_type
        if content_type is None:
            stored = (info.content_type.split(";", 1)[0].strip().lower() if info else "")
            content_type = stored if stored in AUDIO_CONTENT_TYPES else content_type_for(filename)
        job = replace(self._new_job(request, owner, idempotency_key, filename=filename, content_type=content_type),
                      source=str(source))
        job, replayed = self._store(job)
        if job.status is JobStatus.UPLOADING and self.blobs.head(job.audio_key) is None:
            # New, or a create sent again whose copy or fetch message did not go (a lost answer, a 5xx):
            # both are safe to do twice. A passing error leaves the job waiting for this very create
            # again (with its Idempotency-Key); only the source's own fault ends it.
            try:
                if isinstance(source, S3Object):
                    self.blobs.copy_in(source.bucket, source.key, job.audio_key, job.content_type,
                                       info.etag if info is not None else None)
                else:
                    # A fetch that runs twice stores the same audio.
                    self.queue(job.tier).send(fetch_message(job.job_id))
            except PermanentJobError as exc:  # the source's doing (gone, changed): the caller's to fix
                self.jobs.fail_without_audio(job.job_id, f"the audio could not be copied: {exc.message}")
                raise SourceRefused(exc.message) from exc
        job = self._refresh(job)
        view = self.describe(job)
        if replayed:
            view["idempotentReplayed"] = True
        return view

    def _check_object(self, source: S3Object) -> ObjectInfo:
        """The object's size and type, once it is shown to be one this deployment may take."""
        granted = self.settings.granted_buckets
        if source.bucket == self.settings.bucket:
            raise SourceRefused("the deployment's own bucket is not a source (it holds every key's audio and "
                                "transcripts); upload the file, or use the drop folder")
        if source.bucket not in granted:
            raise SourceRefused(f"bucket {source.bucket!r} is not granted to this deployment (granted: "
                                f"{', '.join(granted) or 'none'}); add it to the stack's SourceBuckets parameter")
        info = self.blobs.other(source.bucket).head(source.key)
        if info is None:
            raise SourceRefused(f"{source} does not exist")
        limit = self.settings.max_upload_bytes
        if not 0 < info.size_bytes <= limit:
            raise SourceRefused(f"{source} is {info.size_bytes} bytes; an audio source must be 1 to {limit} bytes")
        return info

    def create_with_audio(self, body: CreateJob | dict[str, Any], owner: str, audio: bytes,
                          idempotency_key: str | None = None) -> Job:
        """A job whose audio comes in the request itself (the OpenAI-compatible routes): stored where an
        upload would put it, so that its S3 event queues it as any other. A create sent again with the
        same Idempotency-Key finds its job and stores nothing twice."""
        job, replayed = self._store(self._new_job(CreateJob.parse(body), owner, idempotency_key, audio))
        if not replayed or (job.status is JobStatus.UPLOADING and self.blobs.head(job.audio_key) is None):
            self.blobs.put_bytes(job.audio_key, audio, job.content_type)
        return job

    # --- reading -------------------------------------------------------------------------
    def get(self, raw_job_id: str, owner: str = DEFAULT_OWNER) -> Job:
        """The caller's job, brought up to date; another owner's job is not found, as a missing one is."""
        job = self.jobs.get(validate_job_id(raw_job_id))
        if job.owner != owner:
            raise JobNotFound(raw_job_id)
        return self._refresh(job)

    def _refresh(self, job: Job) -> Job:
        """UPLOADING jobs whose audio arrived become QUEUED; those whose upload never came, FAILED."""
        if job.status is not JobStatus.UPLOADING:
            return job
        try:
            found = self.blobs.head(job.audio_key)
            if found is not None:
                # The upload landed and its S3 event is in the queue: say so, before a worker sees it.
                queued = self.jobs.mark_queued(job.job_id)
                if not self.settings.tiers.serves_key(job.audio_key):
                    # Under a prefix no tier is notified for (a job made before tiers, or by a tier since
                    # retired): its event is sent here, to its tier's queue, or the default's.
                    self.queue(job.tier).send(object_created_body(self.settings.bucket, job.audio_key,
                                                                  found.size_bytes))
                return queued
            waited_s = (utc_now() - parse_iso(job.created_at)).total_seconds()
            if job.source and not job.source.startswith("s3://"):
                # Its fetch waits in the queue (behind a flood, maybe) and ends the job itself; only a
                # message that can no longer be there leaves it to this net.
                if waited_s > self.settings.queue.retention_s + UPLOAD_GRACE_S:
                    return self.jobs.fail_without_audio(job.job_id, "its audio was never fetched: the fetch's "
                                                                    "message is gone; create a new job")
            elif waited_s > self.settings.upload_url_expiry_s + UPLOAD_GRACE_S:
                return self.jobs.fail_without_audio(
                    job.job_id, f"upload not received: the upload URL expired after "
                                f"{self.settings.upload_url_expiry_s} s; create a new job")
        except InvalidTransition:
            return self.jobs.get(job.job_id)
        return job

    def status(self, raw_job_id: str, owner: str = DEFAULT_OWNER) -> dict[str, Any]:
        return self.describe(self.get(raw_job_id, owner))

    def list(self, owner: str, status: JobStatus | None = None, limit: int = DEFAULT_PAGE_SIZE,
             cursor: str | None = None) -> dict[str, Any]:
        """A page of the owner's jobs, newest first (`limit`: 1 to MAX_PAGE_SIZE, as the route checks)."""
        jobs, next_cursor = self.jobs.list_by_owner(owner, max(1, min(limit, MAX_PAGE_SIZE)), status, cursor)
        return {"jobs": [self.describe(self._refresh(job), urls=False) for job in jobs], "nextCursor": next_cursor}

    def transcript_url(self, raw_job_id: str, owner: str, fmt: str = "txt") -> str:
        if fmt not in WRITERS:
            raise InvalidRequest(f"format must be one of {', '.join(WRITERS)}")
        job = self.get(raw_job_id, owner)
        if job.status is not JobStatus.COMPLETED:
            raise Conflict(f"job {job.job_id} is {job.status.value}; its transcript exists once it is COMPLETED")
        key = job.transcript_keys.get(fmt)
        if not key:
            raise Conflict(f"job {job.job_id} has no {fmt} transcript")
        return self.blobs.presign_get(key, self.settings.download_url_expiry_s, _download_name(job, fmt))

    # --- cancelling ----------------------------------------------------------------------
    def cancel(self, raw_job_id: str, owner: str = DEFAULT_OWNER) -> dict[str, Any]:
        """Cancel a job that has not finished, so that no worker runs it, and delete its files."""
        job = self.get(raw_job_id, owner)
        if job.status.is_final:
            raise Conflict(f"job {job.job_id} already ended {job.status.value}; only unfinished jobs can be cancelled")
        try:
            job = self.jobs.cancel(job.job_id)
        except InvalidTransition as exc:
            raise Conflict(f"job {job.job_id} ended {exc.current} before it could be cancelled") from exc
        keys = [job.audio_key, *job.transcript_keys.values(), *output_keys(job.job_id)]
        self.blobs.delete(sorted(set(keys)))
        # What its workers made (chunks, their results, attempts' transcripts): they skip the job from now
        # on and delete what they write late.
        for prefix in work_prefixes(job.job_id):
            self.blobs.delete_prefix(prefix)
        return self.describe(job)

    # --- showing -------------------------------------------------------------------------
    def describe(self, job: Job, urls: bool = True) -> dict[str, Any]:
        view: dict[str, Any] = {
            "jobId": job.job_id,
            "status": job.status.value,
            "filename": job.filename,
            "contentType": job.content_type,
            "createdAt": job.created_at,
            "updatedAt": job.updated_at,
            "attempts": job.attempts,
            "options": dict(job.options) or TranscribeOptions().to_api(),
        }
        if job.tier_model:
            view["model"], view["tier"] = job.tier_model, job.tier
        if job.callback_url:
            view["callbackUrl"] = job.callback_url
        if job.source:
            view["source"] = job.source
        details = job.public_details()
        if details:
            view["details"] = details
        if job.status is JobStatus.COMPLETED and urls:
            keys = job.transcript_keys
            expiry = self.settings.download_url_expiry_s
            view["transcriptUrls"] = {
                fmt: self.blobs.presign_get(key, expiry, _download_name(job, fmt)) for fmt, key in sorted(keys.items())
            }
            view["transcriptUrl"] = view["transcriptUrls"].get("txt")
            view["expiresIn"] = expiry
        if job.status is JobStatus.FAILED:
            view["error"] = job.error or "failed without a recorded reason"
        return view


def _download_name(job: Job, fmt: str) -> str:
    """A download file name safe inside a Content-Disposition header."""
    stem = job.filename.rsplit(".", 1)[0] or job.job_id
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._- ") else "_" for ch in f"{stem}.{fmt}")
    return safe.strip() or "transcript"
