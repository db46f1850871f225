"""The S3 key scheme: audio/<tier>/<jobId>/<filename> in (a tier per model: core/tiers.py),
transcripts/<jobId>/<jobId>.<fmt> out."""

from __future__ import annotations

import unicodedata

from whisperq.core.errors import InvalidRequest
from whisperq.core.jobs import validate_job_id
from whisperq.core.writers import WRITERS

AUDIO_PREFIX = "audio/"
TRANSCRIPTS_PREFIX = "transcripts/"
MAX_FILENAME_CHARS = 255


def clean_filename(filename: object) -> str:
    """Validate a client's filename and return the form used in the object key.

    Keeps spaces and non-ASCII letters (keys are URL-encoded in S3 events and decoded again),
    refuses what could escape the job's prefix or break a header."""
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidRequest("filename must be a non-empty string")
    name = unicodedata.normalize("NFC", filename.strip())
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidRequest(f"filename is longer than {MAX_FILENAME_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise InvalidRequest("filename contains control characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidRequest("filename must be a bare file name, without directories")
    return name


def audio_key(job_id: str, filename: str, tier: str) -> str:
    """The key a job's audio is uploaded to, under its tier's prefix (whose S3 events go to its queue)."""
    return f"{AUDIO_PREFIX}{tier}/{job_id}/{clean_filename(filename)}"


def job_id_from_audio_key(key: str) -> str | None:
    """The job id in an audio key (audio/<tier>/<jobId>/<file>; audio/<jobId>/<file> before tiers), or None
    when the key is not one of ours."""
    if not key.startswith(AUDIO_PREFIX):
        return None
    parts = key[len(AUDIO_PREFIX) :].split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return None
    try:
        return validate_job_id(parts[-2])
    except InvalidRequest:
        return None


def transcript_key(job_id: str, fmt: str) -> str:
    """The key of one output format of a job."""
    return f"{TRANSCRIPTS_PREFIX}{job_id}/{job_id}.{fmt}"


CHUNKS_PREFIX = "chunks/"
RESULTS_PREFIX = "results/"


def result_key(job_id: str, lease_id: str) -> str:
    """The transcript one attempt made (JSON), named by its lease: only the one the job commits is used."""
    return f"{RESULTS_PREFIX}{job_id}/{lease_id}.json"


def chunks_prefix(job_id: str) -> str:
    """Where a fanned-out job keeps its plan, its chunks' audio and their results until it ends."""
    return f"{CHUNKS_PREFIX}{job_id}/"


def output_keys(job_id: str) -> list[str]:
    """The keys of every output format of a job."""
    return [transcript_key(job_id, fmt) for fmt in WRITERS]


def work_prefixes(job_id: str) -> list[str]:
    """Every prefix under which a job's workers leave objects that go when the job ends."""
    return [chunks_prefix(job_id), f"{RESULTS_PREFIX}{job_id}/"]


def chunk_plan_key(job_id: str, plan_id: str) -> str:
    """The chunk plan a split recorded (JSON); the plan's chunks live beside it."""
    return f"{chunks_prefix(job_id)}{plan_id}/plan.json"


def chunk_audio_key(job_id: str, plan_id: str, index: int) -> str:
    """The FLAC audio of one chunk of a job's plan."""
    return f"{chunks_prefix(job_id)}{plan_id}/{index:05d}.flac"


def chunk_result_key(job_id: str, plan_id: str, index: int, lease_id: str) -> str:
    """One attempt's transcript of one chunk (JSON, times of the whole file), named by its lease: the
    merge reads the one under the lease that counted the chunk done."""
    return f"{chunks_prefix(job_id)}{plan_id}/{index:05d}-{lease_id}.json"
