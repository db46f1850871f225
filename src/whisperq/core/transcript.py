"""What an engine returns: a transcript made of segments (and words when asked)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float
    speaker: str | None = None  # diarized jobs: who said it


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()
    speaker: str | None = None  # diarized jobs: who said it (a segment spans one speaker)

    def timed_words(self) -> list[tuple[str, float, float, Word | None]]:
        """The segment's words with times: the engine's word timestamps when it gave them, otherwise
        the segment's span shared out in proportion to each word's length (and no Word)."""
        if self.words:
            return [(w.word.strip(), w.start, w.end, w) for w in self.words if w.word.strip()]
        words = self.text.split()
        total = sum(len(word) + 1 for word in words) or 1
        span = self.end - self.start
        tokens: list[tuple[str, float, float, Word | None]] = []
        position = self.start
        for word in words:
            length = span * (len(word) + 1) / total
            tokens.append((word, round(position, 3), round(position + length, 3), None))
            position += length
        return tokens


SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
_CLOSING = "\"'”’)]»」』"


def sentences(segments: tuple[Segment, ...] | list[Segment]) -> tuple[Segment, ...]:
    """Segments cut at the end of each sentence, timed by their words (or by a share of the span in
    proportion to the words' lengths): what a batched decode's 30 s windows become, so that its
    transcript has one segment per sentence as sequential decoding's has."""
    out: list[Segment] = []
    for segment in segments:
        tokens = segment.timed_words()
        run: list[tuple[str, float, float, Word | None]] = []
        for index, token in enumerate(tokens):
            run.append(token)
            if token[0].rstrip(_CLOSING).endswith(SENTENCE_END) or index == len(tokens) - 1:
                words = tuple(t[3] for t in run if t[3] is not None)
                # The engine's words carry their own spacing (none between CJK characters).
                text = "".join(w.word for w in words) if words else " " + " ".join(t[0] for t in run)
                start = run[0][1]
                out.append(Segment(len(out), start, max(run[-1][2], round(start + 0.01, 3)), text,
                                   segment.avg_logprob, segment.no_speech_prob, words))
                run = []
    return tuple(out)


@dataclass(frozen=True)
class Speaker:
    """One voice of a diarized transcript: its label and how long it speaks in all."""

    label: str
    seconds: float


@dataclass(frozen=True)
class Transcript:
    """An engine's result for one audio file."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration_s: float
    engine: str = ""
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    speakers: tuple[Speaker, ...] = ()  # diarized jobs: every voice heard, by label

    @property
    def text(self) -> str:
        return " ".join(seg.text.strip() for seg in self.segments if seg.text.strip())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = self.text
        for seg in data["segments"]:
            seg["words"] = [_without_speaker(word) for word in seg["words"]]
            _without_speaker(seg)
        data["segments"] = list(data["segments"])
        if self.speakers:
            data["speakers"] = list(data["speakers"])
        else:
            del data["speakers"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """The transcript `to_dict` wrote (a chunk's result read back for the merge)."""
        segments = tuple(
            Segment(int(seg["id"]), float(seg["start"]), float(seg["end"]), seg["text"], float(seg["avg_logprob"]),
                    float(seg["no_speech_prob"]), tuple(Word(**word) for word in seg.get("words", ())),
                    seg.get("speaker"))
            for seg in data["segments"]
        )
        speakers = tuple(Speaker(str(s["label"]), float(s["seconds"])) for s in data.get("speakers") or ())
        return cls(segments, data["language"], float(data["language_probability"]), float(data["duration_s"]),
                   data.get("engine", ""), data.get("model", ""), dict(data.get("extra") or {}), speakers)


def _without_speaker(part: dict[str, Any]) -> dict[str, Any]:
    """A segment's or word's dict without `speaker` when nobody was assigned (undiarized jobs)."""
    if part.get("speaker") is None:
        part.pop("speaker", None)
    return part
