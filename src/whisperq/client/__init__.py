"""The whisperq Python SDK: `Client(api_url, api_key).transcribe("talk.wav")`."""

from whisperq.client.api import FINAL_STATUSES, Client, Job
from whisperq.client.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    JobFailed,
    NotFoundError,
    ServiceError,
    UnreachableError,
    WaitTimeout,
)

__all__ = ["FINAL_STATUSES", "ApiError", "AuthenticationError", "Client", "ConflictError", "InvalidRequestError",
           "Job", "JobFailed", "NotFoundError", "ServiceError", "UnreachableError", "WaitTimeout"]
