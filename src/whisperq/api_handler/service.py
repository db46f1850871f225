"""What the API does, independent of how requests arrive."""

from __future__ import annotations

import time
from typing import Any

from whisperq.aws.blobs import Blobs
from whisperq.aws.jobs_table import JobsTable
from whisperq.config import Settings
from whisperq.core.audio import validate_content_type
from whisperq.core.errors import InvalidRequest, InvalidTransition
from whisperq.core.jobs import Job, JobStatus, iso, new_job_id, utc_now, validate_job_id
from whisperq.core.keys import audio_key, clean_filename
from whisperq.core.options import TranscribeOptions

DEFAULT_OWNER = "default"

# Job details the status response shows, by the name it shows them under.
PUBLIC_DETAILS = (
    "enqueuedAt", "startedAt", "completedAt", "failedAt", "queueWaitS", "downloadS", "decodeS",
    "transcribeS", "uploadS", "audioDurationS", "realTimeFactor", "engine", "model", "modelLoadS",
    "coldStart", "language", "languageProbability", "lastError",
)


class JobService:
    def __init__(self, settings: Settings, jobs: JobsTable, blobs: Blobs):
        self.settings = settings
        self.jobs = jobs
        self.blobs = blobs

    def create_upload(self, body: Any) -> dict[str, Any]:
        """Create a job in UPLOADING and the pre-signed URL its audio goes to."""
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object with filename and contentType")
        unknown = sorted(set(body) - {"filename", "contentType", "options"})
        if unknown:
            raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}; expected filename, contentType, options")
        filename = clean_filename(body.get("filename"))
        content_type = validate_content_type(body.get("contentType"))
        options = TranscribeOptions.from_api(body.get("options"), self.settings.model)
        job_id = new_job_id()
        now = iso(utc_now())
        job = Job(
            job_id=job_id,
            status=JobStatus.UPLOADING,
            filename=filename,
            content_type=content_type,
            audio_key=audio_key(job_id, filename),
            created_at=now,
            updated_at=now,
            # owner: whose job it is (one owner until API keys map to clients); expiresAt: DynamoDB TTL.
            details={
                "options": options.to_api(),
                "owner": DEFAULT_OWNER,
                "expiresAt": int(time.time()) + self.settings.job_retention_days * 86400,
            },
        )
        expires_in = self.settings.upload_url_expiry_s
        # Sign first: if signing fails, no job is left behind waiting for an upload.
        url = self.blobs.presign_put(job.audio_key, content_type, expires_in)
        self.jobs.create(job)
        return {
            "jobId": job_id,
            "status": job.status.value,
            "uploadUrl": url,
            "uploadMethod": "PUT",
            "uploadHeaders": {"Content-Type": content_type},
            "expiresIn": expires_in,
            "options": options.to_api(),
        }

    def status(self, raw_job_id: str) -> dict[str, Any]:
        """The job as a client sees it, with download URLs once it is COMPLETED."""
        job = self.jobs.get(validate_job_id(raw_job_id))
        if job.status is JobStatus.UPLOADING and self.blobs.head(job.audio_key) is not None:
            # The upload landed and its S3 event is in the queue: say so, before a worker sees it.
            try:
                job = self.jobs.transition(job.job_id, JobStatus.QUEUED, expected=[JobStatus.UPLOADING])
            except InvalidTransition:
                job = self.jobs.get(job.job_id)
        return self.describe(job)

    def describe(self, job: Job) -> dict[str, Any]:
        view: dict[str, Any] = {
            "jobId": job.job_id,
            "status": job.status.value,
            "filename": job.filename,
            "contentType": job.content_type,
            "createdAt": job.created_at,
            "updatedAt": job.updated_at,
            "attempts": job.attempts,
            "options": job.details.get("options") or TranscribeOptions().to_api(),
        }
        metrics = {name: job.details[name] for name in PUBLIC_DETAILS if job.details.get(name) is not None}
        if metrics:
            view["details"] = metrics
        if job.status is JobStatus.COMPLETED:
            keys: dict[str, str] = job.details.get("transcriptKeys", {})
            expiry = self.settings.download_url_expiry_s
            stem = job.filename.rsplit(".", 1)[0] or job.job_id
            urls = {
                fmt: self.blobs.presign_get(key, expiry, download_name=_ascii_name(f"{stem}.{fmt}"))
                for fmt, key in sorted(keys.items())
            }
            view["transcriptUrls"] = urls
            view["transcriptUrl"] = urls.get("txt")
            view["expiresIn"] = expiry
        if job.status is JobStatus.FAILED:
            view["error"] = job.error or "failed without a recorded reason"
        return view


def _ascii_name(name: str) -> str:
    """A download file name safe inside a Content-Disposition header."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._- ") else "_" for ch in name)
    return safe.strip() or "transcript"
