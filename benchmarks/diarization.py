"""Diarization, measured: the error rate on dialogues with known turns, one long dialogue whole and fanned
out, what it adds to a tiny.en job's time, and a worker's memory with the encoder loaded.

    make benchmark-diarization      # = pip install -e '.[bench]' (pyannote.metrics) and:
    .venv/bin/python benchmarks/diarization.py [benchmarks/.dialogues] --out docs/benchmarks/diarization.json

Makes the dialogues first if they are not there (benchmarks/dialogues.py: espeak-ng and sox): the set of
2, 3 and 4 speakers (two of each, ~2.5 min) and one 12-minute three-speaker dialogue. DER is pyannote.metrics'
DiarizationErrorRate with a 0.25 s collar, overlap counted. The long dialogue is diarized whole, and cut into
60 s chunks at pauses as fan-out cuts it (core.fanout.plan_chunks), each chunk embedded alone and the chunks'
embeddings clustered at once, as the merge does. Speed: tiny.en (int8, beam 5, word timestamps as diarized
jobs have, one thread as a 3,008 MB function) against embedding + clustering, on one thread too.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's matrix products on one core, as in Lambda
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from dialogues import BENCHMARK_SET  # noqa: E402

LONG = ("long3", 3, 720.0, 7)  # the 12-minute three-speaker dialogue: name, speakers, seconds, seed


def rss_mb() -> dict[str, float]:
    status = Path("/proc/self/status").read_text().splitlines()
    values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return {"rssMb": round(values["VmRSS"]), "peakMb": round(values["VmHWM"])}


def ensure(out: Path) -> None:
    wanted = [*BENCHMARK_SET, LONG]
    for name, speakers, seconds, seed in wanted:
        if not (out / f"{name}.wav").exists():
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dialogues.py"), str(out), "--speakers",
                            str(speakers), "--minutes", str(seconds / 60), "--seed", str(seed), "--name", name],
                           check=True)


def load(path: Path) -> np.ndarray:
    from whisperq.transcriber.audio import decode

    return decode(str(path), path.name)


def reference(path: Path):  # type: ignore[no-untyped-def]
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for line in path.read_text().splitlines():
        fields = line.split()
        annotation[Segment(float(fields[3]), float(fields[3]) + float(fields[4]))] = fields[7]
    return annotation


def score(turns, truth) -> dict:  # type: ignore[no-untyped-def]
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    hypothesis = Annotation()
    for turn in turns:
        hypothesis[Segment(turn.start, turn.end)] = turn.speaker
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "uem was approximated": the union of both extents, as wanted
        detail = DiarizationErrorRate(collar=0.25, skip_overlap=False)(truth, hypothesis, detailed=True)
    total = detail["total"]
    return {"der": round(detail["diarization error rate"] * 100, 2),
            "missed": round(detail["missed detection"] / total * 100, 2),
            "falseAlarm": round(detail["false alarm"] / total * 100, 2),
            "confusion": round(detail["confusion"] / total * 100, 2),
            "speakers": len(truth.labels()), "found": len(hypothesis.labels()),
            "referenceSpeechS": round(total, 1)}


def diarize_timed(diarizer, samples):  # type: ignore[no-untyped-def]
    from whisperq.core.speakers import SpeakerHints

    started = time.perf_counter()
    embeddings = diarizer.embed(samples)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    turns = diarizer.cluster(embeddings, SpeakerHints())
    return turns, embed_s, time.perf_counter() - started


def fanned_out(diarizer, samples, chunk_s: float):  # type: ignore[no-untyped-def]
    from whisperq.core.fanout import plan_chunks
    from whisperq.core.speakers import SpeakerHints
    from whisperq.transcriber.audio import SAMPLE_RATE, speech_regions
    from whisperq.transcriber.diarizers import SpeechEmbeddings

    plan = plan_chunks(samples.size / SAMPLE_RATE, speech_regions(samples), chunk_s, min_chunk_s=chunk_s)
    parts = []
    for chunk in plan:
        piece = diarizer.embed(samples[int(chunk.start_s * SAMPLE_RATE):int(chunk.end_s * SAMPLE_RATE)])
        piece = piece.shifted(chunk.start_s)
        owned = [chunk.owns(float(s), float(e)) for s, e in zip(piece.starts, piece.ends, strict=True)]
        parts.append(SpeechEmbeddings(piece.starts[owned], piece.ends[owned], piece.vectors[owned]))
    return diarizer.cluster(SpeechEmbeddings.joined(parts), SpeakerHints()), len(plan)


def speed(path: Path) -> dict:
    """A worker's run, in a process of its own (its peak memory is its own): tiny.en (int8, beam 5, word
    timestamps, one thread) transcribes the file, then the encoder is loaded and diarizes it."""
    from whisperq.core.options import TranscribeOptions
    from whisperq.transcriber.diarizers.ge2e import Ge2eDiarizer
    from whisperq.transcriber.engines.faster import FasterWhisperEngine

    samples = load(path)
    engine = FasterWhisperEngine("tiny.en", "int8", 1)
    options = TranscribeOptions(beam_size=5, language="en", word_timestamps=True)
    engine.transcribe(samples[:16_000 * 30], options)  # warm-up
    engine_loaded = rss_mb()
    started = time.perf_counter()
    engine.transcribe(samples, options)
    transcribe_s = time.perf_counter() - started
    transcribed = rss_mb()
    diarizer = Ge2eDiarizer()
    encoder_loaded = rss_mb()
    _, embed_s, cluster_s = diarize_timed(diarizer, samples)
    return {"file": path.name, "audioS": round(samples.size / 16_000, 1), "transcribeS": round(transcribe_s, 2),
            "embedS": round(embed_s, 2), "clusterS": round(cluster_s, 3),
            "addedPercent": round((embed_s + cluster_s) / transcribe_s * 100, 1),
            "memory": {"engineLoaded": engine_loaded, "afterTranscription": transcribed,
                       "encoderLoaded": encoder_loaded, "afterDiarization": rss_mb()}}


def speed_in_child(path: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--speed", str(path)], check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dialogues", type=Path, nargs="?", default=ROOT / "benchmarks" / ".dialogues",
                        help="where the dialogues are (made there if missing)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "diarization.json")
    parser.add_argument("--speed", type=Path, help=argparse.SUPPRESS)  # the child of speed_in_child
    args = parser.parse_args()
    if args.speed:
        print(json.dumps(speed(args.speed)))
        return
    ensure(args.dialogues)

    from whisperq.transcriber.diarizers.ge2e import Ge2eDiarizer

    diarizer = Ge2eDiarizer()
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")},
                     "encoderLoadS": round(diarizer.load_time_s, 3), "set": []}
    ders = []
    for name, _, _, _ in BENCHMARK_SET:
        samples = load(args.dialogues / f"{name}.wav")
        turns, embed_s, cluster_s = diarize_timed(diarizer, samples)
        row = {"name": name, **score(turns, reference(args.dialogues / f"{name}.rttm")),
               "audioS": round(samples.size / 16_000, 1), "embedS": round(embed_s, 2), "clusterS": round(cluster_s, 3)}
        ders.append((row["der"], row["referenceSpeechS"]))
        results["set"].append(row)
        print(json.dumps(row))
    results["setDer"] = round(sum(d * s for d, s in ders) / sum(s for _, s in ders), 2)

    name = LONG[0]
    samples = load(args.dialogues / f"{name}.wav")
    truth = reference(args.dialogues / f"{name}.rttm")
    turns, embed_s, cluster_s = diarize_timed(diarizer, samples)
    whole = {**score(turns, truth), "embedS": round(embed_s, 2), "clusterS": round(cluster_s, 3)}
    split_turns, chunks = fanned_out(diarizer, samples, 60.0)
    results["long"] = {"name": name, "audioS": round(samples.size / 16_000, 1), "whole": whole,
                       "fannedOut": {**score(split_turns, truth), "chunks": chunks}}
    print(json.dumps(results["long"]))
    results["speed"] = [speed_in_child(ROOT / "examples" / "passage.ogg"),
                        speed_in_child(args.dialogues / f"{name}.wav")]
    print(json.dumps(results["speed"]))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
