"""Accepted audio types and the limits put on an upload."""

from __future__ import annotations

import os

from whisperq.core.errors import InvalidRequest

# content type -> the extensions that usually carry it
AUDIO_CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    "audio/wav": (".wav",),
    "audio/x-wav": (".wav",),
    "audio/wave": (".wav",),
    "audio/flac": (".flac",),
    "audio/x-flac": (".flac",),
    "audio/mpeg": (".mp3",),
    "audio/mp3": (".mp3",),
    "audio/mp4": (".m4a", ".mp4"),
    "audio/x-m4a": (".m4a",),
    "audio/aac": (".aac",),
    "audio/ogg": (".ogg", ".oga", ".opus"),
    "audio/opus": (".opus",),
    "audio/webm": (".webm",),
}

_BY_EXTENSION = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
}


def validate_content_type(content_type: object) -> str:
    """Return the normalised content type, or raise InvalidRequest naming the accepted ones."""
    if not isinstance(content_type, str) or not content_type.strip():
        raise InvalidRequest("contentType must be a non-empty string such as 'audio/wav'")
    normalised = content_type.split(";", 1)[0].strip().lower()
    if normalised not in AUDIO_CONTENT_TYPES:
        accepted = ", ".join(sorted(AUDIO_CONTENT_TYPES))
        raise InvalidRequest(f"contentType {content_type!r} is not accepted; use one of: {accepted}")
    return normalised


def content_type_for(filename: str) -> str:
    """The content type a client should declare for a local file, from its extension."""
    ext = os.path.splitext(filename)[1].lower()
    try:
        return _BY_EXTENSION[ext]
    except KeyError:
        accepted = ", ".join(sorted(_BY_EXTENSION))
        raise InvalidRequest(f"{filename}: unsupported file type {ext or '(none)'}; use one of: {accepted}") from None
