"""faster-whisper (CTranslate2): the default engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from whisperq.core.options import TranscribeOptions
from whisperq.core.transcript import Segment, Transcript, Word, sentences
from whisperq.transcriber.audio import SAMPLE_RATE
from whisperq.transcriber.models import resolve_ct2_model

_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# Batched inference decodes several 30 s windows at once; below two windows there is nothing to batch.
BATCHED_MIN_AUDIO_S = 60.0
# Below beam 5 it cost accuracy (greedy: 1.1 WER points on the long-speech set; docs/benchmarks/batched.md).
BATCHED_MIN_BEAM = 5


def _segment(index: int, seg: Any) -> Segment:
    return Segment(id=index, start=round(float(seg.start), 3), end=round(float(seg.end), 3), text=seg.text,
                   avg_logprob=float(seg.avg_logprob), no_speech_prob=float(seg.no_speech_prob),
                   words=tuple(Word(round(float(w.start), 3), round(float(w.end), 3), w.word,
                                    round(float(w.probability), 4)) for w in (seg.words or ())))


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, model: str, compute_type: str = "int8", cpu_threads: int = 1, batch_size: int = 0,
                 cache_dir: Path | None = None):
        from faster_whisper import WhisperModel

        path = resolve_ct2_model(model, cache_dir)
        started = time.perf_counter()
        self._model = WhisperModel(
            str(path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads, local_files_only=True
        )
        self.load_time_s = time.perf_counter() - started
        self.model_name = model
        self.compute_type = compute_type
        # faster-whisper's BatchedInferencePipeline for audio of at least BATCHED_MIN_AUDIO_S (0: off):
        # the speech is cut at pauses into windows of up to 30 s that are decoded batch_size at a time.
        self.batch_size = batch_size
        self._batched = None
        if batch_size:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(self._model)

    def batched_for(self, duration_s: float, options: TranscribeOptions) -> bool:
        """Whether this audio is decoded in batches: long enough to hold two windows, at a beam where
        batching was measured to keep the accuracy of sequential decoding."""
        return (self._batched is not None and duration_s >= BATCHED_MIN_AUDIO_S
                and options.beam_size >= BATCHED_MIN_BEAM)

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        temperature = _FALLBACK_TEMPERATURES if options.temperature is None else options.temperature
        common = {"language": options.language, "task": options.task, "beam_size": options.beam_size,
                  "temperature": temperature, "initial_prompt": options.initial_prompt}
        if self._batched is not None and self.batched_for(audio.size / SAMPLE_RATE, options):
            # Each window is decoded without timestamp tokens: with them, the batched decoder drops the
            # words after a window's last timestamp (docs/benchmarks/batched.md: 61 of 966 words lost,
            # WER 15.6% against 11.6% without). The windows (up to 30 s) are then cut into sentences,
            # timed by their words when they were asked for, else by a share of the window.
            segments_iter, info = self._batched.transcribe(audio, batch_size=self.batch_size, without_timestamps=True,
                                                           word_timestamps=options.word_timestamps, **common)
            segments = sentences([_segment(index, seg) for index, seg in enumerate(segments_iter)])
        else:
            segments_iter, info = self._model.transcribe(audio, vad_filter=options.vad_filter,
                                                         word_timestamps=options.word_timestamps, **common)
            segments = tuple(_segment(index, seg) for index, seg in enumerate(segments_iter))
        return Transcript(
            segments=segments,
            language=info.language,
            language_probability=round(float(info.language_probability), 4),
            duration_s=round(float(info.duration), 3),
            engine=self.name,
            model=self.model_name,
        )
