"""The whisperq HTTP API from Python: create a job, upload straight to storage, wait, download.

The CLI and the load generator use this client; so can any program (see the README)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

import requests

from whisperq import constants
from whisperq.client.errors import (
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    JobFailed,
    ServiceError,
    UnreachableError,
    WaitTimeout,
    for_status,
)
from whisperq.core.audio import content_type_for
from whisperq.core.options import TranscribeOptions

FINAL_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")
# Answers that say "try again later": throttled, or a dependency of the API failing for now.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
Options = Mapping[str, Any] | TranscribeOptions | None


class Job(dict[str, Any]):
    """A job as the API shows it: the JSON object itself (so it prints and serialises as one), with
    typed attributes for what programs read most."""

    @property
    def job_id(self) -> str:
        return str(self["jobId"])

    @property
    def status(self) -> str:
        return str(self["status"])

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def details(self) -> dict[str, Any]:
        return dict(self.get("details") or {})

    @property
    def error(self) -> str | None:
        return self.get("error")

    @property
    def language(self) -> str | None:
        return self.details.get("language")

    @property
    def model(self) -> str | None:
        """The model it asked for (its tier's); `details["model"]` says what transcribed it."""
        return self.get("model")

    @property
    def speakers(self) -> int | None:
        """How many voices a diarized job told apart (None: the job was not diarized)."""
        count = self.details.get("speakers")
        return None if count is None else int(count)

    @property
    def chunks(self) -> tuple[int, int] | None:
        """(done, total) for a long file fanned out across workers, else None."""
        details = self.details
        return (int(details.get("chunksDone") or 0), int(details["chunks"])) if details.get("chunks") else None

    @property
    def transcript_urls(self) -> dict[str, str]:
        """Pre-signed download URLs by format (COMPLETED jobs read one by one)."""
        return dict(self.get("transcriptUrls") or {})


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


def _options(options: Options) -> dict[str, Any]:
    if isinstance(options, TranscribeOptions):
        return options.to_api()
    return dict(options or {})


class Client:
    """One whisperq API: a deployed stack's (`api_url` and its key) or a local twin's."""

    def __init__(self, api_url: str, api_key: str | None = None, *, timeout_s: float = 30.0, retries: int = 3,
                 backoff_s: float = 0.5, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, model: str | None = None):
        """`retries`: how often a request answered 429, 502, 503 or 504 is sent again, with exponential
        backoff (a create with the same Idempotency-Key, so never a second job). `model`: the model every
        job this client creates asks for, unless a call names one (None: the deployment's default)."""
        self.base_url = api_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.session = session or requests.Session()
        if api_key:
            # API Gateway checks it against its usage plan (a deployed stack requires it).
            self.session.headers["x-api-key"] = api_key

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """$WHISPERQ_API_URL and $WHISPERQ_API_KEY (what `whisperq local up` prints for the twin)."""
        url = os.environ.get(constants.API_URL)
        if not url:
            raise UnreachableError(f"set {constants.API_URL} (and {constants.API_KEY}) to the API to use")
        return cls(url, os.environ.get(constants.API_KEY), **kwargs)

    # --- HTTP ----------------------------------------------------------------------------
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
            raise UnreachableError(f"cannot reach the whisperq API at {self.base_url} ({type(exc).__name__})") from exc
        except requests.Timeout as exc:
            raise WaitTimeout(f"the whisperq API at {self.base_url} did not answer in {self.timeout_s:.0f} s") from exc

    def _payload(self, response: requests.Response, url: str) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code == 403 and "x-api-key" not in self.session.headers:
            raise AuthenticationError(f"the API at {self.base_url} needs an API key: pass --api-key or set "
                                      f"{constants.API_KEY}", 403, "forbidden")
        if response.status_code >= 400:
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            message = error.get("message") or f"HTTP {response.status_code} from {url}"
            raise for_status(response.status_code)(message, response.status_code, error.get("code"))
        return payload if isinstance(payload, dict) else {"value": payload}

    # --- jobs ----------------------------------------------------------------------------
    def _body(self, body: dict[str, Any], model: str | None) -> dict[str, Any]:
        if model or self.model:
            body["model"] = model or self.model
        return body

    def create_upload(self, filename: str, content_type: str | None = None, options: Options = None, *,
                      size_bytes: int, model: str | None = None) -> dict[str, Any]:
        """A job waiting for its audio, and where to PUT it (`uploadUrl`, `uploadHeaders`): a URL signed for
        a body of exactly `size_bytes`. `model`: one of the deployment's models (`models()`)."""
        body = self._body({"filename": filename, "contentType": content_type or content_type_for(filename),
                           "contentLength": size_bytes}, model)
        if options:
            body["options"] = _options(options)
        # One key for this create and every retry of it: a lost answer never makes a second job.
        return self._request("POST", "/upload", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def create_job(self, filename: str, content_type: str | None = None, options: Options = None,
                   callback_url: str | None = None, model: str | None = None) -> Job:
        """A job waiting for its audio (`POST /jobs`), with `upload`: a pre-signed POST form whose
        policy S3 enforces (this key, this content type, the size limit)."""
        body = self._body({"filename": filename, "contentType": content_type or content_type_for(filename)}, model)
        if options:
            body["options"] = _options(options)
        if callback_url:
            body["callbackUrl"] = callback_url
        return Job(self._request("POST", "/jobs", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}))

    def create_job_from(self, source: str, options: Options = None, *, filename: str | None = None,
                        content_type: str | None = None, callback_url: str | None = None,
                        idempotency_key: str | None = None, model: str | None = None) -> Job:
        """A job whose audio is already somewhere (`POST /jobs` with `source`): `s3://bucket/key` in a bucket
        granted to the deployment (copied server-side, no byte through this machine), or an `https://` URL
        (fetched by a worker). The name and type default to the key's or URL's. Give `idempotency_key` to
        make a create sent again (a resumed bulk run) find the job it made."""
        body = self._body({"source": source}, model)
        if filename:
            body["filename"] = filename
        if content_type:
            body["contentType"] = content_type
        if options:
            body["options"] = _options(options)
        if callback_url:
            body["callbackUrl"] = callback_url
        return Job(self._request("POST", "/jobs", json=body,
                                 headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}))

    def transcribe_from(self, source: str, options: Options = None, timeout_s: float = 1800.0,
                        on_update: Callable[[Job], None] | None = None, poll_s: float = 0.5) -> Job:
        """`create_job_from`, wait, and return the COMPLETED job; JobFailed (with the job) if it ended
        otherwise (a refused URL, a fetch that failed: the job's error says why)."""
        job = self.wait(self.create_job_from(source, options).job_id, timeout_s, on_update, poll_s)
        if job.status != "COMPLETED":
            raise JobFailed(job)
        return job

    def upload(self, job: Mapping[str, Any], path: str, on_progress: Callable[[int], None] | None = None) -> None:
        """Send the file straight to storage with the job's pre-signed URL."""
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            self._put(job, _ProgressReader(handle, size, on_progress), path)

    def upload_bytes(self, job: Mapping[str, Any], data: bytes) -> None:
        self._put(job, data, str(job.get("jobId")))

    def _put(self, job: Mapping[str, Any], data: Any, what: str) -> None:
        try:
            response = requests.request(job.get("uploadMethod", "PUT"), job["uploadUrl"], data=data,
                                        headers=dict(job.get("uploadHeaders") or {}),
                                        timeout=max(self.timeout_s, 300))
        except requests.RequestException as exc:
            raise UnreachableError(f"upload of {what} failed: {exc}") from exc
        if response.status_code >= 300:
            raise ServiceError(f"upload of {what} was refused by storage (HTTP {response.status_code}): "
                               f"{response.text[:300]}", response.status_code)

    def submit(self, path: str, options: Options = None, on_progress: Callable[[int], None] | None = None,
               model: str | None = None) -> Job:
        """Create a job for the file at `path` and upload it; the job as it stands after the upload. An
        empty file or one of a type the service does not take is refused before any job is made."""
        content_type_for(path)
        if os.path.getsize(path) == 0:
            raise InvalidRequestError(f"{path} is empty (0 bytes): nothing to transcribe", code="empty_file")
        created = self.create_upload(os.path.basename(path), None, options, size_bytes=os.path.getsize(path),
                                     model=model)
        self.upload(created, path, on_progress)
        return self.get(created["jobId"])

    def get(self, job_id: str) -> Job:
        return Job(self._request("GET", f"/jobs/{job_id}"))

    status = get

    def wait(self, job_id: str, timeout_s: float = 1800.0, on_update: Callable[[Job], None] | None = None,
             poll_s: float = 0.5) -> Job:
        """Poll until the job ends (COMPLETED, FAILED or CANCELLED); WaitTimeout after `timeout_s`.
        `on_update` hears of every change of status, and of each chunk done when the job was fanned out."""
        deadline = time.monotonic() + timeout_s
        last_seen = None
        while True:
            job = self.get(job_id)
            seen = (job.status, job.details.get("chunksDone"))
            if on_update and seen != last_seen:
                on_update(job)
            last_seen = seen
            if job.is_final:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout_s:.0f} s; it keeps running: "
                                  f"check it with `whisperq status {job_id}`", job_id)
            time.sleep(poll_s)

    def transcribe(self, path: str, options: Options = None, timeout_s: float = 1800.0,
                   on_update: Callable[[Job], None] | None = None, poll_s: float = 0.5,
                   model: str | None = None) -> Job:
        """Submit, wait, and return the COMPLETED job; JobFailed (with the job) if it ended otherwise."""
        job = self.wait(self.submit(path, options, model=model).job_id, timeout_s, on_update, poll_s)
        if job.status != "COMPLETED":
            raise JobFailed(job)
        return job

    def models(self) -> list[dict[str, Any]]:
        """The deployment's models (GET /v1/models), with their languages, size and speed; `default` marks
        the one a job gets without `model`."""
        return list(self._request("GET", "/v1/models").get("data") or [])

    def list_jobs(self, status: str | None = None, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        """One page: {"jobs": [...], "nextCursor": ...}, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        page = self._request("GET", "/jobs", params=params)
        page["jobs"] = [Job(job) for job in page.get("jobs", [])]
        return page

    def iter_jobs(self, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Every job of this key, newest first, page by page."""
        cursor = None
        while True:
            page = self.list_jobs(status, page_size, cursor)
            yield from page["jobs"]
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> Job:
        return Job(self._request("DELETE", f"/jobs/{job_id}"))

    # --- transcripts ---------------------------------------------------------------------
    def transcript_url(self, job_id: str, fmt: str = "txt") -> str:
        """The pre-signed URL of one format (the API answers with a redirect; we do not follow it)."""
        payload = self._request("GET", f"/jobs/{job_id}/transcript", params={"format": fmt}, allow_redirects=False)
        return str(payload["transcriptUrl"])

    def transcript(self, job_id: str, fmt: str = "txt") -> str:
        """The transcript of a COMPLETED job as text (txt, srt, vtt, tsv or json)."""
        return self.download_text(self.transcript_url(job_id, fmt))

    def download(self, url: str, path: str) -> int:
        """Stream a pre-signed URL to a file; the bytes written."""
        try:
            with requests.get(url, stream=True, timeout=max(self.timeout_s, 120)) as response:
                if response.status_code != 200:
                    raise ServiceError(f"download refused by storage (HTTP {response.status_code})",
                                       response.status_code)
                written = 0
                with open(path, "wb") as handle:
                    for chunk in response.iter_content(1 << 16):
                        handle.write(chunk)
                        written += len(chunk)
                return written
        except requests.RequestException as exc:
            raise UnreachableError(f"download failed: {exc}") from exc

    def download_text(self, url: str) -> str:
        try:
            response = requests.get(url, timeout=max(self.timeout_s, 120))
        except requests.RequestException as exc:
            raise UnreachableError(f"download failed: {exc}") from exc
        if response.status_code != 200:
            raise ServiceError(f"download refused by storage (HTTP {response.status_code})", response.status_code)
        response.encoding = "utf-8"
        return response.text


__all__ = ["ApiError", "Client", "Job"]
