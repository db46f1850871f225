"""Arrivals for the planner: a daily rate, a burst, or a trace file; durations from a mix."""

from __future__ import annotations

import json
import random
from pathlib import Path

from whisperq.core.errors import InvalidRequest


def parse_mix(text: str) -> list[tuple[float, float]]:
    """"60:0.8,3600:0.2" -> [(60.0, 0.8), (3600.0, 0.2)]: audio seconds and their share of jobs."""
    mix = []
    for part in text.split(","):
        try:
            seconds, weight = (float(x) for x in part.split(":"))
        except ValueError:
            raise InvalidRequest(f"--mix {text!r}: write SECONDS:SHARE pairs, e.g. 60:0.8,3600:0.2") from None
        if seconds <= 0 or weight <= 0:
            raise InvalidRequest(f"--mix {text!r}: seconds and shares must be positive")
        mix.append((seconds, weight))
    return mix


def durations(count: int, mix: list[tuple[float, float]], chooser: random.Random) -> list[float]:
    values, weights = zip(*mix, strict=True)
    return chooser.choices(values, weights, k=count)


def spread(count: int, start_s: float, over_s: float, mix: list[tuple[float, float]],
           chooser: random.Random) -> list[tuple[float, float]]:
    """`count` jobs arriving at random (a Poisson process) between start_s and start_s + over_s."""
    times = sorted(chooser.uniform(start_s, start_s + over_s) for _ in range(count))
    return list(zip(times, durations(count, mix, chooser), strict=True))


def trace(path: str | Path) -> list[tuple[float, float]]:
    """A JSON-lines file of {"t": seconds, "durationS": seconds} (a load test's jobs.jsonl also works:
    submittedAt and audioDurationS)."""
    arrivals = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        t = row.get("t", row.get("submittedAt"))
        duration = row.get("durationS", row.get("audioDurationS"))
        if t is None or duration is None:
            raise InvalidRequest(f"{path}:{number}: needs t (or submittedAt) and durationS (or audioDurationS)")
        arrivals.append((float(t), float(duration)))
    arrivals.sort()
    first = arrivals[0][0] if arrivals else 0.0
    return [(t - first, d) for t, d in arrivals]
