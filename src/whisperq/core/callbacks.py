"""Completion callbacks: which URLs are acceptable, and how a delivery is signed."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from whisperq.core.addresses import is_private_host
from whisperq.core.errors import InvalidRequest

MAX_URL_CHARS = 2048
SIGNATURE_HEADER = "X-Whisperq-Signature"
TIMESTAMP_HEADER = "X-Whisperq-Timestamp"


def validate_callback_url(url: object, allow_private: bool) -> str:
    """An http(s) URL; unless `allow_private`, its host must not be a private, loopback or link-local
    address (the host name is checked again, resolved, when the callback is sent)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"callbackUrl must be an http(s) URL of at most {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("callbackUrl must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise InvalidRequest("callbackUrl must not carry credentials")
    if not allow_private and is_private_host(parts.hostname):
        raise InvalidRequest("callbackUrl must not point at a private, loopback or link-local address")
    return url


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 over "<timestamp>.<body>"."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Check a delivery as a receiver would (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
