"""Per-job transcription options, with the defaults a job gets when it asks for nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None  # None: detect it
    task: str = "transcribe"
    initial_prompt: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = False
    beam_size: int = 5
    temperature: float | None = None  # None: whisper's fallback schedule 0.0, 0.2, ... 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
