"""Speakers on a transcript: who spoke when (a diarizer's turns), given to each segment and word.

A word gets the speaker whose turns overlap it most (the nearest turn within a second when it falls in a
gap between turns); a segment that spans a change of speaker is split at the word where the speaker
changes, so that every segment has one speaker. Labels are SPEAKER_00, SPEAKER_01... in the order the
voices are first heard.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace

from whisperq.core.transcript import Segment, Speaker, Transcript

MAX_SPEAKERS = 20
NEAREST_TURN_S = 1.0  # a word in a pause takes the speaker of a turn this close to it


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of speech by one speaker (seconds from the start of the recording)."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class SpeakerHints:
    """What a client knows of the number of speakers: exactly `count`, or at least `least` and at most
    `most` (None: as many as the diarizer finds)."""

    count: int | None = None
    least: int = 1
    most: int | None = None


def label(index: int) -> str:
    return f"SPEAKER_{index:02d}"


def relabel(turns: Sequence[SpeakerTurn]) -> list[SpeakerTurn]:
    """The turns in time order, their speakers renamed SPEAKER_00... by first appearance."""
    names: dict[str, str] = {}
    out = []
    for turn in sorted(turns, key=lambda t: (t.start, t.end)):
        name = names.setdefault(turn.speaker, label(len(names)))
        out.append(replace(turn, speaker=name))
    return out


def totals(turns: Sequence[SpeakerTurn]) -> tuple[Speaker, ...]:
    """Each speaker's total speaking time, by label."""
    seconds: dict[str, float] = {}
    for turn in turns:
        seconds[turn.speaker] = seconds.get(turn.speaker, 0.0) + (turn.end - turn.start)
    return tuple(Speaker(name, round(seconds[name], 2)) for name in sorted(seconds))


class _Timeline:
    """The turns, searchable by time."""

    def __init__(self, turns: Sequence[SpeakerTurn]):
        self.turns = sorted(turns, key=lambda t: t.start)
        self.starts = [t.start for t in self.turns]
        self.longest_s = max((t.end - t.start for t in self.turns), default=0.0)

    def speaker_of(self, start: float, end: float) -> str | None:
        if not self.turns:
            return None
        overlap: dict[str, float] = {}
        first = bisect.bisect_left(self.starts, start - self.longest_s)
        for turn in self.turns[first:bisect.bisect_right(self.starts, end)]:
            shared = min(end, turn.end) - max(start, turn.start)
            if shared > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
        if overlap:
            return max(overlap, key=lambda name: overlap[name])
        middle = (start + end) / 2
        index = bisect.bisect_left(self.starts, middle)
        near = [self.turns[i] for i in (index - 1, index) if 0 <= i < len(self.turns)]
        distance, speaker = min((max(t.start - middle, middle - t.end, 0.0), t.speaker) for t in near)
        return speaker if distance <= NEAREST_TURN_S else None


def assign(transcript: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """The transcript with a speaker on every segment and word (segments split where the speaker
    changes) and its speakers' totals. No turns (silence, nothing diarizable): no speakers."""
    timeline = _Timeline(turns)
    segments: list[Segment] = []
    for segment in transcript.segments:
        for part in _split(segment, timeline):
            segments.append(replace(part, id=len(segments)))
    # Only the voices the transcript's words were heard in, renumbered in the order the words come.
    names: dict[str, str] = {}
    for segment in segments:
        if segment.speaker:
            names.setdefault(segment.speaker, label(len(names)))
    segments = [replace(s, speaker=names.get(s.speaker or ""), words=tuple(
        replace(w, speaker=names.get(w.speaker or "")) for w in s.words)) for s in segments]
    kept = [replace(t, speaker=names[t.speaker]) for t in turns if t.speaker in names]
    return replace(transcript, segments=tuple(segments), speakers=totals(kept))


def _split(segment: Segment, timeline: _Timeline) -> list[Segment]:
    tokens = segment.timed_words()
    if not tokens:
        return [replace(segment, speaker=timeline.speaker_of(segment.start, segment.end))]
    names = [timeline.speaker_of(start, end) for _, start, end, _ in tokens]
    fallback = next((name for name in names if name), None)
    for index, name in enumerate(names):  # a word in a long pause: the speaker before it (or the first)
        names[index] = name or (names[index - 1] if index else fallback)
    runs: list[list[int]] = []
    for index, name in enumerate(names):
        if runs and names[runs[-1][0]] == name:
            runs[-1].append(index)
        else:
            runs.append([index])
    if len(runs) == 1:
        words = tuple(replace(w, speaker=names[0]) for w in segment.words)
        return [replace(segment, speaker=names[0], words=words)]
    parts = []
    for run in runs:
        speaker = names[run[0]]
        words = tuple(replace(w, speaker=speaker) for w in (tokens[i][3] for i in run) if w is not None)
        # The engine's words carry their own spacing; shared-out tokens are joined with spaces.
        text = "".join(w.word for w in words) if words else " " + " ".join(tokens[i][0] for i in run)
        start = segment.start if run[0] == 0 else tokens[run[0]][1]
        end = segment.end if run[-1] == len(tokens) - 1 else tokens[run[-1]][2]
        parts.append(replace(segment, start=start, end=max(end, round(start + 0.01, 3)), text=text, words=words,
                             speaker=speaker))
    return parts

