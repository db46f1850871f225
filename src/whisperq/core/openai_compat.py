"""OpenAI's audio API in whisperq's terms: its form fields checked and turned into a job's options,
and a finished transcript turned into its response shapes (json, text, srt, vtt, verbose_json).

https://platform.openai.com/docs/api-reference/audio/createTranscription is the contract; the SDK
(`openai.OpenAI(base_url=...).audio.transcriptions.create`) is the client the tests use."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from whisperq.core import model_facts
from whisperq.core.errors import InvalidRequest
from whisperq.core.languages import LANGUAGES
from whisperq.core.transcript import Transcript
from whisperq.core.writers import WRITERS

# The name every OpenAI client sends; here it means "the model this deployment runs".
OPENAI_MODEL = "whisper-1"
# OpenAI's diarizing model's name; here, the deployment's model with speakers labelled.
OPENAI_DIARIZE_MODEL = "gpt-4o-transcribe-diarize"
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
GRANULARITIES = ("word", "segment")
TRANSCRIBE_FIELDS = frozenset({"file", "model", "language", "prompt", "response_format", "temperature",
                               "timestamp_granularities[]", "timestamp_granularities", "stream", "chunking_strategy",
                               "include[]"})
TRANSLATE_FIELDS = frozenset({"file", "model", "prompt", "response_format", "temperature"})


class OpenAIRequestError(InvalidRequest):
    """A field OpenAI's contract refuses: `param` names it, as OpenAI's error object does."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        if code:
            self.code = code


@dataclass(frozen=True)
class AudioRequest:
    """One transcription or translation request, checked."""

    task: str  # "transcribe" or "translate"
    filename: str
    audio: bytes
    response_format: str
    words: bool
    segments: bool
    options: dict[str, Any]  # the job's options, as POST /jobs takes them
    model: str | None = None  # one of the deployment's models by name; None: its default (whisper-1)


def _one(fields: dict[str, list[Any]], name: str) -> Any:
    values = fields.get(name) or []
    if len(values) > 1:
        raise OpenAIRequestError(f"{name} was sent {len(values)} times; send it once", name)
    return values[0] if values else None


