"""The planner's engine and pipeline figures, read from the project's own committed measurements
(never typed in), each with where it came from."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
EFFICIENCY_RUNS = ("performance/runs/efficiency-1/run-01", "performance/runs/efficiency-2/run-01",
                   "performance/runs/efficiency-3/run-01")
OVERHEAD_RUN = "performance/runs/overhead-burst/run-01"
ENGINES = "benchmarks/engines.json"
FANOUT = "benchmarks/fanout.json"
THREADS = "benchmarks/threads.json"
DIARIZATION = "benchmarks/diarization.json"
# Not measured here (the twin has no Lambda runtime): the runtime's own start before the model loads.
RUNTIME_INIT_S = 1.0


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    source: str  # the file(s) and the field(s) it came from, and how


def summary(docs: Path, run: str) -> dict[str, Any]:
    return json.loads((docs / run / "summary.json").read_text(encoding="utf-8"))


def calibrate(docs: Path = DOCS) -> dict[str, Figure]:
    """rtf_per_thread, thread_speedup, overhead_s, cold_start_s, split_s_per_audio_s, diarize_added from the committed
    results; each
    source names its files as paths from the repository's root (docs/...)."""
    where = docs.relative_to(ROOT).as_posix() + "/" if docs.is_relative_to(ROOT) else f"{docs}/"

    def at(path: str) -> str:
        return where + path

    runs = [summary(docs, run) for run in EFFICIENCY_RUNS]
    rtf = statistics.mean(run["meanRealTimeFactor"] for run in runs)
    overhead = summary(docs, OVERHEAD_RUN)
    overhead_s = overhead["drainS"] * overhead["config"]["workers"] / overhead["jobs"]
    engines = json.loads((docs / ENGINES).read_text(encoding="utf-8"))["results"]
    [faster] = [r for r in engines if r["name"] == "faster-whisper int8, beam 5, 1 thread"]
    threads = json.loads((docs / THREADS).read_text(encoding="utf-8"))["results"]
    one, two = ([r for r in threads if r["model"] == "tiny.en" and r["threads"] == n][0] for n in (1, 2))
    fanout = json.loads((docs / FANOUT).read_text(encoding="utf-8"))
    [alone] = [r for r in fanout["latency"] if r["fanout"] and r["workers"] == 1]
    job = alone["jobs"][0]
    split_s = max(0.0, alone["wallS"] - job["transcribeS"] - job["chunks"] * overhead_s) / job["audioS"]
    speakers = json.loads((docs / DIARIZATION).read_text(encoding="utf-8"))["speed"]
    added = statistics.mean((r["embedS"] + r["clusterS"]) / r["transcribeS"] for r in speakers)
    return {
        "rtf_per_thread": Figure("rtf_per_thread", round(rtf, 2),
                                 f"mean meanRealTimeFactor of {', '.join(map(at, EFFICIENCY_RUNS))} (tiny.en, int8, "
                                 "beam 5, 1 thread, 2 workers busy)"),
        "thread_speedup": Figure("thread_speedup", round(one["medianS"] / two["medianS"], 3),
                                 f"{at(THREADS)}: medianS of tiny.en at 1 thread over 2 threads ({one['medianS']} / "
                                 f"{two['medianS']} s, beam 5, sequential; held for more threads, not measured)"),
        "overhead_s": Figure("overhead_s", round(overhead_s, 4),
                             f"{at(OVERHEAD_RUN)}: drainS x workers / jobs ({overhead['drainS']} x "
                             f"{overhead['config']['workers']} / {overhead['jobs']} zero-cost jobs)"),
        "cold_start_s": Figure("cold_start_s", round(RUNTIME_INIT_S + faster["load_s"], 3),
                               f"{at(ENGINES)}: load_s of {faster['name']!r} ({faster['load_s']} s) + "
                               f"{RUNTIME_INIT_S} s assumed for Lambda's own runtime start (not measured here)"),
        "split_s_per_audio_s": Figure("split_s_per_audio_s", round(split_s, 5),
                                      f"{at(FANOUT)}: the 1-worker fan-out of {job['audioS']:.0f} s: (wallS - "
                                      "transcribeS - chunks x overhead_s) / audioS"),
        "diarize_added": Figure("diarize_added", round(added, 3),
                                f"{at(DIARIZATION)}: mean (embedS + clusterS) / transcribeS of "
                                f"{', '.join(r['file'] for r in speakers)} (tiny.en, beam 5, word timestamps, "
                                "1 thread)"),
    }
