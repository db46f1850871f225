"""The S3 key scheme: audio/<jobId>/<filename> in, transcripts/<jobId>/<jobId>.<fmt> out."""

from __future__ import annotations

import unicodedata

from whisperq.core.errors import InvalidRequest
from whisperq.core.jobs import validate_job_id

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


def audio_key(job_id: str, filename: str) -> str:
    """The key a job's audio is uploaded to."""
    return f"{AUDIO_PREFIX}{job_id}/{clean_filename(filename)}"


def job_id_from_audio_key(key: str) -> str | None:
    """The job id in an audio key, or None when the key is not one of ours."""
    if not key.startswith(AUDIO_PREFIX):
        return None
    parts = key[len(AUDIO_PREFIX) :].split("/")
    if len(parts) != 2 or not parts[1]:
        return None
    try:
        return validate_job_id(parts[0])
    except InvalidRequest:
        return None


def transcript_key(job_id: str, fmt: str) -> str:
    """The key of one output format of a job."""
    return f"{TRANSCRIPTS_PREFIX}{job_id}/{job_id}.{fmt}"


CHUNKS_PREFIX = "chunks/"


def chunks_prefix(job_id: str) -> str:
    """Where a fanned-out job keeps its chunks' audio and results until it ends."""
    return f"{CHUNKS_PREFIX}{job_id}/"


def chunk_audio_key(job_id: str, index: int) -> str:
    """The FLAC audio of one chunk of a job."""
    return f"{chunks_prefix(job_id)}{index:05d}.flac"


def chunk_result_key(job_id: str, index: int) -> str:
    """One chunk's transcript (JSON, timestamps of the whole file)."""
    return f"{chunks_prefix(job_id)}{index:05d}.json"


def chunk_keys(job_id: str, count: int) -> list[str]:
    """Every object the chunks of a job fanned out into `count` chunks may have written."""
    return [key for index in range(count) for key in (chunk_audio_key(job_id, index), chunk_result_key(job_id, index))]