def parse_request(fields: dict[str, list[Any]], task: str, models: str | Sequence[str]) -> AudioRequest:
    """Check the form OpenAI's clients send: `fields` maps a field name to its values (text, or
    (filename, bytes) for the file). `models`: the deployment's models, its default first (whisper-1 and
    OpenAI's diarizing model's name mean the default)."""
    served = (models,) if isinstance(models, str) else tuple(models)
    allowed = TRANSCRIBE_FIELDS if task == "transcribe" else TRANSLATE_FIELDS
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise OpenAIRequestError(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    upload = _one(fields, "file")
    if not isinstance(upload, tuple):
        raise OpenAIRequestError("the request needs a `file` part with the audio (multipart/form-data)", "file")
    filename, audio = upload
    if not audio:
        raise OpenAIRequestError("the file is empty", "file")
    wanted_model = _one(fields, "model")
    if not wanted_model:
        raise OpenAIRequestError("you must provide a model parameter", "model")
    if wanted_model not in (OPENAI_MODEL, OPENAI_DIARIZE_MODEL, *served):
        raise OpenAIRequestError(f"model {wanted_model!r} does not exist here; this deployment runs "
                                 f"{', '.join(repr(m) for m in served)} (its default {served[0]!r} also as "
                                 f"{OPENAI_MODEL!r}, and as {OPENAI_DIARIZE_MODEL!r} for diarized_json)", "model",
                                 "model_not_found")
    if _one(fields, "stream") not in (None, "false", "False"):
        raise OpenAIRequestError("streaming is not supported; omit stream", "stream")
    response_format = _one(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise OpenAIRequestError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", "response_format")
    granularities = [*fields.get("timestamp_granularities[]", []), *fields.get("timestamp_granularities", [])]
    bad = sorted(set(granularities) - set(GRANULARITIES))
    if bad:
        raise OpenAIRequestError(f"timestamp_granularities must be word and/or segment, not {bad[0]!r}",
                                 "timestamp_granularities")
    if response_format == "diarized_json" and task != "transcribe":
        raise OpenAIRequestError("diarized_json is for transcriptions, not translations", "response_format")
    if granularities and response_format != "verbose_json":
        raise OpenAIRequestError("timestamp_granularities needs response_format verbose_json",
                                 "timestamp_granularities")
    options: dict[str, Any] = {"task": task}
    language = _one(fields, "language")
    if language:
        if language.lower() not in LANGUAGES:
            raise OpenAIRequestError(f"language {language!r} is not an ISO-639-1 code Whisper knows (e.g. 'en')",
                                     "language")
        options["language"] = language.lower()
    prompt = _one(fields, "prompt")
    if prompt:
        options["initialPrompt"] = prompt
    temperature = _one(fields, "temperature")
    if temperature not in (None, ""):
        try:
            value = float(temperature)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise OpenAIRequestError("temperature must be a number from 0 to 1", "temperature")
        # 0 is OpenAI's default and means "sample with the fallback schedule" there as in Whisper.
        options["temperature"] = value if value > 0 else None
    if "word" in granularities:
        options["wordTimestamps"] = True
    if response_format == "diarized_json":
        options["diarize"] = True
    return AudioRequest(task, str(filename or "audio"), audio, response_format, "word" in granularities,
                        "segment" in granularities or not granularities, options,
                        wanted_model if wanted_model in served else None)


def render(request: AudioRequest, transcript: Transcript) -> tuple[str, str]:
    """(content type, body) of the answer to `request`, from the job's transcript."""
    fmt = request.response_format
    usage = {"type": "duration", "seconds": math.ceil(transcript.duration_s)}
    if fmt == "json":
        return "application/json", json.dumps({"text": transcript.text, "usage": usage}, ensure_ascii=False)
    if fmt == "text":
        return "text/plain; charset=utf-8", transcript.text + "\n"
    if fmt in ("srt", "vtt"):
        return "text/plain; charset=utf-8", WRITERS[fmt](transcript)
    if fmt == "diarized_json":
        return "application/json", json.dumps(diarized(transcript) | {"usage": usage}, ensure_ascii=False)
    body: dict[str, Any] = {
        "task": "translate" if request.task == "translate" else "transcribe",
        "language": "english" if request.task == "translate" else LANGUAGES.get(transcript.language,
                                                                                 transcript.language),
        "duration": round(transcript.duration_s, 3),
        "text": transcript.text,
    }
    if request.segments:
        body["segments"] = [
            {"id": seg.id, "seek": 0, "start": round(seg.start, 3), "end": round(seg.end, 3), "text": seg.text,
             "tokens": [], "temperature": 0.0, "avg_logprob": seg.avg_logprob, "compression_ratio": 0.0,
             "no_speech_prob": seg.no_speech_prob}
            for seg in transcript.segments
        ]
    if request.words:
        body["words"] = [{"word": word.word.strip(), "start": round(word.start, 3), "end": round(word.end, 3)}
                         for seg in transcript.segments for word in seg.words]
    body["usage"] = usage
    return "application/json", json.dumps(body, ensure_ascii=False)


def speaker_letter(label: str | None, order: dict[str, str]) -> str:
    """OpenAI's speaker names: A, B, ... Z, then AA, AB ... in the order the voices are first heard (a
    segment nobody was heard in, a pause far from any turn, gets one letter of its own for all of them)."""
    key = label or ""
    if key not in order:
        index = len(order)
        order[key] = chr(65 + index) if index < 26 else chr(64 + index // 26) + chr(65 + index % 26)
    return order[key]


def diarized(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's diarized_json: the text, and segments each with its speaker (A, B, ...)."""
    order: dict[str, str] = {}
    segments = [{"type": "transcript.text.segment", "id": f"seg_{seg.id}", "start": round(seg.start, 3),
                 "end": round(seg.end, 3), "text": seg.text.strip(), "speaker": speaker_letter(seg.speaker, order)}
                for seg in transcript.segments if seg.text.strip()]
    return {"task": "transcribe", "duration": round(transcript.duration_s, 3), "text": transcript.text,
            "segments": segments}


def error_body(message: str, kind: str, code: str | None, param: str | None = None) -> str:
    """OpenAI's error object, with whisperq's `code` and `message` where its own clients read them."""
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def models(served: Sequence[str], created: int) -> dict[str, Any]:
    """GET /v1/models: whisper-1 (the deployment's default model), each of its models under its own name,
    and OpenAI's diarizing model's name (the default, speakers labelled)."""
    names = (OPENAI_MODEL, *served, OPENAI_DIARIZE_MODEL)
    return {"object": "list", "data": [model_info(name, created, served) for name in names]}


def model_info(name: str, created: int, served: Sequence[str]) -> dict[str, Any]:
    """One model as OpenAI describes it, and whisperq's additions (clients ignore what they do not know):
    the response formats it answers in, its languages, size and speed (core/model_facts.py), whether it
    is the default, and for an alias, the model it stands for."""
    runs = served[0] if name in (OPENAI_MODEL, OPENAI_DIARIZE_MODEL) else name
    info = {"id": name, "object": "model", "created": created, "owned_by": "whisperq",
            "response_formats": list(RESPONSE_FORMATS), **model_facts.describe(runs), "default": runs == served[0]}
    if runs != name:
        info["aliasOf"] = runs
    return info
