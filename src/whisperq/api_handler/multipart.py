"""multipart/form-data bodies (what OpenAI's clients send), split at their boundary (RFC 7578): a few
bytes operations for the audio, the standard library's parser for each part's headers only."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from whisperq.core.errors import InvalidRequest

_MALFORMED = "the multipart/form-data body could not be parsed"


def _boundary(content_type: str | None) -> bytes:
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequest("send the audio as multipart/form-data (Content-Type: multipart/form-data; boundary=...)")
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise InvalidRequest("the multipart/form-data Content-Type has no boundary")
    return boundary.encode("latin-1")


def parse_form(content_type: str | None, body: bytes) -> dict[str, list[Any]]:
    """Field name -> values: a text field's value as str, a file part's as (filename, bytes)."""
    delimiter = b"\r\n--" + _boundary(content_type)
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise InvalidRequest(_MALFORMED)
    fields: dict[str, list[Any]] = {}
    for section in sections[1:-1]:
        head, separator, payload = section.partition(b"\r\n\r\n")
        if not separator or not head.startswith(b"\r\n"):
            raise InvalidRequest(_MALFORMED)
        headers = BytesParser(policy=HTTP).parsebytes(head[2:] + b"\r\n\r\n", headersonly=True)
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        filename = headers.get_filename()
        if filename is not None:
            fields.setdefault(name, []).append((filename, payload))
            continue
        charset = headers.get_content_charset() or "utf-8"
        try:
            fields.setdefault(name, []).append(payload.decode(charset))
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidRequest(f"form field {name!r} is not valid {charset} text") from exc
    return fields
