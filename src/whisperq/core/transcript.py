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


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()


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

    @property
    def text(self) -> str:
        return " ".join(seg.text.strip() for seg in self.segments if seg.text.strip())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = self.text
        for seg in data["segments"]:
            seg["words"] = list(seg["words"])
        data["segments"] = list(data["segments"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """The transcript `to_dict` wrote (a chunk's result read back for the merge)."""
        segments = tuple(
            Segment(int(seg["id"]), float(seg["start"]), float(seg["end"]), seg["text"], float(seg["avg_logprob"]),
                    float(seg["no_speech_prob"]), tuple(Word(**word) for word in seg.get("words", ())))
            for seg in data["segments"]
        )
        return cls(segments, data["language"], float(data["language_probability"]), float(data["duration_s"]),
                   data.get("engine", ""), data.get("model", ""), dict(data.get("extra") or {}))
