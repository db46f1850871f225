"""Page cursors of the jobs list: opaque to clients, the start key of the next page inside."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from whisperq.core.errors import InvalidRequest


def encode_cursor(key: Mapping[str, str]) -> str:
    """An opaque page cursor from the keys of the last item returned."""
    raw = json.dumps(dict(key), separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, owner: str) -> dict[str, str]:
    """The start key a cursor stands for; InvalidRequest when it is not one of ours or not the owner's."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise InvalidRequest("cursor is not a valid page cursor; pass nextCursor back unchanged") from exc
    if not isinstance(key, dict) or set(key) != {"jobId", "owner", "createdAt"} or key["owner"] != owner:
        raise InvalidRequest("cursor is not a valid page cursor; pass nextCursor back unchanged")
    if not all(isinstance(value, str) for value in key.values()):
        raise InvalidRequest("cursor is not a valid page cursor; pass nextCursor back unchanged")
    return key
