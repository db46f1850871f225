"""API Gateway proxy handler: routes, authentication, and the one place errors become HTTP responses.

API Gateway checks the API key (usage plans) and passes the key's id in
requestContext.identity.apiKeyId; the local twin's front does the same. Every job belongs to the key
that created it, and a key sees only its own jobs."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import time
from pathlib import Path as FilePath
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from whisperq import faults
from whisperq.api_handler.contract import (
    AUDIO_ANSWERS,
    AUDIO_ROUTE,
    CREATE_ERRORS,
    DEFAULT_PAGE_SIZE,
    JOB_ERRORS,
    MAX_PAGE_SIZE,
    CreatedJob,
    CreateRequest,
    CreateUpload,
    Health,
    IdempotencyKey,
    Job,
    JobIdPath,
    JobList,
    OpenAIModel,
    OpenAIModels,
    Queues,
    Redirect,
    TranscriptFormat,
    TranscriptLink,
    UnsupportedMediaType,
    Upload,
    errors,
    form_body,
    ok,
    redirect,
    text,
)
from whisperq.api_handler.multipart import parse_form
from whisperq.api_handler.openai_routes import OpenAIRoutes
from whisperq.api_handler.openapi import document as openapi_document
from whisperq.api_handler.ops import Operations
from whisperq.api_handler.service import JobService
from whisperq.aws.blobs import Blobs
from whisperq.aws.clients import Clients
from whisperq.aws.jobs_table import JobsTable
from whisperq.config import Settings
from whisperq.core import openai_compat
from whisperq.core.contract import explain, strict_json
from whisperq.core.errors import Forbidden, InvalidRequest, WhisperqError
from whisperq.core.jobs import JobStatus
from whisperq.tracing import annotate, stage

logger = Logger(service="whisperq-api")
metrics = Metrics(namespace="whisperq", service="whisperq-api")
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=strict_json)

_service: JobService | None = None
_operations: Operations | None = None
WEB = FilePath(__file__).with_name("web")
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


def created(payload: dict[str, Any]) -> Response[Any]:
    logger.append_keys(job_id=payload["jobId"])
    annotate(jobId=payload["jobId"])
    if payload.get("idempotentReplayed"):
        logger.info("create replayed with its Idempotency-Key")
    else:
        logger.info("job created")
        metrics.add_metric("JobsCreated", "Count", 1)
    return json_response(201, payload)


PUBLIC: list[dict[str, list[str]]] = []  # what a route without a key declares
PUBLIC_PATHS = frozenset({"/health", "/", "/app", "/app.js"})


@app.get("/health", operation_id="health", summary="liveness", security=PUBLIC,
         responses=ok(200, Health, "the API answers"))
def health() -> dict[str, Any]:
    return {"status": "ok"}


# --- the page (no key: it asks for one) and its operator view --------------------------------
@app.get("/", operation_id="root", summary="redirect to the page", security=PUBLIC,
         responses=redirect("Location: app", Redirect))
def root() -> Response[Any]:
    return Response(status_code=302, content_type="application/json", headers={"Location": "app"},
                    body=json.dumps({"page": "app"}))


@functools.cache
def web_file(name: str) -> str:
    """One of the page's files, read once per container."""
    return (WEB / name).read_text(encoding="utf-8")


@app.get("/app", operation_id="page", summary="the web page: upload, watch, download (asks for the API key)",
         security=PUBLIC, responses=text(200, "text/html", "the page"))
def page() -> Response[Any]:
    return Response(status_code=200, content_type="text/html; charset=utf-8", headers=PAGE_HEADERS,
                    body=web_file("index.html"))


@app.get("/app.js", operation_id="pageScript", summary="the page's script", security=PUBLIC,
         responses=text(200, "text/javascript", "the page's script"))
def page_script() -> Response[Any]:
    return Response(status_code=200, content_type="text/javascript; charset=utf-8", headers=PAGE_HEADERS,
                    body=web_file("app.js"))


@app.get("/ops/queues", operation_id="opsQueues",
         summary="operator view: queue depth, in flight, dead letters, and this key's latest failures",
         responses={**ok(200, Queues, "SQS's approximate counts and the latest FAILED jobs with their reasons"),
                    **errors()})
def ops_queues() -> dict[str, Any]:
    return operations().queues(owner())


@app.get("/openapi.json", operation_id="openapi", summary="this document",
         responses={200: {"description": "OpenAPI 3.1", "content": {"application/json": {
             "schema": {"type": "object"}}}}, **errors()})
def openapi() -> dict[str, Any]:
    owner()
    return contract()


def contract() -> dict[str, Any]:
    """The OpenAPI document of these routes."""
    return openapi_document(app, PUBLIC_PATHS)


# --- jobs ------------------------------------------------------------------------------------
@app.post("/upload", operation_id="createUpload", summary="create a job; upload with a pre-signed PUT (original API)",
          responses={**ok(201, Upload, "job created, waiting for its upload"), **CREATE_ERRORS})
def create_upload(body: Annotated[CreateUpload, Body()], key: IdempotencyKey = None) -> Response[Any]:
    json_only()
    return created(service().create_upload(body, owner(), key))


@app.get("/status/<job_id>", operation_id="getStatus", summary="a job (original API)",
         responses={**ok(200, Job, "the job"), **JOB_ERRORS})
def get_status(job_id: JobIdPath) -> dict[str, Any]:
    return service().status(job_id, owner())


@app.post("/jobs", operation_id="createJob",
          summary="create a job: upload with the pre-signed POST form, or give an s3:// or https:// source",
          responses={**ok(201, CreatedJob, "job created, waiting for its upload"), **CREATE_ERRORS})
