"""A synthetic engine for load tests only: it sleeps in proportion to the audio's duration and can
fail at a given rate. Never the default; its transcripts say what they are."""

from __future__ import annotations

import random
import time

import numpy as np

from whisperq.core.errors import TransientError
from whisperq.core.options import TranscribeOptions
from whisperq.core.transcript import Segment, Transcript


class SyntheticEngineFailure(TransientError):
    """A failure the synthetic engine raised on purpose (its failure rate)."""

    code = "synthetic_failure"


class SyntheticEngine:
    name = "synthetic"

    def __init__(self, seconds_per_audio_second: float = 0.05, failure_rate: float = 0.0,
                 rng: random.Random | None = None, sleep=time.sleep):
        self.seconds_per_audio_second = seconds_per_audio_second
        self.failure_rate = failure_rate
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.model_name = "synthetic"
        self.load_time_s = 0.0
        self.compute_type = "none"

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        duration_s = audio.size / 16000
        self._sleep(duration_s * self.seconds_per_audio_second)
        if self.failure_rate and self._rng.random() < self.failure_rate:
            raise SyntheticEngineFailure(f"synthetic engine failure (failure rate {self.failure_rate})")
        text = f" Synthetic transcript of {duration_s:.1f} seconds of audio."
        segment = Segment(0, 0.0, round(duration_s, 3), text, 0.0, 0.0)
        return Transcript((segment,), options.language or "en", 1.0, round(duration_s, 3), self.name, self.model_name)
