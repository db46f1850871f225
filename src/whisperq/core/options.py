"""Per-job transcription options: what the API accepts, how they are checked, and their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from whisperq.core.contract import Model, Text
from whisperq.core.errors import InvalidRequest
from whisperq.core.languages import LANGUAGES
from whisperq.core.speakers import MAX_SPEAKERS, SpeakerHints

LANGUAGE_CODES = frozenset(LANGUAGES)
MAX_PROMPT_CHARS = 1000
MAX_BEAM_SIZE = 10
MIN_TEMPERATURE = 0.0001  # finer than any sampling needs; 1e-140 is not a number DynamoDB stores


def _language(code: str | None) -> str | None:
    if code is None or code == "auto":
        return None
    if code.lower() not in LANGUAGE_CODES:
        raise ValueError(f"{code!r} is not a Whisper language code (e.g. 'en'), or 'auto'")
    return code.lower()


def _temperature(value: float | None) -> float | None:
    if value is not None and 0.0 < value < MIN_TEMPERATURE:
        raise ValueError(f"must be 0 or a number from {MIN_TEMPERATURE} to 1 (or null for the fallback)")
    return None if value is None else float(value)


class Options(Model):
    """The options as a client sends them (camelCase JSON): the one definition the API validates with
    and its OpenAPI document shows."""

    refusals = {
        "language": "is not a Whisper language code (e.g. 'en'), or 'auto'",
        "task": "must be 'transcribe' or 'translate'",
        "initialPrompt": f"must be a string of at most {MAX_PROMPT_CHARS} characters",
        "wordTimestamps": "must be true or false",
        "vadFilter": "must be true or false",
        "beamSize": f"must be an integer from 1 to {MAX_BEAM_SIZE}",
        "temperature": f"must be 0 or a number from {MIN_TEMPERATURE} to 1 (or null for the fallback)",
        "diarize": "must be true or false",
        "numSpeakers": f"must be an integer from 1 to {MAX_SPEAKERS}",
        "minSpeakers": f"must be an integer from 1 to {MAX_SPEAKERS}",
        "maxSpeakers": f"must be an integer from 1 to {MAX_SPEAKERS}",
    }

    language: Annotated[Text | None, AfterValidator(_language)] = Field(
        None, description="a Whisper language code, or 'auto' (detect it)")
    task: Literal["transcribe", "translate"] = "transcribe"
    initial_prompt: Text | None = Field(None, alias="initialPrompt", max_length=MAX_PROMPT_CHARS)
    word_timestamps: bool = Field(False, alias="wordTimestamps")
    vad_filter: bool = Field(False, alias="vadFilter")
    beam_size: int = Field(5, alias="beamSize", ge=1, le=MAX_BEAM_SIZE)
    temperature: Annotated[float | None, AfterValidator(_temperature)] = Field(
        None, ge=0, le=1, allow_inf_nan=False, description="null: Whisper's fallback schedule 0.0, 0.2 ... 1.0")
    diarize: bool = Field(False, description="label who spoke when (SPEAKER_00, ...); word timestamps come with it")
    num_speakers: int | None = Field(None, alias="numSpeakers", ge=1, le=MAX_SPEAKERS,
                                     description="diarize: exactly this many speakers")
    min_speakers: int | None = Field(None, alias="minSpeakers", ge=1, le=MAX_SPEAKERS,
                                     description="diarize: at least this many speakers")
    max_speakers: int | None = Field(None, alias="maxSpeakers", ge=1, le=MAX_SPEAKERS,
                                     description="diarize: at most this many speakers")

    @model_validator(mode="after")
    def _speaker_hints(self) -> Options:
        hinted = [name for name, value in (("numSpeakers", self.num_speakers), ("minSpeakers", self.min_speakers),
                                           ("maxSpeakers", self.max_speakers)) if value is not None]
        if hinted and not self.diarize:
            raise ValueError(f"{', '.join(hinted)} only apply with diarize: true")
        if self.num_speakers is not None and (self.min_speakers is not None or self.max_speakers is not None):
            raise ValueError("give numSpeakers, or minSpeakers and maxSpeakers, not both")
        if (self.min_speakers or 1) > (self.max_speakers or MAX_SPEAKERS):
            raise ValueError("minSpeakers must not be more than maxSpeakers")
        return self


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None  # None: detect it
    task: str = "transcribe"  # or "translate" (into English)
    initial_prompt: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = False
    beam_size: int = 5
    temperature: float | None = None  # None: whisper's fallback schedule 0.0, 0.2, ... 1.0
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    @property
    def speaker_hints(self) -> SpeakerHints:
        return SpeakerHints(self.num_speakers, self.min_speakers or 1, self.max_speakers)

    @classmethod
    def from_api(cls, raw: object, model: str = "tiny.en") -> TranscribeOptions:
        """Check options as a client sends them (camelCase JSON); InvalidRequest names what is wrong."""
        if raw is None:
            return cls()
        checked = Options.parse(raw, at=("options",))
        options = cls(language=checked.language, task=checked.task, initial_prompt=checked.initial_prompt or None,
                      # A diarized segment is split at the word where its speaker changes: words are timed.
                      word_timestamps=checked.word_timestamps or checked.diarize, vad_filter=checked.vad_filter,
                      beam_size=checked.beam_size, temperature=checked.temperature, diarize=checked.diarize,
                      num_speakers=checked.num_speakers, min_speakers=checked.min_speakers,
                      max_speakers=checked.max_speakers)
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
        return {field.alias or name: getattr(self, name) for name, field in Options.model_fields.items()}
