"""Benchmark the Whisper engines on the same speech, threads and settings.

Every configuration runs in a fresh process (so its peak RSS is its own): one warm-up, then
--runs timed runs; the median is reported. Writes docs/benchmarks/engines.{md,json}.

    .venv/bin/python benchmarks/engines.py            # the full matrix, about 8 minutes on 2 cores
    .venv/bin/python benchmarks/engines.py --quick    # one run each, fewer configurations
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "examples" / "passage.ogg"
TEXT = ROOT / "examples" / "passage.txt"
OUT = ROOT / "docs" / "benchmarks"

CONFIGS = [
    {"name": "faster-whisper int8, greedy, 1 thread", "engine": "faster", "compute": "int8", "beam": 1, "threads": 1},
    {"name": "faster-whisper int8, greedy, 2 threads", "engine": "faster", "compute": "int8", "beam": 1, "threads": 2},
    {"name": "faster-whisper fp32, greedy, 2 threads", "engine": "faster", "compute": "float32", "beam": 1,
     "threads": 2},
    {"name": "openai-whisper fp32, greedy, 1 thread", "engine": "openai", "beam": 1, "threads": 1},
    {"name": "openai-whisper fp32, greedy, 2 threads", "engine": "openai", "beam": 1, "threads": 2},
    {"name": "faster-whisper int8, beam 5, 1 thread", "engine": "faster", "compute": "int8", "beam": 5, "threads": 1},
    {"name": "openai-whisper fp32, beam 5, 1 thread", "engine": "openai", "beam": 5, "threads": 1},
    {"name": "faster-whisper int8, beam 5, 2 threads", "engine": "faster", "compute": "int8", "beam": 5, "threads": 2},
    {"name": "openai-whisper fp32, beam 5, 2 threads", "engine": "openai", "beam": 5, "threads": 2},
    {"name": "faster-whisper int8, batched pipeline (batch 8), 2 threads", "engine": "batched", "compute": "int8",
     "beam": 1, "threads": 2},
]
QUICK = {0, 3, 9}


def word_error_rate(reference: str, hypothesis: str) -> float:
    from whisper.normalizers import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(1, len(ref))


def run_one(config: dict, runs: int) -> dict:
    """Inside the child process: load, warm up, time `runs` transcriptions."""
    from whisperq.core.options import TranscribeOptions
    from whisperq.transcriber.audio import decode

    audio = decode(str(AUDIO), AUDIO.name)
    duration_s = audio.size / 16000
    options = TranscribeOptions(beam_size=config["beam"])
    started = time.perf_counter()
    if config["engine"] == "faster":
        from whisperq.transcriber.engines.faster import FasterWhisperEngine

        engine = FasterWhisperEngine("tiny.en", config["compute"], config["threads"])
        transcribe = lambda: engine.transcribe(audio, options).text  # noqa: E731
    elif config["engine"] == "openai":
        from whisperq.transcriber.engines.openai import OpenAIWhisperEngine

        engine = OpenAIWhisperEngine("tiny.en", config["threads"], Path(tempfile.gettempdir()) / "whisperq-bench")
        transcribe = lambda: engine.transcribe(audio, options).text  # noqa: E731
    else:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        from whisperq.transcriber.models import resolve_ct2_model

        model = WhisperModel(str(resolve_ct2_model("tiny.en")), device="cpu", compute_type=config["compute"],
                             cpu_threads=config["threads"])
        pipeline = BatchedInferencePipeline(model=model)

        def transcribe() -> str:
            segments, _ = pipeline.transcribe(audio, batch_size=8, beam_size=config["beam"])
            return " ".join(s.text.strip() for s in segments)

    load_s = time.perf_counter() - started
    text = transcribe()  # warm-up
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        text = transcribe()
        walls.append(time.perf_counter() - started)
    wall = statistics.median(walls)
    return {
        **config,
        "audio_s": round(duration_s, 2),
        "runs": runs,
        "wall_s": round(wall, 3),
        "walls_s": [round(w, 3) for w in walls],
        "rtf": round(duration_s / wall, 1),
        "load_s": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "wer": round(word_error_rate(TEXT.read_text(encoding="utf-8"), text), 4),
    }


def machine() -> dict:
    import ctranslate2
    import faster_whisper
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "ctranslate2": ctranslate2.__version__, "faster_whisper": faster_whisper.__version__,
        "platform": platform.platform(), "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def report(results: list[dict], info: dict) -> str:
    by_name = {r["name"]: r for r in results}
    lines = [
        "# Engine benchmark: tiny.en on CPU",
        "",
        f"Measured with `.venv/bin/python benchmarks/engines.py` on {info['date']}: {info['cpu']}, "
        f"{info['cores']} cores, Python {info['python']}, torch {info['torch']}, "
        f"CTranslate2 {info['ctranslate2']}, faster-whisper {info['faster_whisper']}.",
        "",
        f"Audio: `examples/passage.ogg`, {results[0]['audio_s']} s of espeak-ng speech (a natural meeting "
        "passage, not a repeated clip), decoded once with PyAV to 16 kHz. Each configuration ran in its own "
        f"process: model load, one warm-up, then {results[0]['runs']} timed runs; the median is shown. "
        "Real-time factor = audio seconds / wall seconds (higher is faster). WER against the known text after "
        "whisper's English normaliser (espeak-ng speech is harder than human speech). Peak RSS is the "
        "process's whole high-water mark (decoding, model, inference).",
        "",
        "| configuration | wall s | real-time factor | peak RSS MB | model load s | WER |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['name']} | {r['wall_s']} | {r['rtf']}x | {r['peak_rss_mb']} | {r['load_s']} | "
                     f"{r['wer']:.1%} |")
    pairs = [("faster-whisper int8, greedy, 2 threads", "openai-whisper fp32, greedy, 2 threads"),
             ("faster-whisper int8, greedy, 1 thread", "openai-whisper fp32, greedy, 1 thread"),
             ("faster-whisper int8, beam 5, 1 thread", "openai-whisper fp32, beam 5, 1 thread"),
             ("faster-whisper int8, beam 5, 2 threads", "openai-whisper fp32, beam 5, 2 threads")]
    speedups = [(a, b, by_name[b]["wall_s"] / by_name[a]["wall_s"]) for a, b in pairs
                if a in by_name and b in by_name]
    if speedups:
        lines += ["", "faster-whisper int8 against openai-whisper fp32, same settings and threads:", ""]
        lines += [f"- {a.split(', ', 1)[1]}: **{s:.2f}x** faster" for a, b, s in speedups]
        lines += ["", "The service's default is beam 5 with one thread per worker process (`WHISPERQ_CPU_THREADS=1`) "
                  "and one worker per core (`max_concurrency`)."]
    lines += ["", "Raw numbers (every run): `docs/benchmarks/engines.json`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run each, three configurations")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one), args.runs)))
        return
    runs = 1 if args.quick else args.runs
    configs = [c for i, c in enumerate(CONFIGS) if not args.quick or i in QUICK]
    results = []
    for config in configs:
        print(f"running: {config['name']} ...", file=sys.stderr, flush=True)
        child = subprocess.run([sys.executable, __file__, "--one", json.dumps(config), "--runs", str(runs)],
                               capture_output=True, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  {result['rtf']}x real time, {result['peak_rss_mb']} MB, WER {result['wer']:.1%}",
              file=sys.stderr, flush=True)
        results.append(result)
    info = machine()
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    (OUT / f"engines{suffix}.json").write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    (OUT / f"engines{suffix}.md").write_text(report(results, info))
    print(report(results, info))


if __name__ == "__main__":
    main()
