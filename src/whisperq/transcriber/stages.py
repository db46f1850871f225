"""The stages of transcribing audio, shared by whole jobs and chunks: check and fetch the upload,
decode it, run the engine, write the five output formats."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisperq.aws.blobs import Blobs
from whisperq.config import Settings
from whisperq.core import writers
from whisperq.core.audio import AUDIO_CONTENT_TYPES
from whisperq.core.errors import PermanentJobError
from whisperq.core.keys import transcript_key
from whisperq.core.options import TranscribeOptions
from whisperq.core.speakers import SpeakerHints, assign
from whisperq.core.transcript import Transcript
from whisperq.faults import Injector
from whisperq.tracing import stage
from whisperq.transcriber import audio
from whisperq.transcriber.diarizers import Diarizer, SpeechEmbeddings
from whisperq.transcriber.engines import Engine

SILENCE_PEAK = 10 ** (-60 / 20)  # -60 dBFS: below any recording's noise floor


def is_silent(samples: Any) -> bool:
    """Digital silence: no sample reaches -60 dBFS."""
    return bool(samples.size) and max(float(samples.max()), -float(samples.min())) < SILENCE_PEAK


@dataclass
class Fetched:
    """A job's audio, decoded, with how long each stage took (seconds, by RunStats field name)."""

    samples: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.samples.size / audio.SAMPLE_RATE


def check_upload(blobs: Blobs, settings: Settings, key: str) -> None:
    """The upload exists, is not empty or too large, and was stored as audio; PermanentJobError if not."""
    info = blobs.head(key)
    if info is None:
        raise PermanentJobError(f"the uploaded audio {key} no longer exists (deleted after upload?)")
    if info.size_bytes == 0:
        raise PermanentJobError("the uploaded file is empty (0 bytes); upload the audio again with a new job")
    if info.size_bytes > settings.max_upload_bytes:
        raise PermanentJobError(
            f"the uploaded file is {info.size_bytes} bytes, over the limit of {settings.max_upload_bytes} bytes"
        )
    stored_type = info.content_type.split(";", 1)[0].strip().lower()
    if stored_type not in AUDIO_CONTENT_TYPES:
        # AWS enforces the type in the upload policy; the twin (moto) does not, so check here too.
        raise PermanentJobError(
            f"the upload was stored as {info.content_type or 'no content type'!r}, not an accepted audio type; "
            "upload with the Content-Type the job was created with"
        )


def fetch(blobs: Blobs, key: str, notes: dict[str, Any]) -> Fetched:
    """Download an object and decode it to 16 kHz samples (traced as `download` and `decode`)."""
    display_name = key.rsplit("/", 1)[-1]
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="whisperq-") as workdir:
        local_path = os.path.join(workdir, "audio")
        started = time.perf_counter()
        with stage("download", **notes):
            blobs.download(key, local_path)
        timings["download_s"] = time.perf_counter() - started
        started = time.perf_counter()
        with stage("decode", **notes):
            samples = audio.decode(local_path, display_name)
    timings["decode_s"] = time.perf_counter() - started
    return Fetched(samples, timings)


def transcribe(engine: Engine, samples: np.ndarray, options: TranscribeOptions, notes: dict[str, Any],
               faults: Injector | None = None) -> tuple[Transcript, float]:
    """The engine's transcript of `samples` and the seconds it took (traced as `transcribe`)."""
    duration_s = samples.size / audio.SAMPLE_RATE
    started = time.perf_counter()
    with stage("transcribe", **notes):
        if is_silent(samples):
            # Whisper invents words for pure silence ("you", "Thank you."): say nothing instead.
            transcript = Transcript((), options.language or "en", 0.0, duration_s, engine.name,
                                    engine.model_name, {"silent": True})
        else:
            transcript = engine.transcribe(samples, options)
        if faults is not None:
            time.sleep(faults.extra_delay_s())
    return transcript, time.perf_counter() - started


def embed_speech(diarizer: Diarizer, samples: np.ndarray, notes: dict[str, Any]) -> tuple[SpeechEmbeddings, float]:
    """The speaker embeddings of `samples`' speech and the seconds they took (traced as `diarize`)."""
    started = time.perf_counter()
    with stage("diarize", **notes):
        embeddings = SpeechEmbeddings.empty() if is_silent(samples) else diarizer.embed(samples)
    return embeddings, time.perf_counter() - started


@dataclass(frozen=True)
class Diarized:
    """A transcript with its speakers, and what the job records of how they were found."""

    transcript: Transcript
    cluster_s: float
    note: str | None  # why nobody was labelled, when nobody was


def label_speakers(diarizer: Diarizer, transcript: Transcript, embeddings: SpeechEmbeddings, hints: SpeakerHints,
                   notes: dict[str, Any]) -> Diarized:
    """The transcript with a speaker on each segment and word, from the embeddings of the whole recording."""
    started = time.perf_counter()
    with stage("cluster-speakers", **notes):
        turns = diarizer.cluster(embeddings, hints)
        labelled = assign(transcript, turns)
    note = None
    if not turns:
        note = ("no speech long enough to tell speakers apart (each voice needs a quarter second or more)"
                if transcript.segments else "no speech was heard, so no speaker was labelled")
    return Diarized(labelled, time.perf_counter() - started, note)


def write_outputs(blobs: Blobs, job_id: str, transcript: Transcript, notes: dict[str, Any],
                  also_stem: str | None = None) -> dict[str, str]:
    """Write the five formats under transcripts/<jobId>/ (and, for a dropped file, to <also_stem>.<format>
    beside it); the job's keys by format (traced as `upload`)."""
    outputs: dict[str, str] = {}
    with stage("upload", **notes):
        for fmt, text in writers.render_all(transcript).items():
            key = transcript_key(job_id, fmt)
            blobs.put_text(key, text, writers.CONTENT_TYPES[fmt])
            if also_stem:
                blobs.put_text(f"{also_stem}.{fmt}", text, writers.CONTENT_TYPES[fmt])
            outputs[fmt] = key
    return outputs
