"""Output writers, chosen from a registry by format name (after whisper/utils.py)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable

from whisperq.core.transcript import Segment, Transcript

MAX_LINE_CHARS = 42
MAX_LINES = 2

Writer = Callable[[Transcript], str]
WRITERS: dict[str, Writer] = {}
CONTENT_TYPES: dict[str, str] = {}


def register(fmt: str, content_type: str) -> Callable[[Writer], Writer]:
    def decorate(writer: Writer) -> Writer:
        WRITERS[fmt] = writer
        CONTENT_TYPES[fmt] = content_type
        return writer

    return decorate


def _timestamp(seconds: float, decimal_marker: str, always_hours: bool) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


Cue = tuple[float, float, str, str | None]  # start, end, text, speaker (diarized jobs)


def _cues(segments: tuple[Segment, ...]) -> list[Cue]:
    """Segment-level cues (one per spoken segment), for formats without line limits."""
    return [(s.start, s.end, s.text.strip(), s.speaker) for s in segments if s.text.strip()]


def _said_by(speaker: str | None, text: str) -> str:
    """`[SPEAKER_00] text` for a diarized line (the convention of whisperX and most subtitle tools)."""
    return f"[{speaker}] {text}" if speaker else text


def subtitle_cues(segments: tuple[Segment, ...], max_line_chars: int = MAX_LINE_CHARS,
                  max_lines: int = MAX_LINES) -> list[Cue]:
    """Cues of at most `max_lines` lines of `max_line_chars` characters (the common broadcast
    guideline is 2 x 42); a longer segment is split at word boundaries into several cues."""
    cues = []
    for segment in segments:
        text = segment.text.strip()
        if not text:
            continue
        lines = textwrap.wrap(text, max_line_chars, break_long_words=False)
        if len(lines) <= max_lines:
            cues.append((segment.start, segment.end, "\n".join(lines), segment.speaker))
            continue
        chunk: list[tuple[str, float, float]] = []
        for token in (t[:3] for t in segment.timed_words()):
            candidate = " ".join(t[0] for t in [*chunk, token])
            if chunk and len(textwrap.wrap(candidate, max_line_chars, break_long_words=False)) > max_lines:
                cues.append(_cue(chunk, max_line_chars, segment.speaker))
                chunk = []
            chunk.append(token)
        if chunk:
            cues.append(_cue(chunk, max_line_chars, segment.speaker))
    return cues


def _cue(tokens: list[tuple[str, float, float]], max_line_chars: int, speaker: str | None) -> Cue:
    text = " ".join(t[0] for t in tokens)
    return tokens[0][1], tokens[-1][2], "\n".join(textwrap.wrap(text, max_line_chars, break_long_words=False)), speaker


@register("txt", "text/plain; charset=utf-8")
def write_txt(transcript: Transcript) -> str:
    lines = [_said_by(seg.speaker, seg.text.strip()) for seg in transcript.segments if seg.text.strip()]
    return "\n".join(lines) + "\n"


@register("json", "application/json")
def write_json(transcript: Transcript) -> str:
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n"


@register("srt", "application/x-subrip; charset=utf-8")
def write_srt(transcript: Transcript) -> str:
    blocks = []
    for index, (start, end, text, speaker) in enumerate(subtitle_cues(transcript.segments), start=1):
        blocks.append(f"{index}\n{_timestamp(start, ',', True)} --> {_timestamp(end, ',', True)}\n"
                      f"{_said_by(speaker, text)}\n")
    return "\n".join(blocks)


@register("vtt", "text/vtt; charset=utf-8")
def write_vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text, speaker in subtitle_cues(transcript.segments):
        voiced = f"<v {speaker}>{text}" if speaker else text  # WebVTT's voice span names who speaks the cue
        blocks.append(f"{_timestamp(start, '.', False)} --> {_timestamp(end, '.', False)}\n{voiced}\n")
    return "\n".join(blocks)


@register("tsv", "text/tab-separated-values; charset=utf-8")
def write_tsv(transcript: Transcript) -> str:
    # Integer milliseconds, as whisper's own tsv writer does.
    # A speaker column for diarized transcripts only: an undiarized file keeps whisper's three columns.
    diarized = bool(transcript.speakers)
    rows = ["start\tend\tspeaker\ttext" if diarized else "start\tend\ttext"]
    for start, end, text, speaker in _cues(transcript.segments):
        who = f"{speaker or ''}\t" if diarized else ""
        rows.append(f"{round(start * 1000)}\t{round(end * 1000)}\t{who}{text.replace(chr(9), ' ')}")
    return "\n".join(rows) + "\n"


def render_all(transcript: Transcript) -> dict[str, str]:
    """Every registered format of one transcript, by format name."""
    return {fmt: writer(transcript) for fmt, writer in WRITERS.items()}
