"""Delivering completion callbacks: the job's final state, POSTed as JSON, signed with HMAC-SHA256
over "<timestamp>.<body>", retried with backoff a bounded number of times. A callback that keeps
failing is recorded on the job and never changes its outcome."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity

from whisperq.aws.jobs_table import JobsTable
from whisperq.config import Settings
from whisperq.core.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, is_private_host, sign
from whisperq.core.errors import WhisperqError
from whisperq.core.jobs import Job


class CallbackRefused(Exception):
    """The callback's host resolves to an address callbacks may not reach."""


class CallbackFailed(Exception):
    """The receiver answered with an error status."""


def _check_resolved(url: str) -> None:
    # Checked again at send time: a public name could have been pointed at a private address since.
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise CallbackRefused(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        if is_private_host(str(info[4][0])):
            raise CallbackRefused(f"{host} resolves to a private address")


def deliver(url: str, payload: dict[str, Any], secret: str, allow_private: bool, attempts: int = 4,
            timeout_s: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> str:
    """POST the payload; returns "delivered (HTTP n)" or raises after the last attempt."""
    if not allow_private:
        _check_resolved(url)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def once() -> str:
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(secret, timestamp, body), "User-Agent": "whisperq-callback"}
        response = requests.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
        if response.status_code >= 300:
            raise CallbackFailed(f"HTTP {response.status_code}")
        return f"delivered (HTTP {response.status_code})"

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=8),
        retry=tenacity.retry_if_exception_type((requests.RequestException, CallbackFailed)),
        sleep=sleep,
        reraise=True,
    )
    return retrying(once)


def notify(job: Job, settings: Settings, jobs: JobsTable, metrics: Any, log: Any,
           sleep: Callable[[float], None]) -> None:
    """POST a final job to its callback URL, if it has one, and record the outcome on the job
    (`callbackStatus`); a receiver that fails is logged and counted, never raised."""
    url = job.callback_url
    if not url:
        return
    if not settings.callback_secret:
        outcome = "not sent: no callback signing secret is configured (WHISPERQ_CALLBACK_SECRET)"
    else:
        payload = {
            "jobId": job.job_id, "status": job.status.value, "filename": job.filename,
            "createdAt": job.created_at, "updatedAt": job.updated_at, "attempts": job.attempts,
            "error": job.error, "transcriptKeys": dict(job.transcript_keys),
            "audioDurationS": job.run.audio_duration_s, "language": job.run.language,
        }
        try:
            outcome = deliver(url, payload, settings.callback_secret, settings.allow_private_callbacks, sleep=sleep)
        except Exception as exc:  # noqa: BLE001 - a failing receiver never changes the job's outcome
            outcome = f"failed: {type(exc).__name__}: {exc}"
            metrics.add_metric("CallbacksFailed", "Count", 1)
            log.warning("callback failed", extra={"callback_url": url, "error": outcome})
    try:
        jobs.set_callback_status(job.job_id, outcome)
    except WhisperqError as exc:  # bookkeeping only: the job's outcome stands
        log.warning("could not record the callback outcome", extra={"error": str(exc)})
