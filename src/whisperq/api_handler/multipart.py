"""multipart/form-data bodies (what OpenAI's clients send), parsed with the standard library."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from whisperq.core.errors import InvalidRequest


def parse_form(content_type: str | None, body: bytes) -> dict[str, list[Any]]:
    """Field name -> values: a text field's value as str, a file part's as (filename, bytes)."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequest("send the audio as multipart/form-data (Content-Type: multipart/form-data; boundary=...)")
    if "boundary=" not in content_type:
        raise InvalidRequest("the multipart/form-data Content-Type has no boundary")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    if not message.is_multipart() or message.defects:
        raise InvalidRequest("the multipart/form-data body could not be parsed")
    fields: dict[str, list[Any]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            fields.setdefault(str(name), []).append((filename, payload))
        else:
            charset = part.get_content_charset() or "utf-8"
            try:
                fields.setdefault(str(name), []).append(payload.decode(charset))
            except (UnicodeDecodeError, LookupError) as exc:
                raise InvalidRequest(f"form field {name!r} is not valid {charset} text") from exc
    return fields
