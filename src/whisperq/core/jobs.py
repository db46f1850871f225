"""Jobs, their statuses and the transitions allowed between them."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from whisperq.core.errors import InvalidRequest

# Whose a job is when it names no owner (jobs made before owners existed, and tests).
DEFAULT_OWNER = "default"


class JobStatus(enum.StrEnum):
    UPLOADING = "UPLOADING"  # created; waiting for the client's upload to S3
    QUEUED = "QUEUED"  # the audio arrived; its S3 event waits in the queue (or for a retry)
    PROCESSING = "PROCESSING"  # a worker holds the job under a lease
    COMPLETED = "COMPLETED"  # transcripts written
    FAILED = "FAILED"  # ended with a reason a person can act on
    CANCELLED = "CANCELLED"  # cancelled by its owner before it finished; its files are deleted

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


# PROCESSING -> PROCESSING is a new attempt taking over an expired lease (its worker died);
# PROCESSING -> QUEUED releases a job after a retryable failure so the next delivery can take it;
# FAILED -> QUEUED is only done by a dead-letter replay, which resets the job on purpose.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.UPLOADING: frozenset({JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.PROCESSING, JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset(),
}


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """Every status from which a job may move to `target`."""
    return frozenset(src for src, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether a job in `current` may move to `target`."""
    return target in ALLOWED_TRANSITIONS[current]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO-8601 in UTC with milliseconds, the one timestamp format of the job record."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_job_id() -> str:
    """An unguessable job id (uuid4, 122 random bits)."""
    return str(uuid.uuid4())


def validate_job_id(job_id: str) -> str:
    """Return the canonical form of a job id, or raise InvalidRequest."""
    try:
        parsed = uuid.UUID(job_id)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidRequest(f"job id {job_id!r} is not a valid job id (a UUID)") from exc
    if str(parsed) != job_id.lower():
        raise InvalidRequest(f"job id {job_id!r} is not a valid job id (a UUID)")
    return str(parsed)


@dataclass(frozen=True)
class Job:
    """One transcription job, as stored in the jobs table."""

    job_id: str
    status: JobStatus
    filename: str
    content_type: str
    audio_key: str
    created_at: str
    updated_at: str
    attempts: int = 0
    error: str | None = None
    # Filled in as the job advances: timings, engine, outputs. Free-form so that later
    # measurements do not need a schema change.
    details: dict[str, Any] = field(default_factory=dict)
