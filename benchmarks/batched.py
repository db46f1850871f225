"""Sequential decoding against faster-whisper's BatchedInferencePipeline on long speech with known
text, and the bundled models against each other (--models tiny.en,base): real-time factor, peak
memory and word error rate, one process per setting.

    .venv/bin/python benchmarks/long_speech.py benchmarks/.audio     # once: the speech (espeak-ng)
    .venv/bin/python benchmarks/batched.py benchmarks/.audio/piece-00.wav --out docs/benchmarks/batched.json
    .venv/bin/python benchmarks/batched.py examples/passage.ogg --models tiny.en,base --batch-sizes 0 \
        --out docs/benchmarks/models.json
    .venv/bin/python benchmarks/batched.py examples/passage.ogg --models tiny.en,base --batch-sizes 0 \
        --beam-sizes 5 --threads 1,2 --out docs/benchmarks/threads.json    # thread scaling (the planner's)

Each setting runs in its own process (peak RSS is its own), once to warm up, then --runs times.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import normalised  # noqa: E402
from tests.wer import wer  # noqa: E402


def measure(audio_path: str, batch_size: int, beam_size: int, threads: int, runs: int, model: str) -> dict:
    from whisperq.core.options import TranscribeOptions
    from whisperq.transcriber.audio import decode
    from whisperq.transcriber.engines.faster import FasterWhisperEngine

    samples = decode(audio_path, Path(audio_path).name)
    engine = FasterWhisperEngine(model, "int8", threads, batch_size)
    options = TranscribeOptions(beam_size=beam_size, language="en")
    engine.transcribe(samples[: 16_000 * 60], options)  # warm-up
    times, text = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        text = engine.transcribe(samples, options).text
        times.append(time.perf_counter() - started)
    truth = normalised(Path(audio_path).with_suffix(".txt").read_text()).split()
    seconds = samples.size / 16_000
    return {"model": model, "batchSize": batch_size, "beamSize": beam_size, "threads": threads,
            "audioS": round(seconds, 1),
            "medianS": round(statistics.median(times), 2), "runsS": [round(t, 2) for t in times],
            "realTimeFactor": round(seconds / statistics.median(times), 1),
            "peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "wer": round(wer(truth, normalised(text).split()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("audio")
    parser.add_argument("--batch-sizes", default="0,4,8,16")
    parser.add_argument("--beam-sizes", default="5,1")
    parser.add_argument("--threads", default="1", help="engine threads, one or several (1,2: thread scaling)")
    parser.add_argument("--models", default="tiny.en")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # BATCH,BEAM: run one setting in this process
    args = parser.parse_args()
    if args.one:
        batch, beam = (int(v) for v in args.one.split(","))
        print(json.dumps(measure(args.audio, batch, beam, int(args.threads), args.runs, args.models)))
        return
    results = []
    settings = [(model, beam, batch, threads) for model in args.models.split(",")
                for beam in (int(v) for v in args.beam_sizes.split(","))
                for batch in (int(v) for v in args.batch_sizes.split(","))
                for threads in (int(v) for v in args.threads.split(","))]
    for model, beam, batch, threads in settings:
        out = subprocess.run([sys.executable, __file__, args.audio, "--one", f"{batch},{beam}",
                              "--threads", str(threads), "--runs", str(args.runs), "--models", model],
                             check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        results.append(row)
    if args.out:
        machine = {"cpus": len(__import__("os").sched_getaffinity(0)), "platform": platform.platform(),
                   "python": platform.python_version()}
        Path(args.out).write_text(json.dumps({"machine": machine, "audio": Path(args.audio).name,
                                              "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
