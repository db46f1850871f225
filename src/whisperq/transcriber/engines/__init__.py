"""Whisper engines behind one interface, chosen by name from settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from whisperq.config import Settings
from whisperq.core.capacity import engine_threads
from whisperq.core.errors import ConfigError
from whisperq.core.options import TranscribeOptions
from whisperq.core.transcript import Transcript


class Engine(Protocol):
    """A loaded model that turns 16 kHz float32 samples into a transcript."""

    name: str
    model_name: str
    load_time_s: float

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript: ...


def load_engine(settings: Settings) -> Engine:
    """Load the engine and model named in settings (once per process: callers keep it)."""
    threads = engine_threads(settings.cpu_threads, os.environ)
    if settings.engine == "faster-whisper":
        from whisperq.transcriber.engines.faster import FasterWhisperEngine

        return FasterWhisperEngine(settings.model, settings.compute_type, threads,
                                  settings.engine_batch_size, Path(settings.resolved_cache_dir))
    if settings.engine == "openai-whisper":
        from whisperq.transcriber.engines.openai import OpenAIWhisperEngine

        return OpenAIWhisperEngine(settings.model, threads, Path(settings.resolved_cache_dir))
    if settings.engine == "synthetic":
        from whisperq.transcriber.engines.synthetic import SyntheticEngine

        return SyntheticEngine(settings.synthetic_seconds_per_audio_second, settings.synthetic_failure_rate)
    raise ConfigError(f"engine {settings.engine!r} is not available in this build")
