"""The OpenAI-compatible routes in the OpenAPI document (their contract is OpenAI's own)."""

from __future__ import annotations

from typing import Any

from whisperq.core.openai_compat import GRANULARITIES, RESPONSE_FORMATS

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_ERROR}


def _audio(operation_id: str, summary: str, translate: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "the audio (wav, flac, mp3, m4a, ogg, webm)"},
        "model": {"type": "string", "description": "whisper-1, or the deployment's model (GET /v1/models)"},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    }
    if not translate:
        properties["language"] = {"type": "string", "description": "ISO-639-1 code; default: detect"}
        properties["timestamp_granularities[]"] = {"type": "array", "items": {"enum": list(GRANULARITIES)},
                                                   "description": "needs response_format verbose_json"}
    return {"post": {
        "operationId": operation_id,
        "summary": summary,
        "description": "OpenAI's audio API on the job pipeline: the route stores the audio, waits for its job "
                       "(at most WHISPERQ_OPENAI_WAIT_S, 25 s) and answers as OpenAI does. Authorization: "
                       "Bearer <API key> (or x-api-key). Every answer names its job in x-whisperq-job-id.",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file", "model"], "properties": properties}}}},
        "responses": {
            "200": {"description": "the transcript: JSON for json and verbose_json, text for text, srt, vtt",
                    "content": {"application/json": {"schema": {"type": "object", "required": ["text"]}},
                                "text/plain": {"schema": {"type": "string"}}}},
            "400": _error("a field refused, or the job FAILED (the reason, and the job id)"),
            "403": _error("no valid API key"),
            "408": _error("the job outlived the wait: it keeps running; the message and x-whisperq-job-id name it"),
            "413": _error("the file is over the route's limit (4 MiB): use POST /jobs"),
            "429": _error("throttled by the usage plan (AWS)"),
        },
    }}


def paths() -> dict[str, Any]:
    model = {"type": "object", "required": ["id", "object"], "properties": {"id": {"type": "string"},
                                                                           "object": {"const": "model"}}}
    return {
        "/v1/audio/transcriptions": _audio("openaiTranscriptions", "OpenAI-compatible transcription", False),
        "/v1/audio/translations": _audio("openaiTranslations", "OpenAI-compatible translation into English", True),
        "/v1/models": {"get": {"operationId": "openaiModels", "summary": "the models this deployment serves",
                               "responses": {"200": {"description": "OpenAI's model list", "content": {
                                   "application/json": {"schema": {"type": "object", "required": ["data"],
                                                                   "properties": {"data": {"type": "array",
                                                                                           "items": model}}}}}},
                                   "403": _error("no valid API key")}}},
        "/v1/models/{model}": {"get": {
            "operationId": "openaiModel", "summary": "one model",
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the model", "content": {"application/json": {"schema": model}}},
                          "400": _error("a malformed model name"), "404": _error("no such model here"),
                          "403": _error("no valid API key")}}},
    }
