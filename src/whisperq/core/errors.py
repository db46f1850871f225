"""Domain errors. Each carries its own mapping to the edges (HTTP status, CLI exit code) and says
whether retrying the same work could succeed."""

from __future__ import annotations


class WhisperqError(Exception):
    """Base of every error whisperq raises on purpose."""

    status_code = 500
    code = "internal_error"
    exit_code = 1
    retryable = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(WhisperqError):
    """The caller sent something malformed or out of range."""

    status_code = 400
    code = "invalid_request"
    exit_code = 2


class JobNotFound(WhisperqError):
    """No job has this id."""

    status_code = 404
    code = "job_not_found"
    exit_code = 3

    def __init__(self, job_id: str):
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class InvalidTransition(WhisperqError):
    """A job cannot move from its current status to the one asked for."""

    status_code = 409
    code = "invalid_transition"
    exit_code = 4

    def __init__(self, job_id: str, current: str, wanted: str):
        super().__init__(f"job {job_id} is {current}; it cannot become {wanted}")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class ConfigError(WhisperqError):
    """A setting or tunable is missing or out of range; raised at start, never mid-job."""

    code = "config_error"
    exit_code = 2


class PermanentJobError(WhisperqError):
    """The job cannot be transcribed however often it is retried (not audio, empty, too long...).

    The transcriber ends the job FAILED with this message and acknowledges the message."""

    status_code = 422
    code = "job_failed"
    exit_code = 6


class TransientError(WhisperqError):
    """A dependency failed in a way that may pass (throttling, 5xx, timeout, connection reset)."""

    status_code = 503
    code = "service_unavailable"
    exit_code = 7
    retryable = True


class InjectedFault(TransientError):
    """A failure injected on purpose by the fault settings (testing the retry and DLQ paths)."""

    code = "injected_fault"
