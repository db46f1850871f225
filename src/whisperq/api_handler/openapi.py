"""The API's OpenAPI 3.1 document (served at GET /openapi.json; tests check responses against it)."""

from __future__ import annotations

from typing import Any

from whisperq import __version__
from whisperq.api_handler.openapi_openai import paths as openai_paths
from whisperq.api_handler.openapi_page import paths as page_paths
from whisperq.api_handler.service import MAX_IDEMPOTENCY_KEY_CHARS, MAX_PAGE_SIZE
from whisperq.core.audio import AUDIO_CONTENT_TYPES
from whisperq.core.callbacks import MAX_URL_CHARS
from whisperq.core.jobs import JobStatus
from whisperq.core.keys import MAX_FILENAME_CHARS
from whisperq.core.options import MAX_BEAM_SIZE, MAX_PROMPT_CHARS
from whisperq.core.sources import MAX_SOURCE_CHARS
from whisperq.core.writers import WRITERS

# Every limit below is the one the code enforces, named where it is enforced: never a second copy.

_JOB_ID = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
}
_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "language": {"type": ["string", "null"], "description": "a Whisper language code, or 'auto'"},
        "task": {"type": "string", "enum": ["transcribe", "translate"]},
        "initialPrompt": {"type": ["string", "null"], "maxLength": MAX_PROMPT_CHARS},
        "wordTimestamps": {"type": "boolean"},
        "vadFilter": {"type": "boolean"},
        "beamSize": {"type": "integer", "minimum": 1, "maximum": MAX_BEAM_SIZE},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    },
}
_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["filename", "contentType"],
    "properties": {
        "filename": {"type": "string", "minLength": 1, "maxLength": MAX_FILENAME_CHARS,
                     "description": "a bare file name"},
        "contentType": {"type": "string", "enum": sorted(AUDIO_CONTENT_TYPES)},
        "options": {"$ref": "#/components/schemas/Options"},
        "callbackUrl": {
            "type": "string",
            "format": "uri",
            "maxLength": MAX_URL_CHARS,
            "description": "POSTed the final job, signed (X-Whisperq-Signature), on COMPLETED or FAILED",
        },
    },
}
# POST /jobs with audio that is already somewhere: the service copies (S3) or fetches (a URL) it itself.
_CREATE_FROM_SOURCE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source"],
    "properties": {
        "source": {"type": "string", "minLength": 1, "maxLength": MAX_SOURCE_CHARS,
                   "description": "s3://bucket/key of an object in a bucket granted to the deployment (copied "
                                  "server-side), or an https:// URL (fetched by a worker; private, loopback and "
                                  "link-local addresses refused)"},
        "filename": {**_CREATE["properties"]["filename"], "description": "default: the key's or the URL's last part"},
        "contentType": {**_CREATE["properties"]["contentType"],
                        "description": "default: the object's type when it is audio, else from the file name"},
        "options": _CREATE["properties"]["options"],
        "callbackUrl": _CREATE["properties"]["callbackUrl"],
    },
}
# POST /upload: the same, and the file's size, which the pre-signed PUT is signed for (S3 refuses another).
_CREATE_UPLOAD = {
    **_CREATE,
    "required": ["filename", "contentType", "contentLength"],
    "properties": {
        **_CREATE["properties"],
        "contentLength": {"type": "integer", "minimum": 1,
                          "description": "the file's size in bytes (at most WHISPERQ_MAX_UPLOAD_BYTES): the upload "
                                         "URL is signed for exactly this size"},
    },
}
IDEMPOTENCY_PARAM = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Send a create again with the same key (after a timeout or a 5xx) and get the same job back, "
                   "not a second one: the answer then carries idempotentReplayed: true. The same key with a "
                   "different body is a 409. Scoped to the API key; 1 to 255 printable ASCII characters.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
               "pattern": "^[\\x21-\\x7e]+$"},
}
_REPLAYED = {"type": "boolean", "description": "true when an Idempotency-Key matched an earlier create"}
_JOB = {
    "type": "object",
    "required": ["jobId", "status", "filename", "contentType", "createdAt", "updatedAt", "attempts", "options"],
    "properties": {
        "jobId": _JOB_ID,
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "filename": {"type": "string"},
        "contentType": {"type": "string"},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "attempts": {"type": "integer", "minimum": 0},
        "options": {"$ref": "#/components/schemas/Options"},
        "callbackUrl": {"type": "string"},
        "source": {"type": "string", "description": "where its audio came from (s3://... or a URL); absent when "
                                                   "it was uploaded"},
        "details": {"type": "object", "description": "timings, engine, model, language, retries; for a long "
                    "file fanned out across workers, chunks and chunksDone (its progress)"},
        "transcriptUrl": {"type": ["string", "null"], "description": "the txt transcript, when COMPLETED"},
        "transcriptUrls": {"type": "object", "additionalProperties": {"type": "string"}},
        "expiresIn": {"type": "integer"},
        "error": {"type": "string", "description": "why the job FAILED"},
        "idempotentReplayed": _REPLAYED,
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


_JOB_PARAM = {"name": "jobId", "in": "path", "required": True, "schema": _JOB_ID}
_COMMON_ERRORS = {"403": _error("no valid x-api-key"), "429": _error("throttled by the usage plan (AWS)")}


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    job_errors = {"400": _error("malformed job id"), "404": _error("no such job for this key"), **_COMMON_ERRORS}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "whisperq",
            "version": __version__,
            "description": "Queue-driven audio transcription with Whisper. Create a job, upload the audio "
            "straight to S3 with the returned form or URL, poll the job, download transcripts.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/health": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "summary": "liveness",
                    "responses": {"200": _json("Health", "the API answers")},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "this document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/upload": {
                "post": {
                    "operationId": "createUpload",
                    "parameters": [IDEMPOTENCY_PARAM],
                    "summary": "create a job; upload with a pre-signed PUT (original API)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateUpload"}}},
                    },
                    "responses": {
                        "201": _json("Upload", "job created, waiting for its upload"),
                        "400": _error("malformed or invalid request"),
                        "409": _error("the Idempotency-Key was used with a different request"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/status/{jobId}": {
                "get": {
                    "operationId": "getStatus",
                    "summary": "a job (original API)",
                    "parameters": [_JOB_PARAM],
                    "responses": {"200": _json("Job", "the job"), **job_errors},
                }
            },
            "/jobs": {
                "post": {
                    "operationId": "createJob",
                    "parameters": [IDEMPOTENCY_PARAM],
                    "summary": "create a job: upload with the pre-signed POST form, or give an s3:// or https:// "
                               "source",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateJob"}}},
                    },
                    "responses": {
                        "201": _json("CreatedJob", "job created, waiting for its upload"),
                        "400": _error("malformed or invalid request"),
                        "409": _error("the Idempotency-Key was used with a different request"),
                        **_COMMON_ERRORS,
                    },
                },
                "get": {
                    "operationId": "listJobs",
                    "summary": "this key's jobs, newest first",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": [s.value for s in JobStatus]},
                        },
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}},
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "nextCursor of the previous page",
                        },
                    ],
                    "responses": {
                        "200": _json("JobList", "a page of jobs"),
                        "400": _error("bad query"),
                        **_COMMON_ERRORS,
                    },
                },
            },
            "/jobs/{jobId}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "a job",
                    "parameters": [_JOB_PARAM],
                    "responses": {"200": _json("Job", "the job"), **job_errors},
                },
                "delete": {
                    "operationId": "cancelJob",
                    "summary": "cancel an unfinished job and delete its files",
                    "parameters": [_JOB_PARAM],
                    "responses": {
                        "200": _json("Job", "the cancelled job"),
                        "409": _error("the job already ended"),
                        **job_errors,
                    },
                },
            },
            "/jobs/{jobId}/transcript": {
                "get": {
                    "operationId": "getTranscript",
                    "summary": "redirect to a pre-signed transcript URL",
                    "parameters": [
                        _JOB_PARAM,
                        {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(WRITERS)}},
                    ],
                    "responses": {
                        "302": {
                            "description": "Location: the pre-signed URL",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["transcriptUrl"],
                                        "properties": {"transcriptUrl": {"type": "string"}},
                                    }
                                }
                            },
                        },
                        "409": _error("the job is not COMPLETED"),
                        **job_errors,
                    },
                }
            },
            **openai_paths(),
            **page_paths(),
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                                           "description": "or Authorization: Bearer <key>"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "additionalProperties": False,
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": ["string", "null"]}, "message": {"type": "string"},
                                           "type": {"type": "string"}, "param": {"type": ["string", "null"]}},
                        }
                    },
                },
                "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
                "Options": _OPTIONS,
                "CreateJob": {"oneOf": [_CREATE, _CREATE_FROM_SOURCE]},
                "CreateUpload": _CREATE_UPLOAD,
                "Job": _JOB,
                "CreatedJob": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Job"},
                        {
                            "type": "object",
                            "properties": {
                                "upload": {
                                    "description": "the form to upload the audio with (absent for a job "
                                                   "created from a source)",
                                    "type": "object",
                                    "required": ["method", "url", "fields", "fileField", "maxBytes", "expiresIn"],
                                    "properties": {
                                        "method": {"const": "POST"},
                                        "url": {"type": "string"},
                                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                                        "fileField": {"type": "string"},
                                        "maxBytes": {"type": "integer"},
                                        "expiresIn": {"type": "integer"},
                                    },
                                }
                            },
                        },
                    ]
                },
                "Upload": {
                    "type": "object",
                    "required": [
                        "jobId",
                        "status",
                        "uploadUrl",
                        "uploadMethod",
                        "uploadHeaders",
                        "expiresIn",
                        "options",
                    ],
                    "properties": {
                        "jobId": _JOB_ID,
                        "status": {"type": "string", "enum": [s.value for s in JobStatus],
                                   "description": "UPLOADING; a replayed create shows the job as it is now"},
                        "uploadUrl": {"type": "string"},
                        "uploadMethod": {"const": "PUT"},
                        "uploadHeaders": {"type": "object"},
                        "idempotentReplayed": _REPLAYED,
                        "expiresIn": {"type": "integer"},
                        "options": {"$ref": "#/components/schemas/Options"},
                    },
                },
                "JobList": {
                    "type": "object",
                    "required": ["jobs", "nextCursor"],
                    "properties": {
                        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                        "nextCursor": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
