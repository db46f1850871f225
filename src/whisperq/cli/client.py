"""A small client of the whisperq HTTP API (the CLI's only way into a deployment)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

import requests

from whisperq.cli.errors import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_SERVICE_ERROR,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
)

FINAL_STATUSES = ("COMPLETED", "FAILED")


class _ProgressReader:
    """A file wrapper with a length (so requests sends Content-Length, which S3 needs) that
    reports how many bytes have been read."""

    def __init__(self, handle: BinaryIO, size: int, on_read: Callable[[int], None] | None):
        self._handle = handle
        self._size = size
        self._on_read = on_read

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        chunk = self._handle.read(amount)
        if chunk and self._on_read:
            self._on_read(len(chunk))
        return chunk


# Answers that say "try again later": throttled, or a dependency of the API failing for now.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ApiClient:
    def __init__(self, base_url: str, timeout_s: float = 30.0, session: requests.Session | None = None,
                 api_key: str | None = None, retries: int = 3, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep):
        """`retries`: how often a request answered 429, 502, 503 or 504 is sent again, with
        exponential backoff (a create with the same Idempotency-Key, so never a second job)."""
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.session = session or requests.Session()
        if api_key:
            # API Gateway checks it against its usage plan (a deployed stack requires it).
            self.session.headers["x-api-key"] = api_key

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            response = self._send(method, url, **kwargs)
            if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                break
            self.sleep(self.backoff_s * 2 ** attempt)
        return self._payload(response, url)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.ConnectionError as exc:
            raise CliError(f"cannot reach the whisperq API at {self.base_url} ({type(exc).__name__})",
                           EXIT_UNREACHABLE) from exc
        except requests.Timeout as exc:
            raise CliError(f"the whisperq API at {self.base_url} did not answer in {self.timeout_s:.0f} s",
                           EXIT_TIMEOUT) from exc

    def _payload(self, response: requests.Response, url: str) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code == 403 and "x-api-key" not in self.session.headers:
            raise CliError(f"the API at {self.base_url} needs an API key: pass --api-key or set WHISPERQ_API_KEY",
                           EXIT_AUTH)
        if response.status_code >= 400:
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            message = error.get("message") or f"HTTP {response.status_code} from {url}"
            code = {400: EXIT_USAGE, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND, 405: EXIT_USAGE,
                    409: EXIT_CONFLICT}.get(response.status_code)
            if code is None:
                code = EXIT_USAGE if response.status_code < 500 else EXIT_SERVICE_ERROR
            raise CliError(message, code)
        return payload

    def create_upload(self, filename: str, content_type: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"filename": filename, "contentType": content_type}
        if options:
            body["options"] = options
        # One key for this create and every retry of it: a lost answer never makes a second job.
        return self._request("POST", "/upload", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def list_jobs(self, status: str | None = None, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", "/jobs", params=params)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/jobs/{job_id}")

    def transcript_url(self, job_id: str, fmt: str) -> str:
        """The pre-signed URL of one format (the API answers with a redirect; we do not follow it)."""
        payload = self._request("GET", f"/jobs/{job_id}/transcript", params={"format": fmt}, allow_redirects=False)
        return str(payload["transcriptUrl"])

    def upload(self, job: dict[str, Any], path: str, on_progress: Callable[[int], None] | None = None) -> None:
        """Send the file straight to S3 with the job's pre-signed URL."""
        size = os.path.getsize(path)
        headers = dict(job.get("uploadHeaders") or {})
        with open(path, "rb") as handle:
            try:
                response = requests.request(
                    job.get("uploadMethod", "PUT"), job["uploadUrl"],
                    data=_ProgressReader(handle, size, on_progress), headers=headers,
                    timeout=max(self.timeout_s, 300),
                )
            except requests.RequestException as exc:
                raise CliError(f"upload of {path} failed: {exc}", EXIT_UNREACHABLE) from exc
        if response.status_code >= 300:
            raise CliError(f"upload of {path} was refused by storage (HTTP {response.status_code}): "
                           f"{response.text[:300]}", EXIT_SERVICE_ERROR)

    def status(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/status/{job_id}")

    def wait(self, job_id: str, timeout_s: float, on_update: Callable[[dict[str, Any]], None] | None = None,
             poll_s: float = 0.5) -> dict[str, Any]:
        """Poll until the job is COMPLETED or FAILED; CliError(EXIT_TIMEOUT) after timeout_s. `on_update`
        hears of every change of status, and of each chunk done when the job was fanned out."""
        deadline = time.monotonic() + timeout_s
        last_seen = None
        while True:
            job = self.status(job_id)
            seen = (job["status"], (job.get("details") or {}).get("chunksDone"))
            if on_update and seen != last_seen:
                on_update(job)
            last_seen = seen
            if job["status"] in FINAL_STATUSES:
                return job
            if time.monotonic() >= deadline:
                raise CliError(
                    f"job {job_id} is still {job['status']} after {timeout_s:.0f} s; "
                    f"it keeps running: check it with `whisperq status {job_id}`", EXIT_TIMEOUT)
            time.sleep(poll_s)

    def download(self, url: str, path: str) -> int:
        """Stream a pre-signed URL to a file; the bytes written."""
        try:
            with requests.get(url, stream=True, timeout=max(self.timeout_s, 120)) as response:
                if response.status_code != 200:
                    raise CliError(f"download refused by storage (HTTP {response.status_code})", EXIT_SERVICE_ERROR)
                written = 0
                with open(path, "wb") as handle:
                    for chunk in response.iter_content(1 << 16):
                        handle.write(chunk)
                        written += len(chunk)
                return written
        except requests.RequestException as exc:
            raise CliError(f"download failed: {exc}", EXIT_UNREACHABLE) from exc

    def download_text(self, url: str) -> str:
        try:
            response = requests.get(url, timeout=max(self.timeout_s, 120))
        except requests.RequestException as exc:
            raise CliError(f"download failed: {exc}", EXIT_UNREACHABLE) from exc
        if response.status_code != 200:
            raise CliError(f"download refused by storage (HTTP {response.status_code})", EXIT_SERVICE_ERROR)
        response.encoding = "utf-8"
        return response.text
