"""Domain errors. Each carries its own mapping to the edges (HTTP status, CLI exit code) and says
whether retrying the same work could succeed."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The one table of the CLI's exit codes. Each error kind below names its own, and the SDK's, the
    API's and the twin's errors name theirs from here; docs/usage.md shows `MEANINGS` (a test keeps it so)."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    UNREACHABLE = 5
    JOB_FAILED = 6
    SERVICE_ERROR = 7
    TIMEOUT = 8
    AUTH = 9
    TWIN_RUNNING = 10
    TWIN_START = 11
    INVARIANT = 12
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.UNEXPECTED: "unexpected error (rerun with `--debug`)",
    ExitCode.USAGE: "invalid request or usage (the API answered 400)",
    ExitCode.NOT_FOUND: "not found (unknown job)",
    ExitCode.CONFLICT: "conflict: the job cannot do that in its current status (`wait`: it was CANCELLED), or "
                       "`--out` would overwrite a file",
    ExitCode.UNREACHABLE: "the API or the twin cannot be reached",
    ExitCode.JOB_FAILED: "a job ended FAILED (the reason is printed)",
    ExitCode.SERVICE_ERROR: "the service answered with an error (5xx)",
    ExitCode.TIMEOUT: "timed out waiting (the job keeps running)",
    ExitCode.AUTH: "the API refused the key (403)",
    ExitCode.TWIN_RUNNING: "a local twin is already running",
    ExitCode.TWIN_START: "the local twin could not start",
    ExitCode.INVARIANT: "a chaos run (`loadtest --faults`) found an invariant broken",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); running jobs keep running",
}


class WhisperqError(Exception):
    """Base of every error whisperq raises on purpose."""

    status_code = 500
    code = "internal_error"
    exit_code: int = ExitCode.UNEXPECTED
    retryable = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(WhisperqError):
    """The caller sent something malformed or out of range."""

    status_code = 400
    code = "invalid_request"
    exit_code = ExitCode.USAGE


class JobNotFound(WhisperqError):
    """No job has this id."""

    status_code = 404
    code = "job_not_found"
    exit_code = ExitCode.NOT_FOUND

    def __init__(self, job_id: str):
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class InvalidTransition(WhisperqError):
    """A job cannot move from its current status to the one asked for."""

    status_code = 409
    code = "invalid_transition"
    exit_code = ExitCode.CONFLICT

    def __init__(self, job_id: str, current: str, wanted: str):
        super().__init__(f"job {job_id} is {current}; it cannot become {wanted}")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class ConfigError(WhisperqError):
    """A setting or tunable is missing or out of range; raised at start, never mid-job."""

    code = "config_error"
    exit_code = ExitCode.USAGE


class PermanentJobError(WhisperqError):
    """The job cannot be transcribed however often it is retried (not audio, empty, too long...).

    The transcriber ends the job FAILED with this message and acknowledges the message."""

    status_code = 422
    code = "job_failed"
    exit_code = ExitCode.JOB_FAILED


class TransientError(WhisperqError):
    """A dependency failed in a way that may pass (throttling, 5xx, timeout, connection reset)."""

    status_code = 503
    code = "service_unavailable"
    exit_code = ExitCode.SERVICE_ERROR
    retryable = True


class InjectedFault(TransientError):
    """A failure injected on purpose by the fault settings (testing the retry and DLQ paths)."""

    code = "injected_fault"


class Conflict(WhisperqError):
    """The job's status does not allow this (a transcript before COMPLETED, a cancel after the end)."""

    status_code = 409
    code = "conflict"
    exit_code = ExitCode.CONFLICT


class Forbidden(WhisperqError):
    """No valid API key came with the request."""

    status_code = 403
    code = "forbidden"
    exit_code = ExitCode.AUTH


class UnprocessableMessage(WhisperqError):
    """A queue message that is neither an S3 event nor one of whisperq's own; it is failed so that it ends
    in the DLQ for a person."""

    code = "unprocessable_message"

