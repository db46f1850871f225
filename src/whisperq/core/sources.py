"""Audio that is already somewhere: where a job's audio may come from besides an upload, checked before
anything is fetched or copied.

- `s3://bucket/key`: an object in a bucket the deployment was granted; the API copies it server-side.
- `https://host/path`: fetched by a worker through the guarded way out (transcriber/egress.py).
- a drop folder (the inbox prefix of the deployment's bucket): an object put there becomes a job by itself,
  one job per object version, with its transcripts written beside it.
"""

from __future__ import annotations

import json
import posixpath
import re
import unicodedata
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from whisperq.core.addresses import is_private_host
from whisperq.core.errors import InvalidRequest

MAX_SOURCE_CHARS = 2048
S3_SCHEME = "s3://"
# S3's rules for bucket names (3-63 lowercase letters, digits, dots, hyphens; a letter or digit at each end).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
FETCH_MESSAGE_KIND = "whisperq.fetch"
INBOX_NAMESPACE = uuid.UUID("0e5d3c1a-7b9f-4e2d-8c6a-5f4b3a291807")


class SourceRefused(InvalidRequest):
    """A source the deployment may not take: a bucket not granted, a missing or oversized object, a URL
    that is not https or that points at a private, loopback or link-local address."""

    code = "source_refused"


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"

    @property
    def filename(self) -> str:
        return posixpath.basename(self.key)


@dataclass(frozen=True)
class WebAudio:
    url: str

    def __str__(self) -> str:
        return self.url

    @property
    def filename(self) -> str:
        return posixpath.basename(unquote(urlsplit(self.url).path)) or "audio"


Source = S3Object | WebAudio


def parse_s3(raw: str) -> tuple[str, str]:
    """s3://bucket/key (or s3://bucket/prefix/) as (bucket, key); the key may be empty."""
    if not raw.startswith(S3_SCHEME):
        raise SourceRefused(f"{raw[:100]!r} is not an s3:// location")
    bucket, _, key = raw[len(S3_SCHEME):].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise SourceRefused(f"{bucket!r} is not a valid S3 bucket name")
    return bucket, key


def parse_source(raw: object, allow_private: bool = False) -> Source:
    """A job's `source`, checked as far as can be without the network: an s3:// object, or an https URL
    whose host is not a literal private, loopback or link-local address (a name is checked again when it
    is resolved, and each redirect too). `allow_private` (the twin's tests) also takes http and local hosts."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_SOURCE_CHARS:
        raise SourceRefused(f"source must be an s3://bucket/key location or an https:// URL of at most "
                            f"{MAX_SOURCE_CHARS} characters")
    if raw.startswith(S3_SCHEME):
        bucket, key = parse_s3(raw)
        if not key or key.endswith("/"):
            raise SourceRefused(f"{raw[:100]!r} names no object: give s3://bucket/key of one audio file "
                                "(a whole prefix: `whisperq transcribe s3://bucket/prefix/`)")
        return S3Object(bucket, key)
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in raw):
        raise SourceRefused("source must not contain spaces or control characters (percent-encode them)")
    parts = urlsplit(raw)
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme.lower() not in schemes:
        raise SourceRefused(f"source URLs must be https:// (got {parts.scheme or 'no scheme'}://)")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
        if host:
            host.encode("idna")  # raises on a name no resolver takes ("a..example.com")
    except (ValueError, UnicodeError):
        raise SourceRefused(f"{raw[:100]!r} has an invalid host or port") from None
    if not host:
        raise SourceRefused("source URL has no host")
    if parts.username or parts.password:
        raise SourceRefused("source URL must not carry credentials")
    if not allow_private and is_private_host(host):
        raise SourceRefused(f"source URL points at {host}, a private, loopback or link-local address")
    return WebAudio(raw)


# --- the fetch of a URL, queued for a worker ---------------------------------------------------------
def fetch_message(job_id: str) -> str:
    """The queue message that has a worker fetch a job's audio from its URL."""
    return json.dumps({"kind": FETCH_MESSAGE_KIND, "jobId": job_id})


def parse_fetch_message(body: str) -> str | None:
    """The job id of a fetch message; None for any other message."""
    if '"kind"' not in body or FETCH_MESSAGE_KIND not in body:
        return None
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get("kind") != FETCH_MESSAGE_KIND:
        return None
    job_id = payload.get("jobId")
    if not isinstance(job_id, str):
        raise ValueError(f"fetch message without a job id: {body[:200]!r}")
    return job_id


# --- the drop folder -----------------------------------------------------------------------------------
def in_inbox(key: str, inbox_prefix: str) -> bool:
    return bool(inbox_prefix) and key.startswith(inbox_prefix) and len(key) > len(inbox_prefix)


def inbox_job_id(bucket: str, key: str, version: str) -> str:
    """The job of one version of a dropped object: the same event delivered twice names the same job."""
    return str(uuid.uuid5(INBOX_NAMESPACE, f"{bucket}\n{key}\n{version}"))


def outputs_stem(key: str, inbox_prefix: str, output_prefix: str) -> str:
    """Where a dropped object's transcripts go, as the stem of `<stem>.<format>`: beside it (the key
    itself), or under `output_prefix` with the key's path below the inbox."""
    if not output_prefix:
        return key
    return output_prefix + key[len(inbox_prefix):]
