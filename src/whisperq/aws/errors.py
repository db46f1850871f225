"""Translate botocore errors into whisperq's core errors, marking which are retryable."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from whisperq.core.errors import TransientError, WhisperqError

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "TransactionConflictException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_NETWORK_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_retryable(exc: BaseException) -> bool:
    """Whether an AWS call that raised `exc` may succeed when tried again."""
    if isinstance(exc, WhisperqError):
        return exc.retryable
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in RETRYABLE_CODES or status >= 500
    return isinstance(exc, _NETWORK_ERRORS + (ConnectionError, TimeoutError))


def as_core_error(exc: BaseException, what: str) -> WhisperqError:
    """A core error describing a failed AWS call; retryable ones become TransientError."""
    if isinstance(exc, WhisperqError):
        return exc
    if is_retryable(exc):
        return TransientError(f"{what}: {exc}")
    if isinstance(exc, ClientError | BotoCoreError):
        return WhisperqError(f"{what}: {exc}")
    return WhisperqError(f"{what}: {type(exc).__name__}: {exc}")
