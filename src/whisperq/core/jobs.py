"""Jobs, their statuses and the transitions allowed between them, and the typed job record: the job
and its parts (lease, timeline, measurements, fan-out state), and the record of one chunk.

The record's attributes are named once, here: each field's stored (and shown) name is its name in
camelCase (`queue_wait_s` is `queueWaitS`), a lease's fields take the prefix `lease`. Fields marked
PRIVATE are bookkeeping the status view does not show."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime

from whisperq.core.errors import InvalidRequest
from whisperq.core.leases import LastCall, Lease

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


JOB_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def validate_job_id(job_id: str) -> str:
    """Return the canonical form of a job id, or raise InvalidRequest."""
    try:
        parsed = uuid.UUID(job_id)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidRequest(f"job id {job_id!r} is not a valid job id (a UUID)") from exc
    if str(parsed) != job_id.lower():
        raise InvalidRequest(f"job id {job_id!r} is not a valid job id (a UUID)")
    return str(parsed)


# A field the status view does not show (bookkeeping of the pipeline).
PRIVATE = {"private": True}


def camel(name: str) -> str:
    """A field's attribute name: queue_wait_s -> queueWaitS."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def attributes_of(part: object, public_only: bool = False) -> dict[str, object]:
    """The fields of a record part that are set (not None), by attribute name."""
    return {camel(f.name): getattr(part, f.name) for f in fields(part)  # type: ignore[arg-type]
            if getattr(part, f.name) is not None and not (public_only and f.metadata.get("private"))}


@dataclass(frozen=True)
class Timeline:
    """When the job reached each step (ISO-8601, UTC)."""

    enqueued_at: str | None = None
    started_at: str | None = None
    model_ready_at: str | None = None
    transcribed_at: str | None = None
    completed_at: str | None = None
    failed_at: str | None = None
    cancelled_at: str | None = None
    replayed_at: str | None = None


@dataclass(frozen=True)
class RunStats:
    """What the run that made the transcript measured: the audio, the engine, this worker, each stage."""

    queue_wait_s: float | None = None
    download_s: float | None = None
    decode_s: float | None = None
    transcribe_s: float | None = None
    upload_s: float | None = None
    audio_duration_s: float | None = None
    real_time_factor: float | None = None
    engine: str | None = None
    model: str | None = None
    model_load_s: float | None = None
    cold_start: bool | None = None
    language: str | None = None
    language_probability: float | None = None
    retries: int | None = None
    diarize_s: float | None = None  # diarized jobs: embedding the speech and clustering it (chunks' and merge's)
    speakers: int | None = None  # diarized jobs: how many voices were told apart
    diarization: str | None = None  # diarized jobs: why no speakers were labelled, when none were

    def with_timings(self, timings: Mapping[str, float]) -> RunStats:
        """These stats with the stage times measured (seconds by field name: download_s, decode_s...)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(timings) - known)
        if unknown:
            raise ValueError(f"not stage times of a run: {', '.join(unknown)}")
        rounded: dict[str, object] = {name: round(value, 4) for name, value in timings.items()}
        return replace(self, **rounded)  # type: ignore[arg-type]  # each a float field, checked above


@dataclass(frozen=True)
class FanOutState:
    """A long file cut into chunks: how many, how many are done, where its plan and chunks are."""

    chunks: int
    chunks_done: int = 0
    # The plan's id (the lease of the split that recorded it): its chunks live under chunks/<jobId>/<id>/.
    chunk_plan_id: str | None = field(default=None, metadata=PRIVATE)
    fanned_out_at: str | None = None
    chunks_sent_at: str | None = field(default=None, metadata=PRIVATE)  # every chunk message is on the queue
    chunks_transcribe_s: float | None = field(default=None, metadata=PRIVATE)
    failed_chunk: int | None = None
    split_s: float | None = None
    merge_s: float | None = None

    @property
    def all_done(self) -> bool:
        return self.chunks_done >= self.chunks


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
    owner: str = DEFAULT_OWNER  # the API key whose job it is
    options: Mapping[str, object] = field(default_factory=dict)  # the API's form, validated at creation
    tier: str | None = None  # the model tier that runs it (core/tiers.py): its audio's prefix, its queue
    tier_model: str | None = None  # the model it asked for (the run's `model` says what transcribed it)
    callback_url: str | None = None
    callback_status: str | None = None
    source: str | None = None  # where its audio came from (s3://bucket/key, a URL); None: uploaded
    # A dropped file's job: its transcripts are also written to <outputsStem>.<format> (beside the file).
    outputs_stem: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    expires_at: int | None = None  # DynamoDB's TTL, epoch seconds
    lease: Lease | None = None  # the holder of the whole job (its transcription, split or merge)
    receive_count: int | None = None  # the queue's receive count of the message that last took it
    last_error: str | None = None  # why the last attempt failed (the job may still succeed)
    dead_lettered: bool = False
    result_key: str | None = None  # the committed transcript: every output is written from it
    finished_by: str | None = None  # the lease under which the job ended (how a retried write knows it landed)
    transcript_keys: Mapping[str, str] = field(default_factory=dict)  # by format
    timeline: Timeline = field(default_factory=Timeline)
    run: RunStats = field(default_factory=RunStats)
    fanout: FanOutState | None = None
    last_call: LastCall | None = None  # its upload's message on its last delivery, while it is handled

    def public_details(self) -> dict[str, object]:
        """What the status view shows under `details`: timeline, measurements, fan-out progress."""
        details: dict[str, object] = {**attributes_of(self.timeline), **attributes_of(self.run)}
        if self.fanout is not None:
            details.update(attributes_of(self.fanout, public_only=True))
        for name in ("last_error", "callback_status"):
            if getattr(self, name) is not None:
                details[camel(name)] = getattr(self, name)
        return details


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk of a fanned-out job, in an item of its own: its lease and whether it is done."""

    job_id: str
    index: int
    lease: Lease | None = None
    attempts: int = 0
    done_by: str | None = None  # the lease under which it was counted done: its result's key names it
    last_call: LastCall | None = None  # its message on its last delivery, while it is handled
