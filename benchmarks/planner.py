"""How fast the planner simulates, and its predictions against the twin's committed load tests.

    .venv/bin/python benchmarks/planner.py --out docs/benchmarks/planner.json

A day of 100,000 jobs (80% 1-minute, 20% 1-hour recordings), 20,000 of them in a morning burst between
8:00 and 9:00, MaximumConcurrency 500, 3,008 MB: simulated --runs times, the wall time of each."""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from whisperq.planner import calibration, load  # noqa: E402
from whisperq.planner.costs import cost  # noqa: E402
from whisperq.planner.simulate import Pipeline, simulate  # noqa: E402


def validation() -> list[dict]:
    figures = calibration.calibrate()
    rows = []
    for run in ("concurrency/run-01-max_concurrency=1", "concurrency/run-02-max_concurrency=2"):
        measured = json.loads((ROOT / "docs" / "performance" / run / "summary.json").read_text())
        twin = Pipeline(max_concurrency=measured["config"]["workers"], rtf_per_thread=measured["meanRealTimeFactor"],
                        overhead_s=figures["overhead_s"].value, cold_start_s=0.0, ramp=False, memory_mb=1769,
                        fanout_min_duration_s=0)
        outcome = simulate([(0.0, measured["audioSeconds"] / measured["jobs"])] * measured["jobs"], twin)
        rows.append({"run": run, "measuredDrainS": measured["drainS"], "predictedDrainS": round(outcome.drain_s, 2),
                     "measuredP95S": measured["latencyS"]["p95"], "predictedP95S": round(outcome.latency(0.95), 2),
                     "drainError": round(outcome.drain_s / measured["drainS"] - 1, 4),
                     "p95Error": round(outcome.latency(0.95) / measured["latencyS"]["p95"] - 1, 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    chooser = random.Random(1)
    mix = [(60.0, 0.8), (3600.0, 0.2)]
    arrivals = sorted(load.spread(80_000, 0, 86_400, mix, chooser) + load.spread(20_000, 8 * 3600, 3600, mix, chooser))
    figures = {name: f.value for name, f in calibration.calibrate().items()}
    pipeline = Pipeline(max_concurrency=500, memory_mb=3008, **figures)
    walls = []
    for _ in range(args.runs):
        started = time.perf_counter()
        outcome = simulate(arrivals, pipeline)
        walls.append(round(time.perf_counter() - started, 2))
    result = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "jobs": len(arrivals), "wallS": walls, "events": outcome.messages + outcome.attempts + len(arrivals),
        "outcome": {"completed": outcome.completed, "drainS": round(outcome.drain_s, 1),
                    "p50S": round(outcome.latency(0.5), 1), "p95S": round(outcome.latency(0.95), 1),
                    "p99S": round(outcome.latency(0.99), 1), "peakConcurrency": outcome.peak_concurrency,
                    "chunks": outcome.chunks, "coldStarts": outcome.cold_starts},
        "cost": cost(outcome, pipeline), "calibration": figures, "validation": validation(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
