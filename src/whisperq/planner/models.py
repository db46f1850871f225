"""The planner's Whisper models: each one's speed against tiny.en's, its memory and its load time.

tiny.en and base are measured here (docs/benchmarks/models.json and engines.json: int8, beam 5, one
thread). The others cannot be run here (no weights reach these machines), so they are estimates, each
saying so and from what: parameter counts from openai/whisper's README (openai-whisper 20250625) and
distil-whisper's model card, speed scaled from base's measured speed by parameter count, memory on a line
through tiny.en's measured peak and faster-whisper's published figure for small (int8, beam 5: 1477 MB,
faster-whisper 1.2.1's README), load time scaled from tiny.en's by parameter count. Parameter scaling
is crude: turbo and distil-large-v3 have 4- and 2-layer decoders, so they are likely faster than it says.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from whisperq.core.capacity import FUNCTION_MEMORY_MB

MODELS_RUN = "benchmarks/models.json"
ENGINES_RUN = "benchmarks/engines.json"
ESTIMATED_ON = "2026-12-07"
# Millions of parameters (openai/whisper's README; distil-large-v3: distil-whisper's model card).
PARAMETERS_M = {"tiny.en": 39, "base": 74, "small": 244, "medium": 769, "large-v3": 1550, "large-v3-turbo": 809,
                "distil-large-v3": 756}
PUBLISHED_SMALL_RAM_MB = 1477  # faster-whisper 1.2.1 README: small, int8, beam 5, 8 threads, 13 min of audio
LAMBDA_MAX_MB = 10240
HEADROOM = 1.25  # function memory over the model's peak: audio, batch buffers, the Python heap


@dataclass(frozen=True)
class ModelProfile:
    name: str
    speed: float  # audio seconds per second against tiny.en's (1.0)
    peak_mb: int  # a worker's peak memory transcribing with it
    load_s: float
    measured: bool
    source: str

    @property
    def function_memory_mb(self) -> int:
        """The Lambda memory to run it: its peak with headroom, never under the template's default."""
        return min(LAMBDA_MAX_MB, max(FUNCTION_MEMORY_MB, math.ceil(self.peak_mb * HEADROOM / 64) * 64))


def profiles(docs: Path) -> dict[str, ModelProfile]:
    """Every model the planner knows, by name (tiny.en and base measured, the rest estimated)."""
    runs = json.loads((docs / MODELS_RUN).read_text(encoding="utf-8"))["results"]
    tiny, base = ([r for r in runs if r["model"] == name and r["beamSize"] == 5 and r["threads"] == 1][0]
                  for name in ("tiny.en", "base"))
    engines = json.loads((docs / ENGINES_RUN).read_text(encoding="utf-8"))["results"]
    [faster] = [r for r in engines if r["name"] == "faster-whisper int8, beam 5, 1 thread"]
    base_speed = tiny["medianS"] / base["medianS"]
    measured = f"measured: docs/{MODELS_RUN} (int8, beam 5, 1 thread), docs/{ENGINES_RUN} (load)"
    out = {
        "tiny.en": ModelProfile("tiny.en", 1.0, tiny["peakRssMb"], faster["load_s"], True, measured),
        "base": ModelProfile("base", round(base_speed, 3), base["peakRssMb"],
                             round(faster["load_s"] * PARAMETERS_M["base"] / PARAMETERS_M["tiny.en"], 2), True,
                             measured + "; load scaled from tiny.en's"),
    }
    slope = (PUBLISHED_SMALL_RAM_MB - tiny["peakRssMb"]) / (PARAMETERS_M["small"] - PARAMETERS_M["tiny.en"])
    for name, parameters in PARAMETERS_M.items():
        if name in out:
            continue
        speed = base_speed * PARAMETERS_M["base"] / parameters
        peak = tiny["peakRssMb"] + slope * (parameters - PARAMETERS_M["tiny.en"])
        out[name] = ModelProfile(
            name, round(speed, 4), round(peak), round(faster["load_s"] * parameters / PARAMETERS_M["tiny.en"], 2),
            False, f"estimate ({ESTIMATED_ON}): {parameters} M parameters (openai/whisper README, distil-whisper "
                   "card); speed = base's measured x 74 M / its parameters; memory on the line from tiny.en's "
                   f"measured peak to faster-whisper's published {PUBLISHED_SMALL_RAM_MB} MB for small")
    return out
