"""API Gateway proxy handler: routes, authentication, and the one place errors become HTTP responses.

API Gateway checks the API key (usage plans) and passes the key's id in
requestContext.identity.apiKeyId; the local twin's front does the same. Every job belongs to the key
that created it, and a key sees only its own jobs."""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import time
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from whisperq import faults
from whisperq.api_handler.multipart import parse_form
from whisperq.api_handler.openai_routes import OpenAIRoutes
from whisperq.api_handler.openapi import document as openapi_document
from whisperq.api_handler.ops import Operations
from whisperq.api_handler.service import JobService, validate_idempotency_key
from whisperq.aws.blobs import Blobs
from whisperq.aws.clients import Clients
from whisperq.aws.jobs_table import JobsTable
from whisperq.config import Settings
from whisperq.core import openai_compat
from whisperq.core.errors import Forbidden, InvalidRequest, WhisperqError
from whisperq.tracing import annotate, stage

logger = Logger(service="whisperq-api")
metrics = Metrics(namespace="whisperq", service="whisperq-api")
app = APIGatewayRestResolver()

_service: JobService | None = None
_operations: Operations | None = None
WEB = Path(__file__).with_name("web")
# The page calls the API on its own origin and S3 by pre-signed URLs; audio plays from the file itself.
PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'self'; connect-src 'self' https: http:; "
                                           "media-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
                                           "frame-ancestors 'none'"}
STARTED = int(time.time())


def service() -> JobService:
    """The service, built on first use and kept for the life of the container."""
    global _service
    if _service is None:
        settings = Settings.from_env()
        clients = Clients(settings, customize=faults.injector_for(settings.faults, "api", logger).install_aws_errors)
        _service = JobService(settings, JobsTable(clients, settings.table), Blobs(clients, settings.bucket),
                              allow_private_callbacks=settings.allow_private_callbacks)
    return _service


def operations() -> Operations:
    """The operator view, on the service's own clients and table (its queue URLs looked up once)."""
    global _operations
    if _operations is None:
        svc = service()
        _operations = Operations(svc.settings, svc.jobs.clients, svc.jobs)
    return _operations


def reset(svc: JobService | None = None) -> None:
    """Forget the built service (or use `svc`): for a twin that starts with a new environment."""
    global _service, _operations
    _service, _operations = svc, None


def error_response(status_code: int, code: str, message: str, param: str | None = None) -> Response:
    """{"error": {...}}: whisperq's code and message, and OpenAI's type and param, so that both the
    whisperq clients and OpenAI's SDK read every error."""
    kind = "invalid_request_error" if status_code < 500 else "server_error"
    return Response(status_code=status_code, content_type="application/json",
                    body=openai_compat.error_body(message, kind, code, param))


def json_response(status_code: int, payload: Any) -> Response:
    return Response(status_code=status_code, content_type="application/json", body=json.dumps(payload))


def owner() -> str:
    """The id of the API key that made this request."""
    identity = app.current_event.request_context.identity
    key_id = identity.api_key_id if identity else None
    if not key_id:
        raise Forbidden("a valid API key is required (x-api-key or Authorization: Bearer)")
    logger.append_keys(api_key_id=key_id)
    return key_id


# How deep a request's JSON may nest: the API's bodies are two levels deep.
MAX_JSON_DEPTH = 16


def json_body() -> Any:
    raw = app.current_event.body
    if raw is None or raw == "":
        raise InvalidRequest("the request needs a JSON body")
    try:
        if app.current_event.is_base64_encoded:
            raw = app.current_event.decoded_body
        body = json.loads(raw or "")
    except RecursionError:
        raise InvalidRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"the request body is not valid UTF-8 JSON: {exc}") from exc
    _check_values(body, "body", 0)
    return body


def _check_values(value: Any, path: str, depth: int) -> None:
    """Refuse what JSON parses but nothing downstream can take, naming where it is: text that is not
    Unicode (a lone surrogate, "\\ud800"), numbers no store keeps, nesting past MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels (at {path})")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{path} is not valid Unicode text (it holds a lone surrogate)") from None
    elif isinstance(value, float) and (not math.isfinite(value) or (value != 0 and not 1e-100 < abs(value) < 1e100)):
        raise InvalidRequest(f"{path} is a number out of range ({value!r})")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, f"{path} key", depth + 1)
            _check_values(item, f"{path}.{key}" if path != "body" else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]", depth + 1)


def query(name: str) -> str | None:
    return (app.current_event.query_string_parameters or {}).get(name)


def created(payload: dict[str, Any]) -> Response:
    logger.append_keys(job_id=payload["jobId"])
    annotate(jobId=payload["jobId"])
    if payload.get("idempotentReplayed"):
        logger.info("create replayed with its Idempotency-Key")
    else:
        logger.info("job created")
        metrics.add_metric("JobsCreated", "Count", 1)
    return json_response(201, payload)


@app.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok"}


# --- the page (no key: it asks for one) and its operator view --------------------------------
@app.get("/")
def root() -> Response:
    return Response(status_code=302, content_type="application/json", headers={"Location": "app"},
                    body=json.dumps({"page": "app"}))


@functools.cache
def web_file(name: str) -> str:
    """One of the page's files, read once per container."""
    return (WEB / name).read_text(encoding="utf-8")


@app.get("/app")
def page() -> Response:
    return Response(status_code=200, content_type="text/html; charset=utf-8", headers=PAGE_HEADERS,
                    body=web_file("index.html"))


@app.get("/app.js")
def page_script() -> Response:
    return Response(status_code=200, content_type="text/javascript; charset=utf-8", headers=PAGE_HEADERS,
                    body=web_file("app.js"))


