"""Per-job transcription options: what the API accepts, how they are checked, and their defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from whisperq.core.errors import InvalidRequest
from whisperq.core.languages import LANGUAGES

LANGUAGE_CODES = frozenset(LANGUAGES)
MAX_PROMPT_CHARS = 1000
MAX_BEAM_SIZE = 10
MIN_TEMPERATURE = 0.0001  # finer than any sampling needs; 1e-140 is not a number DynamoDB stores

# API name -> field name
_API_NAMES = {
    "language": "language",
    "task": "task",
    "initialPrompt": "initial_prompt",
    "wordTimestamps": "word_timestamps",
    "vadFilter": "vad_filter",
    "beamSize": "beam_size",
    "temperature": "temperature",
}


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None  # None: detect it
    task: str = "transcribe"  # or "translate" (into English)
    initial_prompt: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = False
    beam_size: int = 5
    temperature: float | None = None  # None: whisper's fallback schedule 0.0, 0.2, ... 1.0

    @classmethod
    def from_api(cls, raw: Any, model: str = "tiny.en") -> TranscribeOptions:
        """Check options as a client sends them (camelCase JSON); InvalidRequest names what is wrong."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise InvalidRequest("options must be a JSON object")
        unknown = sorted(set(raw) - set(_API_NAMES))
        if unknown:
            raise InvalidRequest(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(_API_NAMES)}")
        values: dict[str, Any] = {}
        language = raw.get("language")
        if language is not None and language != "auto":
            if not isinstance(language, str) or language.lower() not in LANGUAGE_CODES:
                raise InvalidRequest(f"options.language {language!r} is not a Whisper language code (e.g. 'en')")
            values["language"] = language.lower()
        task = raw.get("task", "transcribe")
        if task not in ("transcribe", "translate"):
            raise InvalidRequest("options.task must be 'transcribe' or 'translate'")
        values["task"] = task
        prompt = raw.get("initialPrompt")
        if prompt is not None:
            if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
                raise InvalidRequest(f"options.initialPrompt must be a string of at most {MAX_PROMPT_CHARS} chars")
            values["initial_prompt"] = prompt or None
        for api_name in ("wordTimestamps", "vadFilter"):
            if api_name in raw:
                if not isinstance(raw[api_name], bool):
                    raise InvalidRequest(f"options.{api_name} must be true or false")
                values[_API_NAMES[api_name]] = raw[api_name]
        if "beamSize" in raw:
            beam = raw["beamSize"]
            if isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= MAX_BEAM_SIZE:
                raise InvalidRequest(f"options.beamSize must be an integer from 1 to {MAX_BEAM_SIZE}")
            values["beam_size"] = beam
        temperature = raw.get("temperature")
        if temperature is not None:
            if (
                isinstance(temperature, bool)
                or not isinstance(temperature, int | float)
                or not math.isfinite(temperature)
                or not 0.0 <= temperature <= 1.0
                or 0.0 < temperature < MIN_TEMPERATURE
            ):
                raise InvalidRequest(f"options.temperature must be 0 or a number from {MIN_TEMPERATURE} to 1 (or null "
                                     "for the fallback)")
            values["temperature"] = float(temperature)
        options = cls(**values)
        options.check_model(model)
        return options

    def check_model(self, model: str) -> None:
        """English-only models (*.en) can neither transcribe another language nor translate."""
        if model.endswith(".en"):
            if self.language not in (None, "en"):
                raise InvalidRequest(
                    f"model {model} is English-only; options.language must be 'en' or omitted. For "
                    f"{self.language!r}, run a multilingual model: WHISPERQ_MODEL=base (bundled; on the twin "
                    "`WHISPERQ_MODEL=base whisperq local up`, on AWS the transcriber function's WHISPERQ_MODEL)")
            if self.task == "translate":
                raise InvalidRequest(
                    f"model {model} is English-only and cannot translate; use task 'transcribe', or run a "
                    "multilingual model: WHISPERQ_MODEL=base (bundled)")

    def to_api(self) -> dict[str, Any]:
        """The options as the API shows and stores them (camelCase, defaults included)."""
        return {api: getattr(self, field) for api, field in _API_NAMES.items()}
