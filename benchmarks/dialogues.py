"""Multi-speaker dialogues with known turns, for the diarization benchmark and the test samples.

    .venv/bin/python benchmarks/dialogues.py OUT_DIR [--set] [--minutes 12 --speakers 3 --name long3] [--ogg]

espeak-ng reads sentences of prose (Debian's GPL-3 text, as benchmarks/long_speech.py) in clearly different
voices (variant, pitch, speed), one turn of 1 to 15 s at a time, with short interjections ("Right.", "I see.")
between some turns and pauses of 0.2 to 0.9 s; sox makes each turn 16 kHz mono. Each dialogue is written as
NAME.wav, NAME.rttm (the reference: each turn's speech, its leading and trailing silence trimmed) and NAME.txt.
`--set` writes the benchmark set: 2, 3 and 4 speakers, two dialogues each. Needs Debian's espeak-ng and sox
(apt-get install espeak-ng sox); nothing in make test runs it (the test samples it made are committed).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_speech import prose_words  # noqa: E402

SAMPLE_RATE = 16000
# (espeak-ng voice, pitch 0-99, words a minute). espeak-ng's male variants (m1, m3, m7, croak) sound alike to
# a speaker encoder (GE2E cosine 0.86-0.91 between them, 0.93 within one): these six are told apart (<= 0.74).
VOICES = (
    ("en-us+m3", 35, 150),
    ("en-us+f3", 75, 165),
    ("en-us+klatt", 50, 150),
    ("en+f2", 60, 155),
    ("en-us+m2", 70, 170),
    ("en-us+f5", 90, 180),
)
INTERJECTIONS = ("Right.", "I see.", "Okay.", "Yes.", "Sure.", "Mm-hmm.", "Really?", "Exactly.")
SILENCE = 0.002  # below this, a sample counts as silence when a turn's edges are trimmed


@dataclass(frozen=True)
class Turn:
    speaker: str
    start_s: float
    end_s: float
    text: str


def _speak(text: str, voice: tuple[str, int, int], tmp: Path) -> np.ndarray:
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    name, pitch, pace = voice
    subprocess.run(["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(pace), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out)], check=True)
    with wave.open(str(out), "rb") as handle:
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    loud = np.flatnonzero(np.abs(samples) > SILENCE)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples


def make_dialogue(speakers: int, seconds: float, seed: int) -> tuple[np.ndarray, list[Turn]]:
    """A dialogue of about `seconds` among `speakers` voices, with the turns as they were spoken."""
    rng = random.Random(seed)
    words = prose_words()
    position = rng.randrange(len(words) // 2)
    voices = rng.sample(VOICES, speakers)
    pieces: list[np.ndarray] = []
    turns: list[Turn] = []
    clock = 0.5
    pieces.append(np.zeros(int(clock * SAMPLE_RATE), np.float32))
    previous = -1
    with tempfile.TemporaryDirectory() as tmp:
        while clock < seconds:
            speaker = rng.choice([s for s in range(speakers) if s != previous])
            if previous >= 0 and rng.random() < 0.2:
                text = rng.choice(INTERJECTIONS)
            else:
                count = rng.randint(3, 38)  # about 1 to 15 s at these paces
                text = " ".join(words[position:position + count]).rstrip(",;:") + "."
                position = (position + count) % (len(words) - 40)
            samples = _speak(text, voices[speaker], Path(tmp))
            turns.append(Turn(f"S{speaker}", round(clock, 3), round(clock + len(samples) / SAMPLE_RATE, 3), text))
            pause = rng.uniform(0.2, 0.9)
            pieces += [samples, np.zeros(int(pause * SAMPLE_RATE), np.float32)]
            clock += len(samples) / SAMPLE_RATE + int(pause * SAMPLE_RATE) / SAMPLE_RATE
            previous = speaker
    return np.concatenate(pieces), turns


def _write_ogg(path: Path, audio: np.ndarray) -> None:
    """Opus in OGG at 24 kbit/s: small enough to commit as a test sample."""
    import av

    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 24000
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def write(out_dir: Path, name: str, audio: np.ndarray, turns: list[Turn], ogg: bool = False) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if ogg:
        _write_ogg(out_dir / f"{name}.ogg", audio)
    else:
        with wave.open(str(out_dir / f"{name}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(SAMPLE_RATE)
            handle.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
    (out_dir / f"{name}.rttm").write_text("".join(
        f"SPEAKER {name} 1 {t.start_s:.3f} {t.end_s - t.start_s:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in turns), encoding="utf-8")
    (out_dir / f"{name}.txt").write_text("".join(f"{t.speaker}: {t.text}\n" for t in turns), encoding="utf-8")


BENCHMARK_SET = tuple((f"dialogue{n}-{k}", n, 150.0, 100 * n + k) for n in (2, 3, 4) for k in (1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--set", action="store_true", help="the benchmark set: 2, 3 and 4 speakers, two each")
    parser.add_argument("--speakers", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="dialogue")
    parser.add_argument("--ogg", action="store_true", help="write NAME.ogg (Opus) instead of NAME.wav")
    args = parser.parse_args()
    jobs = BENCHMARK_SET if args.set else ((args.name, args.speakers, args.minutes * 60, args.seed),)
    for name, speakers, seconds, seed in jobs:
        audio, turns = make_dialogue(speakers, seconds, seed)
        write(args.out_dir, name, audio, turns, args.ogg)
        print(f"{name}: {len(audio) / SAMPLE_RATE:.1f} s, {speakers} speakers, {len(turns)} turns")


if __name__ == "__main__":
    main()
