"""What a client choosing a model wants to know of it: its languages, its size and its speed, as
GET /v1/models and `whisperq models` show them.

Speeds are audio seconds per second on one thread at beam 5 (int8, faster-whisper). tiny.en's and base's
are measured here (docs/benchmarks/models.json); the others are the planner's estimates from parameter
counts (whisperq.planner.models, which says how), and say so. Sizes: the bundled models' files as their
packages hold them; the others at two bytes a parameter (the hub's float16 CTranslate2 conversions),
estimates too. tests/unit/test_tiers.py holds this table to the benchmark and to the planner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MEASURED = "measured (docs/benchmarks/models.json: int8, beam 5, 1 thread)"
ESTIMATED = "estimate (2026-12-07; whisperq.planner.models: scaled by parameter count)"


@dataclass(frozen=True)
class ModelFacts:
    name: str
    size_mb: float
    real_time: float  # audio seconds transcribed per second, one thread, beam 5
    measured: bool

    def to_dict(self) -> dict[str, Any]:
        return {"sizeMb": self.size_mb, "realTime": self.real_time,
                "speedSource": MEASURED if self.measured else ESTIMATED}


FACTS = {f.name: f for f in (
    ModelFacts("tiny.en", 78.1, 22.1, True),
    ModelFacts("base", 147.9, 13.5, True),
    ModelFacts("small", 488.0, 4.11, False),
    ModelFacts("medium", 1538.0, 1.3, False),
    ModelFacts("large-v3", 3100.0, 0.65, False),
    ModelFacts("large-v3-turbo", 1618.0, 1.24, False),
    ModelFacts("distil-large-v3", 1512.0, 1.33, False),
)}


def english_only(model: str) -> bool:
    return model.endswith(".en")


def describe(model: str) -> dict[str, Any]:
    """A model's languages, and its size and speed when they are known (a model fetched from the hub
    under a name of its own has none here)."""
    info: dict[str, Any] = {"languages": ["en"] if english_only(model) else "multilingual (99 languages)"}
    facts = FACTS.get(model)
    if facts is not None:
        info.update(facts.to_dict())
    return info
