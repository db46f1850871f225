"""Fan-out of one long file: where to cut it, the chunk messages, and merging the chunks back.

Pure: the voice-activity detection that finds the pauses, the queue and the tables live elsewhere.
A chunk is cut in the middle of a pause, so no word is split and the chunks simply follow one
another. Where a stretch of speech has no pause near the target length, the cut is hard and the
two chunks overlap by `overlap_s` around a seam: the merge keeps each word from the chunk whose
side of the seam its middle falls on, so no word is doubled or lost there.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from whisperq.core.transcript import Segment, Transcript, Word

CHUNK_MESSAGE_KIND = "whisperq.chunk"
# A pause is looked for from half to one and a half target lengths into the chunk.
SEARCH_FROM, SEARCH_TO = 0.5, 1.5
# How much longer a pause may lie from the target per second of pause it has (longer pauses are
# surer sentence ends): a 1 s pause beats a 0.2 s one that is up to 4 s nearer the target.
PAUSE_WEIGHT_S_PER_S = 5.0
DEFAULT_OVERLAP_S = 2.0


@dataclass(frozen=True)
class Chunk:
    """One slice of a job's audio, in seconds of the whole file.

    `seam_before_s`/`seam_after_s` are set only at hard cuts (overlapping chunks): words whose
    middle lies before `seam_before_s` or at/after `seam_after_s` belong to the neighbour."""

    index: int
    start_s: float
    end_s: float
    seam_before_s: float | None = None
    seam_after_s: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def has_seam(self) -> bool:
        return self.seam_before_s is not None or self.seam_after_s is not None

    def owns(self, start: float, end: float) -> bool:
        """Whether a stretch of the file (seconds) is this chunk's: its middle lies between the seams."""
        return _inside(start, end, self)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "startS": self.start_s, "endS": self.end_s,
                "seamBeforeS": self.seam_before_s, "seamAfterS": self.seam_after_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(int(data["index"]), float(data["startS"]), float(data["endS"]),
                   _float_or_none(data.get("seamBeforeS")), _float_or_none(data.get("seamAfterS")))


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def plan_chunks(duration_s: float, speech: Sequence[tuple[float, float]], chunk_s: float,
                overlap_s: float = DEFAULT_OVERLAP_S, min_chunk_s: float = 0.0) -> list[Chunk]:
    """Cut `duration_s` seconds of audio into chunks of about `chunk_s`, at pauses between the
    `speech` regions (sorted (start, end) pairs in seconds, as a voice-activity detector finds them).

    Each cut falls between half and one and a half `chunk_s` after the last, and no chunk but the last
    is shorter than `min_chunk_s` (the last chunk may run up to 1.5 `chunk_s`, so that no sliver is left
    at the end)."""
    if chunk_s <= 0:
        raise ValueError("chunk_s must be positive")
    pauses = [(end, start) for (_, end), (start, _) in zip(speech, speech[1:], strict=False) if start > end]
    if speech and speech[0][0] > 0:
        pauses.insert(0, (0.0, speech[0][0]))
    if speech and speech[-1][1] < duration_s:
        pauses.append((speech[-1][1], duration_s))
    if not speech:
        pauses = [(0.0, duration_s)]  # no speech at all: anywhere is a pause
    cuts: list[tuple[float, bool]] = []  # (time, hard)
    start = 0.0
    shortest = max(chunk_s * SEARCH_FROM, min(min_chunk_s, chunk_s))
    while duration_s - start > chunk_s * SEARCH_TO:
        target = start + chunk_s
        low, high = start + shortest, start + chunk_s * SEARCH_TO
        best: tuple[float, float] | None = None
        for pause_start, pause_end in pauses:
            # The part of the pause inside the search window, cut in its middle.
            left, right = max(pause_start, low), min(pause_end, high)
            if right <= left:
                continue
            middle = (left + right) / 2  # as far from the speech on either side as the pause allows
            score = abs(middle - target) - PAUSE_WEIGHT_S_PER_S * min(right - left, 1.0)
            if best is None or score < best[0]:
                best = (score, middle)
        if best is not None:
            cut, hard = round(best[1], 3), False
        else:
            cut, hard = round(target, 3), True
        cuts.append((cut, hard))
        start = cut
    chunks: list[Chunk] = []
    bounds = [(0.0, False), *cuts, (round(duration_s, 3), False)]
    half = overlap_s / 2
    for index in range(len(bounds) - 1):
        (begin, hard_before), (end, hard_after) = bounds[index], bounds[index + 1]
        chunks.append(Chunk(
            index=index,
            start_s=round(max(0.0, begin - half), 3) if hard_before else begin,
            end_s=round(min(duration_s, end + half), 3) if hard_after else end,
            seam_before_s=begin if hard_before else None,
            seam_after_s=end if hard_after else None,
        ))
    return chunks