@app.get("/ops/queues")
def ops_queues() -> dict[str, Any]:
    return operations().queues(owner())


@app.get("/openapi.json")
def openapi() -> dict[str, Any]:
    owner()
    return openapi_document()


def idempotency_key() -> str | None:
    # Powertools v3 headers are case-insensitive.
    return validate_idempotency_key(app.current_event.headers.get("Idempotency-Key"))


@app.post("/upload")
def create_upload() -> Response:
    return created(service().create_upload(json_body(), owner(), idempotency_key()))


@app.get("/status/<job_id>")
def get_status(job_id: str) -> dict[str, Any]:
    return service().status(job_id, owner())


@app.post("/jobs")
def create_job() -> Response:
    return created(service().create_job(json_body(), owner(), idempotency_key()))


@app.get("/jobs")
def list_jobs() -> dict[str, Any]:
    return service().list(owner(), query("status"), query("limit"), query("cursor"))


@app.get("/jobs/<job_id>")
def get_job(job_id: str) -> dict[str, Any]:
    return service().status(job_id, owner())


@app.get("/jobs/<job_id>/transcript")
def get_transcript(job_id: str) -> Response:
    url = service().transcript_url(job_id, owner(), query("format"))
    return Response(status_code=302, content_type="application/json", headers={"Location": url},
                    body=json.dumps({"transcriptUrl": url}))


@app.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> dict[str, Any]:
    return service().cancel(job_id, owner())


# --- OpenAI-compatible routes (openai.OpenAI(base_url=".../v1", api_key=KEY)) --------------------
def openai_routes() -> OpenAIRoutes:
    svc = service()
    return OpenAIRoutes(svc, svc.settings.openai_wait_s, svc.settings.openai_max_bytes)


def form() -> dict[str, list[Any]]:
    event = app.current_event
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8")
    return parse_form(event.headers.get("Content-Type"), body)


def audio_route(task: str) -> Response:
    answer = openai_routes().audio(form(), owner(), task, idempotency_key())
    logger.append_keys(job_id=answer.job_id)
    annotate(jobId=answer.job_id)
    return Response(status_code=200, content_type=answer.content_type, body=answer.body,
                    headers={"x-whisperq-job-id": answer.job_id})


@app.post("/v1/audio/transcriptions")
def openai_transcriptions() -> Response:
    return audio_route("transcribe")


@app.post("/v1/audio/translations")
def openai_translations() -> Response:
    return audio_route("translate")


@app.get("/v1/models")
def openai_models() -> dict[str, Any]:
    owner()
    return openai_compat.models(service().settings.model, STARTED)


@app.get("/v1/models/<model>")
def openai_model(model: str) -> Response:
    owner()
    if model not in (openai_compat.OPENAI_MODEL, service().settings.model):
        return error_response(404, "model_not_found", f"the model {model!r} does not exist here", "model")
    return json_response(200, openai_compat.model_info(model, STARTED))


def request_id() -> str:
    """API Gateway's id of this request (the twin's front makes one up): what a 5xx answer gives the
    caller instead of its detail, and what finds that detail in the log."""
    try:
        return str(app.current_event.request_context.request_id or "-")
    except (AttributeError, KeyError, TypeError):
        return "-"


def _server_side(exc: WhisperqError) -> str:
    """What a 5xx says: that it is on our side, whether to send again, and the request's id; never the
    inside (a table's ARN, a role, a botocore message), which goes to the log."""
    again = "try again in a moment" if exc.status_code in (502, 503, 504) else "it was logged"
    return f"the service could not complete this request ({again}); request id {request_id()}"


@app.exception_handler(WhisperqError)
def handle_whisperq_error(exc: WhisperqError) -> Response:
    message = exc.message
    if exc.status_code >= 500:
        logger.warning("request failed", extra={"error": exc.message, "code": exc.code, "request_id": request_id()})
        message = _server_side(exc)
    metrics.add_metric("ClientErrors" if exc.status_code < 500 else "ServerErrors", "Count", 1)
    response = error_response(exc.status_code, exc.code, message, getattr(exc, "param", None))
    response.headers.update(getattr(exc, "headers", {}))  # what an error says beside its body (a job's id)
    return response


def _allowed_methods(path: str) -> list[str]:
    """The methods the OpenAPI document declares for the route that `path` matches."""
    for template, operations in openapi_document()["paths"].items():
        parts = re.split(r"(\{[^/]+\})", template)
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        if re.fullmatch(pattern, path):
            return sorted(method.upper() for method in operations)
    return []


@app.not_found
def handle_not_found(exc: NotFoundError) -> Response:
    event = app.current_event
    allowed = _allowed_methods(event.path)
    if event.http_method in allowed:
        # The route exists, but its path parameter has characters the router refuses.
        return error_response(400, "invalid_request", f"malformed path parameter in {event.path!r}")
    if allowed:
        response = error_response(405, "method_not_allowed", f"{event.http_method} is not allowed on {event.path}; "
                                                             f"use {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response(404, "route_not_found", f"no route for {event.http_method} {event.path}")


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response:
    # A bug, not the caller's fault: log it in full, answer without leaking a traceback.
    logger.exception("unexpected error", extra={"request_id": request_id()})
    return error_response(500, "internal_error", f"internal error; it was logged (request id {request_id()})")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path_parameters = event.get("pathParameters") or {}
    path = str(event.get("path") or "")[:200]  # X-Ray keeps annotation values short
    with stage("api", method=event.get("httpMethod"), path=path, jobId=path_parameters.get("job_id")):
        return app.resolve(event, context)