def create_job(body: Annotated[CreateRequest, Body()], key: IdempotencyKey = None) -> Response[Any]:
    json_only()
    return created(service().create_job(body, owner(), key))


@app.get("/jobs", operation_id="listJobs", summary="this key's jobs, newest first",
         responses={**ok(200, JobList, "a page of jobs"), **errors(e400="bad query")})
def list_jobs(status: Annotated[JobStatus | None, Query()] = None,
              limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
              cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
              ) -> dict[str, Any]:
    return service().list(owner(), status, limit, cursor)


@app.get("/jobs/<job_id>", operation_id="getJob", summary="a job",
         responses={**ok(200, Job, "the job"), **JOB_ERRORS})
def get_job(job_id: JobIdPath) -> dict[str, Any]:
    return service().status(job_id, owner())


@app.get("/jobs/<job_id>/transcript", operation_id="getTranscript",
         summary="redirect to a pre-signed transcript URL",
         responses={**redirect("Location: the pre-signed URL", TranscriptLink), **JOB_ERRORS,
                    **errors(e409="the job is not COMPLETED")})
def get_transcript(job_id: JobIdPath,
                   format: Annotated[TranscriptFormat, Query()] = "txt",  # type: ignore[valid-type]
                   ) -> Response[Any]:
    url = service().transcript_url(job_id, owner(), format)
    return Response(status_code=302, content_type="application/json", headers={"Location": url},
                    body=json.dumps({"transcriptUrl": url}))


@app.delete("/jobs/<job_id>", operation_id="cancelJob", summary="cancel an unfinished job and delete its files",
            responses={**ok(200, Job, "the cancelled job"), **JOB_ERRORS, **errors(e409="the job already ended")})
def cancel_job(job_id: JobIdPath) -> dict[str, Any]:
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


def audio_route(task: str, key: str | None) -> Response[Any]:
    answer = openai_routes().audio(form(), owner(), task, key)
    logger.append_keys(job_id=answer.job_id)
    annotate(jobId=answer.job_id)
    return Response(status_code=200, content_type=answer.content_type, body=answer.body,
                    headers={"x-whisperq-job-id": answer.job_id})


@app.post("/v1/audio/transcriptions", operation_id="openaiTranscriptions", summary="OpenAI-compatible transcription",
          description=AUDIO_ROUTE, responses=AUDIO_ANSWERS, openapi_extensions=form_body())
def openai_transcriptions(key: IdempotencyKey = None) -> Response[Any]:
    return audio_route("transcribe", key)


@app.post("/v1/audio/translations", operation_id="openaiTranslations",
          summary="OpenAI-compatible translation into English", description=AUDIO_ROUTE,
          responses=AUDIO_ANSWERS, openapi_extensions=form_body())
def openai_translations(key: IdempotencyKey = None) -> Response[Any]:
    return audio_route("translate", key)


@app.get("/v1/models", operation_id="openaiModels", summary="the models this deployment serves",
         responses={**ok(200, OpenAIModels, "OpenAI's model list"), **errors()})
def openai_models() -> dict[str, Any]:
    owner()
    return openai_compat.models(service().settings.tiers.models, STARTED)


@app.get("/v1/models/<model>", operation_id="openaiModel", summary="one model",
         responses={**ok(200, OpenAIModel, "the model"), **errors(e400="a malformed model name",
                                                                    e404="no such model here")})
def openai_model(model: str) -> Response[Any]:
    owner()
    served = service().settings.tiers.models
    if model not in (openai_compat.OPENAI_MODEL, openai_compat.OPENAI_DIARIZE_MODEL, *served):
        return error_response(404, "model_not_found", f"the model {model!r} does not exist here; its models: "
                                                      f"{', '.join(served)}", "model")
    return json_response(200, openai_compat.model_info(model, STARTED, served))


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


@app.exception_handler(RequestValidationError)
def handle_invalid(exc: RequestValidationError) -> Response:
    """A request its route's models refuse: a 400 naming each field and what it must be; but who asks
    is checked before what they ask (a request without a key is a 403, whatever it holds)."""
    try:
        owner()
    except Forbidden as refused:
        return handle_whisperq_error(refused)
    return handle_whisperq_error(InvalidRequest(explain(exc.errors())))


def json_only() -> None:
    """The create routes take JSON; Powertools would also read a form into the same model."""
    media_type = (app.current_event.headers.get("Content-Type") or "application/json").split(";")[0].strip()
    if media_type.lower() != "application/json":
        raise UnsupportedMediaType(f"this route takes application/json, not {media_type!r}")


@app.exception_handler([RequestUnsupportedContentType, ValueError])
def handle_media_type(exc: Exception) -> Response:
    """A JSON route sent another kind of body (text/plain; multipart without a boundary, which the
    validation's form parser raises a ValueError for): 415, saying what it takes. A ValueError on a
    JSON body is a bug: a 500."""
    try:
        owner()
        json_only()
    except WhisperqError as refused:
        return handle_whisperq_error(refused)
    return handle_unexpected(exc)


@app.exception_handler([UnicodeDecodeError, binascii.Error])
def handle_undecodable(exc: ValueError) -> Response:
    """A body API Gateway passed base64-encoded that is not base64, or not UTF-8 where JSON is due."""
    return handle_whisperq_error(InvalidRequest(f"the request body could not be decoded: {exc}"))


def _allowed_methods(path: str) -> list[str]:
    """The methods the OpenAPI document declares for the route that `path` matches."""
    for template, operations in contract()["paths"].items():
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