# --- whole or cut ------------------------------------------------------------------------------
class Cut(enum.StrEnum):
    WHOLE = "whole"  # transcribe the file in this invocation
    FAN_OUT = "fan-out"  # cut it into chunks that every worker can take
    WAIT = "wait"  # not in the time this invocation has left, but a fresh one would: hand it back
    TOO_LONG = "too-long"  # no invocation could transcribe it whole, and it cannot be cut


# How much longer than expected a transcription is allowed to take before it would not fit: a
# timed-out invocation loses all its work, a needless fan-out costs seconds.
SAFETY_FACTOR = 2.0
OVERHEAD_S = 5.0  # writing the outputs, the status updates, a slow moment of the machine


@dataclass(frozen=True)
class Budget:
    """What a worker knows when it decides how to transcribe one file."""

    duration_s: float
    expected_s: float  # the engine's measured speed applied to the file
    time_left_s: float  # in this invocation
    function_timeout_s: float  # a fresh invocation's time
    fanout_min_duration_s: float  # 0: fan-out is off
    chunk_s: float  # the shortest chunk a split makes
    can_split: bool  # there is a queue to send chunks to, and speech to cut
    idle_workers: int | None  # workers that would wait for work besides this one (None: unknown)
    max_concurrency: int


def choose_cut(budget: Budget) -> Cut:
    """Whole or cut. A file that may not finish in the time the invocation has left is cut whenever
    it can be, busy queue or not. Otherwise a file of at least fanout_min_duration_s is cut when other
    workers would wait for work; with every worker busy, splitting would only add cost."""
    b = budget
    splittable = b.can_split and b.fanout_min_duration_s > 0 and b.duration_s >= 2 * b.chunk_s
    if (b.expected_s + OVERHEAD_S) * SAFETY_FACTOR > b.time_left_s and splittable:
        return Cut.FAN_OUT
    if b.expected_s + OVERHEAD_S > b.function_timeout_s and not splittable:
        return Cut.TOO_LONG
    if b.expected_s + OVERHEAD_S > b.time_left_s:
        return Cut.WAIT  # a fresh invocation has the time
    if not splittable or b.duration_s < b.fanout_min_duration_s:
        return Cut.WHOLE
    if b.idle_workers is not None and b.idle_workers < 1:
        return Cut.WHOLE
    return Cut.FAN_OUT


def chunk_count(budget: Budget) -> int:
    """How many chunks a file that is cut becomes: one for each worker that would otherwise wait and
    one for this one (the chunk length follows the idle capacity: two idle workers on a 20-minute file
    take 10 minutes each, not twenty 1-minute chunks that each pay a window's padding and a fetch), never
    shorter than chunk_s, and short enough that each fits a fresh invocation twice over."""
    b = budget
    workers = (b.max_concurrency if b.idle_workers is None else b.idle_workers + 1)
    most = max(1, math.floor(b.duration_s / b.chunk_s))
    # A cut falls within SEARCH_TO of its target: the longest chunk must fit too.
    fresh_s = max(1.0, b.function_timeout_s - OVERHEAD_S * SAFETY_FACTOR)
    to_fit = math.ceil(b.expected_s * SAFETY_FACTOR * SEARCH_TO / fresh_s)
    return max(2, min(workers, most), to_fit)


