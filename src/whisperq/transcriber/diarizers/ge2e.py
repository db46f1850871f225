"""Diarization with the GE2E speaker encoder (voice_encoder.py): the Silero VAD's speech regions, cut into
pieces of at most 3.2 s, each embedded as the mean of its 1.6 s windows (two for a full piece), clustered over the
whole recording (clustering.py); consecutive pieces of one speaker make a turn."""

from __future__ import annotations

import math
import time

import numpy as np

from whisperq.core.speakers import SpeakerHints, SpeakerTurn, label
from whisperq.transcriber.audio import SAMPLE_RATE, speech_regions
from whisperq.transcriber.diarizers import SpeechEmbeddings
from whisperq.transcriber.diarizers.clustering import cluster
from whisperq.transcriber.diarizers.voice_encoder import PARTIAL_FRAMES, VoiceEncoder

PIECE_S = 3.2  # the longest stretch one embedding stands for: a change of speaker inside a region shows at this
MIN_PIECE_S = 0.25  # shorter speech (a click, a breath) is not embedded
WINDOW_S = PARTIAL_FRAMES / 100
WINDOW_HOP_FRAMES = PARTIAL_FRAMES  # 3.2 s of speech: two windows, its halves
TARGET_DBFS = -30.0  # each piece's loudness before embedding, as the encoder's training data was
BATCH = 64  # windows through the LSTM at once: its input projections are 42 MB
TURN_GAP_S = 0.5  # pieces of one speaker closer than this make one turn


class Ge2eDiarizer:
    """Resemblyzer's GE2E encoder (weights from its wheel) with agglomerative clustering."""

    name = "ge2e"

    def __init__(self) -> None:
        started = time.perf_counter()
        self.encoder = VoiceEncoder()
        self.load_time_s = time.perf_counter() - started

    def pieces(self, audio: np.ndarray) -> list[tuple[float, float]]:
        """The speech of `audio` (seconds), regions cut into equal pieces of at most PIECE_S."""
        out = []
        for start, end in speech_regions(audio):
            if end - start < MIN_PIECE_S:
                continue
            count = math.ceil((end - start) / PIECE_S)
            step = (end - start) / count
            out += [(start + i * step, start + (i + 1) * step) for i in range(count)]
        return out

    def embed(self, audio: np.ndarray) -> SpeechEmbeddings:
        pieces = self.pieces(audio)
        if not pieces:
            return SpeechEmbeddings.empty()
        windows: list[np.ndarray] = []
        owners: list[int] = []
        for index, (start, end) in enumerate(pieces):
            samples = audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)].astype(np.float32)
            need = int(WINDOW_S * SAMPLE_RATE)
            if len(samples) < need:  # a short interjection: repeated to fill one window
                samples = np.tile(samples, math.ceil(need / len(samples)))[:need]
            rms = float(np.sqrt(np.mean(samples ** 2)))
            samples = samples * (10 ** (TARGET_DBFS / 20) / max(rms, 1e-6))
            mel = self.encoder.mel(samples)
            last = max(len(mel) - PARTIAL_FRAMES, 0)
            # Windows spread evenly from the piece's start to its end, about one per WINDOW_HOP_FRAMES.
            count = 1 + round(last / WINDOW_HOP_FRAMES)
            offsets = sorted({round(last * i / max(count - 1, 1)) for i in range(count)})
            for offset in offsets:
                windows.append(mel[offset:offset + PARTIAL_FRAMES])
                owners.append(index)
        embedded = np.concatenate([self.encoder.embed_frames(np.stack(windows[i:i + BATCH]))
                                   for i in range(0, len(windows), BATCH)])
        owner = np.asarray(owners)
        vectors = np.stack([embedded[owner == i].mean(axis=0) for i in range(len(pieces))])
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        return SpeechEmbeddings(np.array([p[0] for p in pieces]), np.array([p[1] for p in pieces]),
                                vectors.astype(np.float32))

    def cluster(self, embeddings: SpeechEmbeddings, hints: SpeakerHints) -> list[SpeakerTurn]:
        if not len(embeddings):
            return []
        order = np.argsort(embeddings.starts, kind="stable")
        starts, ends = embeddings.starts[order], embeddings.ends[order]
        speakers = cluster(embeddings.vectors[order], ends - starts, hints)
        turns: list[SpeakerTurn] = []
        for start, end, speaker in zip(starts, ends, speakers, strict=True):
            name = label(int(speaker))
            if turns and turns[-1].speaker == name and start - turns[-1].end < TURN_GAP_S:
                turns[-1] = SpeakerTurn(turns[-1].start, max(turns[-1].end, round(float(end), 3)), name)
            else:
                turns.append(SpeakerTurn(round(float(start), 3), round(float(end), 3), name))
        return turns
