"""Decoding uploaded files into 16 kHz mono float32 samples, with PyAV (no ffmpeg binary needed)."""

from __future__ import annotations

import numpy as np

from whisperq.core.errors import PermanentJobError

SAMPLE_RATE = 16_000


def decode(path: str, display_name: str) -> np.ndarray:
    """The audio in `path` as float32 samples at 16 kHz; PermanentJobError when it is not audio."""
    import av  # imported here so that the API never pays for it
    from faster_whisper.audio import decode_audio

    hint = "upload a WAV, FLAC, MP3, M4A, OGG or WebM file"
    try:
        samples = decode_audio(path, sampling_rate=SAMPLE_RATE)
    except (IndexError, StopIteration) as exc:  # PyAV opened it but found no audio stream
        raise PermanentJobError(f"{display_name} is not an audio file (it has no audio stream); {hint}") from exc
    except (av.error.FFmpegError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise PermanentJobError(f"{display_name} could not be decoded as audio ({detail}); {hint}") from exc
    if samples.size == 0:
        raise PermanentJobError(f"{display_name} contains no audio samples (zero-length audio)")
    return samples
