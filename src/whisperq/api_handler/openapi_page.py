"""The page's routes and the operator view's in the OpenAPI document."""

from __future__ import annotations

from typing import Any

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_DEPTH = {"type": "object", "required": ["visible", "inFlight", "delayed"],
          "properties": {name: {"type": "integer", "minimum": 0} for name in ("visible", "inFlight", "delayed")}}


def _text(operation_id: str, summary: str, media_type: str) -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "summary": summary, "security": [],
                    "responses": {"200": {"description": summary, "content": {media_type: {
                        "schema": {"type": "string"}}}}}}}


def paths() -> dict[str, Any]:
    return {
        "/": {"get": {"operationId": "root", "summary": "redirect to the page", "security": [],
                      "responses": {"302": {"description": "Location: app",
                                            "headers": {"Location": {"schema": {"type": "string"}}},
                                            "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/app": _text("page", "the web page: upload, watch, download (asks for the API key)", "text/html"),
        "/app.js": _text("pageScript", "the page's script", "text/javascript"),
        "/ops/queues": {"get": {
            "operationId": "opsQueues",
            "summary": "operator view: queue depth, in flight, dead letters, and this key's latest failures",
            "responses": {
                "200": {"description": "SQS's approximate counts and the latest FAILED jobs with their reasons",
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["queue", "deadLetters", "failures"],
                            "properties": {"queue": _DEPTH, "deadLetters": _DEPTH, "failures": {
                                "type": "array", "items": {"type": "object", "required": ["jobId", "error"]}}}}}}},
                "403": {"description": "no valid API key", **_ERROR},
                "429": {"description": "throttled by the usage plan (AWS)", **_ERROR},
            }}},
    }
