"""Decoding uploaded files into 16 kHz mono float32 samples, with PyAV (no ffmpeg binary needed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from whisperq.core.errors import PermanentJobError

SAMPLE_RATE = 16_000
GROUP_SAMPLES = 500_000  # decoded samples resampled at a time


def decode(path: str, display_name: str) -> np.ndarray:
    """The audio in `path` as float32 samples at 16 kHz; PermanentJobError when it is not audio."""
    import av  # imported here so that the API never pays for it

    hint = "upload a WAV, FLAC, MP3, M4A, OGG or WebM file"
    try:
        samples = _decode_pcm(path)
    except (IndexError, StopIteration) as exc:  # PyAV opened it but found no audio stream
        raise PermanentJobError(f"{display_name} is not an audio file (it has no audio stream); {hint}") from exc
    except (av.error.FFmpegError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise PermanentJobError(f"{display_name} could not be decoded as audio ({detail}); {hint}") from exc
    if samples.size == 0:
        raise PermanentJobError(f"{display_name} contains no audio samples (zero-length audio)")
    return samples


def _decode_pcm(path: str) -> np.ndarray:
    """faster-whisper's decode_audio, less its gc.collect(): decoded frames are gathered into large
    groups (resampling many small frames is slow), resampled to 16-bit mono at 16 kHz, and scaled to
    float32. That full collection after every file cost 20 to 70 ms in a worker (it walks every
    object the process made since its warm-up), more than a short file's whole decode; the
    resampler is left to the collector's usual rounds."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    fifo = av.AudioFifo()
    parts: list[np.ndarray] = []

    def resample(frame: Any) -> None:
        parts.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))

    with av.open(path, mode="r", metadata_errors="ignore") as container:
        frames = container.decode(audio=0)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.InvalidDataError:
                continue  # a damaged frame is skipped, as ffmpeg does
            frame.pts = None  # the FIFO checks timestamps; frames after a skipped one would fail it
            fifo.write(frame)
            if fifo.samples >= GROUP_SAMPLES:
                resample(fifo.read())
        if fifo.samples:
            resample(fifo.read())
        resample(None)  # flush
    pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def encode_flac(samples: np.ndarray) -> bytes:
    """16-bit FLAC of 16 kHz mono samples (a chunk of a fanned-out job: about half the size of WAV)."""
    import io

    import av

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def speech_regions(samples: np.ndarray) -> list[tuple[float, float]]:
    """Where there is speech, in seconds, by the Silero voice-activity detector bundled with
    faster-whisper; tuned to find the short pauses between sentences (a quarter second and up)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=250, speech_pad_ms=50)
    return [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in get_speech_timestamps(samples, options)]
