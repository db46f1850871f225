"""What the SDK raises: one class per kind of failure a caller handles differently, each carrying the
HTTP status (when the API answered), the API's error code, and the CLI's exit code for it."""

from __future__ import annotations

from typing import Any

from whisperq.core.errors import ExitCode, WhisperqError


class ApiError(WhisperqError):
    """The API answered with an error (or could not be reached). `status`: the HTTP status, or None;
    `code`: the API's error code (e.g. "job_not_found")."""

    code = "api_error"
    exit_code = ExitCode.SERVICE_ERROR

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        if code:
            self.code = code


class InvalidRequestError(ApiError):
    """400, 405, 413 and other refusals of what was sent: fix the request."""

    exit_code = ExitCode.USAGE


class AuthenticationError(ApiError):
    """403: no API key, or one the API does not accept."""

    exit_code = ExitCode.AUTH


class NotFoundError(ApiError):
    """404: no such job (or it belongs to another key)."""

    exit_code = ExitCode.NOT_FOUND


class ConflictError(ApiError):
    """409: the job's status does not allow this (a transcript before COMPLETED, a cancel after the end)."""

    exit_code = ExitCode.CONFLICT


class ServiceError(ApiError):
    """5xx, or 429 after every retry: the service failed; retrying later may work."""

    exit_code = ExitCode.SERVICE_ERROR


class UnreachableError(ApiError):
    """No answer at all: wrong URL, the twin is not running, the network is down."""

    exit_code = ExitCode.UNREACHABLE


class WaitTimeout(ApiError):
    """The job did not end in the time given; it keeps running and can be waited on again."""

    exit_code = ExitCode.TIMEOUT

    def __init__(self, message: str, job_id: str | None = None):
        super().__init__(message)
        self.job_id = job_id


class JobFailed(ApiError):
    """`transcribe` waited and the job ended FAILED; `job` says why (`job.error`)."""

    exit_code = ExitCode.JOB_FAILED

    def __init__(self, job: Any):
        super().__init__(f"job {job.job_id} FAILED: {job.error}")
        self.job = job


def for_status(status: int) -> type[ApiError]:
    """The class for an HTTP error status."""
    if status == 403 or status == 401:
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status >= 500 or status == 429:
        return ServiceError
    return InvalidRequestError
