"""openai-whisper (PyTorch): the reference engine of the original design, on the same weights."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from whisperq.core.options import TranscribeOptions
from whisperq.core.transcript import Segment, Transcript, Word
from whisperq.transcriber.engines.convert import openai_checkpoint
from whisperq.transcriber.models import resolve_ct2_model

_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class OpenAIWhisperEngine:
    name = "openai-whisper"

    def __init__(self, model: str, cpu_threads: int, cache_dir: Path):
        import torch
        import whisper

        torch.set_num_threads(cpu_threads)
        started = time.perf_counter()
        checkpoint, heads = openai_checkpoint(resolve_ct2_model(model, cache_dir), cache_dir)
        self._model = whisper.load_model(str(checkpoint), device="cpu")
        if heads:
            mask = torch.zeros(self._model.dims.n_text_layer, self._model.dims.n_text_head, dtype=torch.bool)
            for layer, head in heads:
                mask[layer, head] = True
            # What Whisper.set_alignment_heads does after decoding its base85 dump.
            self._model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
        self.load_time_s = time.perf_counter() - started
        self.model_name = model
        self.compute_type = "float32"

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        import whisper

        temperature = _FALLBACK_TEMPERATURES if options.temperature is None else (options.temperature,)
        kwargs: dict[str, Any] = {
            "language": options.language,
            "task": options.task,
            "temperature": temperature,
            "initial_prompt": options.initial_prompt,
            "word_timestamps": options.word_timestamps,
            "fp16": False,
            "verbose": None,
        }
        if options.beam_size > 1:
            kwargs["beam_size"] = options.beam_size
            kwargs["best_of"] = options.beam_size
        full_audio, time_map = audio, None
        if options.vad_filter:
            audio, time_map = _speech_only(audio)
            if audio.size == 0:
                return self._empty(full_audio, options)
        language_probability = 1.0
        if options.language is None and self._model.is_multilingual:
            mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), self._model.dims.n_mels)
            _, probs = self._model.detect_language(mel)
            kwargs["language"] = max(probs, key=probs.get)
            language_probability = float(probs[kwargs["language"]])
        result = whisper.transcribe(self._model, audio, **kwargs)

        def original(seconds: float, is_end: bool = False) -> float:
            value = time_map.get_original_time(seconds, is_end=is_end) if time_map else seconds
            return round(float(value), 3)

        segments = tuple(
            Segment(
                id=index,
                start=original(seg["start"]),
                end=original(seg["end"], is_end=True),
                text=seg["text"],
                avg_logprob=float(seg["avg_logprob"]),
                no_speech_prob=float(seg["no_speech_prob"]),
                words=tuple(
                    Word(original(w["start"]), original(w["end"], is_end=True), w["word"],
                         round(float(w["probability"]), 4))
                    for w in seg.get("words", ())
                ),
            )
            for index, seg in enumerate(result["segments"])
        )
        return Transcript(
            segments=segments,
            language=result.get("language") or "en",
            language_probability=round(language_probability, 4),
            duration_s=round(full_audio.size / 16000, 3),
            engine=self.name,
            model=self.model_name,
        )

    def _empty(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        return Transcript((), options.language or "en", 0.0, round(audio.size / 16000, 3), self.name, self.model_name)


def _speech_only(audio: np.ndarray) -> tuple[np.ndarray, Any]:
    """The speech in `audio` joined together, and the map back to original times, as faster-whisper
    does it (Silero VAD, bundled, offline). openai-whisper's own clip_timestamps can loop forever."""
    from faster_whisper.vad import SpeechTimestampsMap, VadOptions, collect_chunks, get_speech_timestamps

    spans = get_speech_timestamps(audio, VadOptions())
    if not spans:
        return np.zeros(0, dtype=np.float32), None
    chunks, _ = collect_chunks(audio, spans)
    return np.concatenate(chunks).astype(np.float32), SpeechTimestampsMap(spans, 16000)
