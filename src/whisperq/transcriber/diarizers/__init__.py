"""Diarizers behind one interface, as the engines are: one embeds the speech of some audio (a whole file, or
a chunk of one), one clusters the embeddings of a whole recording into speaker turns. Splitting the two is
what keeps one set of speakers across a fanned-out file: each chunk's worker embeds its chunk, and the merge
clusters every chunk's embeddings at once."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from whisperq.core.speakers import SpeakerHints, SpeakerTurn


@dataclass(frozen=True)
class SpeechEmbeddings:
    """Pieces of speech (seconds from the start of the recording) and a speaker embedding of each."""

    starts: np.ndarray  # float64, seconds
    ends: np.ndarray
    vectors: np.ndarray  # pieces x dimensions, float32, L2-normed

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def speech_s(self) -> float:
        return float(np.sum(self.ends - self.starts))

    def shifted(self, offset_s: float) -> SpeechEmbeddings:
        return SpeechEmbeddings(self.starts + offset_s, self.ends + offset_s, self.vectors)

    @classmethod
    def empty(cls, dimensions: int = 256) -> SpeechEmbeddings:
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, dimensions), np.float32))

    @classmethod
    def joined(cls, parts: Sequence[SpeechEmbeddings]) -> SpeechEmbeddings:
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.starts for p in parts]), np.concatenate([p.ends for p in parts]),
                   np.concatenate([p.vectors for p in parts]).astype(np.float32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (stored with a chunk's result): times to the millisecond, vectors as float16."""
        return {"starts": [round(float(t), 3) for t in self.starts], "ends": [round(float(t), 3) for t in self.ends],
                "dimensions": int(self.vectors.shape[1]),
                "vectors": base64.b64encode(self.vectors.astype("<f2").tobytes()).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeechEmbeddings:
        vectors = np.frombuffer(base64.b64decode(data["vectors"]), dtype="<f2").astype(np.float32)
        return cls(np.asarray(data["starts"], dtype=np.float64), np.asarray(data["ends"], dtype=np.float64),
                   vectors.reshape(-1, int(data["dimensions"])))


class Diarizer(Protocol):
    """A loaded speaker encoder: speech to embeddings, and a recording's embeddings to speaker turns."""

    name: str
    load_time_s: float

    def embed(self, audio: np.ndarray) -> SpeechEmbeddings: ...

    def cluster(self, embeddings: SpeechEmbeddings, hints: SpeakerHints) -> list[SpeakerTurn]: ...


def load_diarizer() -> Diarizer:
    """The diarizer this build carries (loaded once per worker, on its first diarized job)."""
    from whisperq.transcriber.diarizers.ge2e import Ge2eDiarizer

    return Ge2eDiarizer()