# --- the chunk message -------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkMessage:
    """What a chunk's queue message carries: the job, the chunk, and where its audio is (under the plan's
    own prefix, chunks/<jobId>/<planId>/)."""

    job_id: str
    count: int
    key: str
    chunk: Chunk

    def to_body(self) -> str:
        return json.dumps({"kind": CHUNK_MESSAGE_KIND, "jobId": self.job_id, "count": self.count,
                           "key": self.key, "chunk": self.chunk.to_dict()}, separators=(",", ":"))


def parse_chunk_message(body: str) -> ChunkMessage | None:
    """The chunk message in a queue body, or None when the body is something else (an S3 event).

    Raises ValueError for a body that says it is a chunk message but is malformed."""
    if '"kind"' not in body or CHUNK_MESSAGE_KIND not in body:
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("kind") != CHUNK_MESSAGE_KIND:
        return None
    try:
        return ChunkMessage(str(data["jobId"]), int(data["count"]), str(data["key"]),
                            Chunk.from_dict(data["chunk"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed chunk message: {body[:200]!r}") from exc


# --- merging -----------------------------------------------------------------------------------
def shift(transcript: Transcript, offset_s: float) -> Transcript:
    """The transcript with every timestamp moved by `offset_s` (a chunk's place in the file)."""

    def move(value: float) -> float:
        return round(value + offset_s, 3)

    segments = tuple(
        replace(seg, start=move(seg.start), end=move(seg.end),
                words=tuple(replace(w, start=move(w.start), end=move(w.end)) for w in seg.words))
        for seg in transcript.segments
    )
    return replace(transcript, segments=segments)


def _inside(start: float, end: float, chunk: Chunk) -> bool:
    middle = (start + end) / 2
    if chunk.seam_before_s is not None and middle < chunk.seam_before_s:
        return False
    return not (chunk.seam_after_s is not None and middle >= chunk.seam_after_s)


def trim_to_seams(segments: Sequence[Segment], chunk: Chunk) -> list[Segment]:
    """The chunk's segments with the words that belong to a neighbour (across a seam) removed."""
    if not chunk.has_seam:
        return list(segments)
    kept: list[Segment] = []
    for seg in segments:
        if not seg.words:  # no word times: decide by the segment's middle
            if _inside(seg.start, seg.end, chunk):
                kept.append(seg)
            continue
        words = tuple(w for w in seg.words if _inside(w.start, w.end, chunk))
        if not words:
            continue
        if len(words) == len(seg.words):
            kept.append(seg)
            continue
        text = "".join(w.word for w in words)
        kept.append(replace(seg, start=words[0].start, end=words[-1].end, text=text, words=words))
    return kept


def merge(chunks: Sequence[tuple[Chunk, Transcript]], duration_s: float, keep_words: bool) -> Transcript:
    """One transcript from the chunks' (timestamps already global), in order, trimmed at seams."""
    ordered = sorted(chunks, key=lambda pair: pair[0].index)
    if not ordered:
        raise ValueError("nothing to merge")
    segments: list[Segment] = []
    for chunk, transcript in ordered:
        for seg in trim_to_seams(transcript.segments, chunk):
            words: tuple[Word, ...] = seg.words if keep_words else ()
            segments.append(replace(seg, id=len(segments), words=words))
    first = ordered[0][1]
    # The language heard in most of the audio (a chunk of music or silence may guess another).
    votes: dict[str, float] = {}
    for chunk, transcript in ordered:
        votes[transcript.language] = votes.get(transcript.language, 0.0) + chunk.duration_s
    language = max(votes, key=lambda name: votes[name])
    probability = next(t.language_probability for _, t in ordered if t.language == language)
    return Transcript(tuple(segments), language, probability, round(duration_s, 3), first.engine, first.model,
                      {"chunks": len(ordered)})
