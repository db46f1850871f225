"""The API's request and response models. Requests are validated with them (Powertools' event handler,
validation on); the OpenAPI document at GET /openapi.json is generated from them and from the routes
(handler.py); every limit is the constant the code enforces, named where it is enforced."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema
from pydantic.alias_generators import to_camel

from whisperq.core.audio import AUDIO_CONTENT_TYPES, validate_content_type
from whisperq.core.callbacks import MAX_URL_CHARS
from whisperq.core.contract import Model, Text, refuse
from whisperq.core.errors import InvalidRequest
from whisperq.core.jobs import JOB_ID_PATTERN, JobStatus
from whisperq.core.keys import MAX_FILENAME_CHARS, clean_filename
from whisperq.core.openai_compat import GRANULARITIES, RESPONSE_FORMATS
from whisperq.core.options import Options
from whisperq.core.sources import MAX_SOURCE_CHARS
from whisperq.core.writers import WRITERS

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_IDEMPOTENCY_KEY_CHARS = 255
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"

refuse(**{
    "job_id": "is not a valid job id (a UUID)",
    "limit": f"must be an integer from 1 to {MAX_PAGE_SIZE}",
    "status": f"must be one of {', '.join(s.value for s in JobStatus)}",
    "format": f"must be one of {', '.join(WRITERS)}",
    "idempotency-key": f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters without spaces",
})

class UnsupportedMediaType(InvalidRequest):
    """A body of a type the route does not take."""

    status_code = 415
    code = "unsupported_media_type"


# --- requests --------------------------------------------------------------------------------
Filename = Annotated[Text, Field(min_length=1, max_length=MAX_FILENAME_CHARS, description="a bare file name"),
                     AfterValidator(clean_filename)]
ContentType = Annotated[Text, AfterValidator(validate_content_type),
                        WithJsonSchema({"type": "string", "enum": sorted(AUDIO_CONTENT_TYPES)})]
CallbackUrl = Annotated[Text, Field(max_length=MAX_URL_CHARS, json_schema_extra={"format": "uri"},
                                    description="POSTed the final job, signed (X-Whisperq-Signature), on "
                                                "COMPLETED or FAILED")]


ModelName = Annotated[Text, Field(min_length=1, max_length=96,
                                   description="one of the deployment's models (GET /v1/models), each run by "
                                               "workers of its own; default: the deployment's default model")]


class CreateJob(Model):
    """POST /jobs: a job, and a pre-signed POST form to upload its audio with."""

    model_config = ConfigDict(alias_generator=to_camel, title="CreateJob")
    refusals = {
        "filename": f"must be a bare file name of 1 to {MAX_FILENAME_CHARS} characters",
        "contentType": f"must be one of: {', '.join(sorted(AUDIO_CONTENT_TYPES))}",
        "callbackUrl": f"must be an https URL of at most {MAX_URL_CHARS} characters",
    }

    filename: Filename
    content_type: ContentType
    model: ModelName | None = None
    options: Options | None = None
    callback_url: CallbackUrl | None = None


class CreateFromSource(Model):
    """POST /jobs with audio that is already somewhere: the service copies (S3) or fetches (a URL) it."""

    model_config = ConfigDict(alias_generator=to_camel, title="CreateFromSource")
    refusals = {"source": f"must be s3://bucket/key or an https:// URL of at most {MAX_SOURCE_CHARS} characters"}

    source: Text = Field(min_length=1, max_length=MAX_SOURCE_CHARS,
                         description="s3://bucket/key of an object in a bucket granted to the deployment (copied "
                                     "server-side), or an https:// URL (fetched by a worker; private, loopback and "
                                     "link-local addresses refused)")
    filename: Filename | None = Field(None, description="default: the key's or the URL's last part")
    content_type: ContentType | None = Field(None, description="default: the object's type when it is audio, else "
                                                               "from the file name")
    model: ModelName | None = None
    options: Options | None = None
    callback_url: CallbackUrl | None = None


class CreateUpload(CreateJob):
    """POST /upload: the same, and the file's size, which the pre-signed PUT is signed for."""

    model_config = ConfigDict(title="CreateUpload")
    refusals = {"contentLength": "must be the file's size in bytes (a whole number of at least 1): the upload "
                                 "URL is signed for exactly that size"}

    content_length: int = Field(ge=1, description="the file's size in bytes (at most WHISPERQ_MAX_UPLOAD_BYTES): "
                                                  "the upload URL is signed for exactly this size")


def _which(raw: Any) -> str:
    return "from-source" if isinstance(raw, dict) and "source" in raw else "upload-form"


CreateRequest = Annotated[Annotated[CreateJob, Tag("upload-form")] | Annotated[CreateFromSource, Tag("from-source")],
                          Discriminator(_which)]

# --- answers ---------------------------------------------------------------------------------
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, json_schema_extra={"format": "uuid"})]


class View(BaseModel):
    """An answer's shape, for the document (answers are built by the service)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Job(View):
    job_id: JobId
    status: JobStatus
    filename: str
    content_type: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    attempts: int = Field(ge=0)
    options: Options
    model: str | None = Field(None, description="the model it runs on (absent on jobs made before tiers)")
    tier: str | None = Field(None, description="the tier whose queue and workers run it: audio/<tier>/ holds its "
                                               "audio")
    callback_url: str | None = None
    source: str | None = Field(None, description="where its audio came from (s3://... or a URL); absent when it "
                                                 "was uploaded")
    details: dict[str, Any] | None = Field(None, description="timings, engine, model, language, retries; for a long "
                                                             "file fanned out across workers, chunks and chunksDone")
    transcript_url: str | None = Field(None, description="the txt transcript, when COMPLETED")
    transcript_urls: dict[str, str] | None = None
    expires_in: int | None = None
    error: str | None = Field(None, description="why the job FAILED")
    idempotent_replayed: bool | None = Field(None, description="true when an Idempotency-Key matched an earlier "
                                                               "create")


class UploadForm(View):
    method: Literal["POST"]
    url: str
    fields: dict[str, str]
    file_field: str
    max_bytes: int
    expires_in: int


class CreatedJob(Job):
    upload: UploadForm | None = Field(None, description="the form to upload the audio with (absent for a job "
                                                        "created from a source)")


class Upload(View):
    job_id: JobId
    status: JobStatus = Field(description="UPLOADING; a replayed create shows the job as it is now")
    upload_url: str
    upload_method: Literal["PUT"]
    upload_headers: dict[str, str]
    expires_in: int
    options: Options
    idempotent_replayed: bool | None = None


class JobList(View):
    jobs: list[Job]
    next_cursor: str | None


class Health(View):
    status: Literal["ok"]


class ErrorDetail(View):
    code: str | None
    message: str
    type: str | None = None
    param: str | None = None


class Error(View):
    """Every error: whisperq's code and message, and OpenAI's type and param."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


class TranscriptLink(View):
    transcript_url: str


class Redirect(View):
    page: str


class Depth(View):
    visible: int = Field(ge=0)
    in_flight: int = Field(ge=0)
    delayed: int = Field(ge=0)


class Failure(View):
    job_id: str
    error: str


class TierQueues(View):
    model: str
    queue: Depth
    dead_letters: Depth


class Queues(View):
    queue: Depth = Field(description="the default model's tier")
    dead_letters: Depth
    failures: list[Failure]
    tiers: dict[str, TierQueues] | None = Field(None, description="every model tier's queues, by tier id, when the "
                                                                  "deployment serves more than one model")


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"]
    response_formats: list[str] = Field(description="whisperq's addition: the response formats it answers in "
                                                    "(diarized_json labels the speakers)")
    languages: list[str] | str = Field(description="whisperq's addition: ['en'] for an English-only model")
    sizeMb: float | None = Field(None, description="whisperq's addition: its weights' size")
    realTime: float | None = Field(None, description="whisperq's addition: audio seconds transcribed a second "
                                                     "on one thread, beam 5")
    speedSource: str | None = Field(None, description="whisperq's addition: measured here, or an estimate")
    default: bool = Field(description="whisperq's addition: the model whisper-1 stands for")
    aliasOf: str | None = Field(None, description="whisperq's addition: the model an alias runs")


class OpenAIModels(BaseModel):
    data: list[OpenAIModel]


class OpenAITranscript(BaseModel):
    text: str


class TranscriptionForm(BaseModel):
    """The form OpenAI's clients send (checked by core/openai_compat.parse_request, as OpenAI does)."""

    model_config = ConfigDict(title="TranscriptionForm")

    file: bytes = Field(description="the audio (wav, flac, mp3, m4a, ogg, webm)")
    model: str = Field(description="whisper-1, or the deployment's model (GET /v1/models); "
                                   "gpt-4o-transcribe-diarize is accepted as well, for diarized_json")
    prompt: str | None = None
    response_format: Literal[RESPONSE_FORMATS] = "json"  # type: ignore[valid-type]
    temperature: float | None = Field(None, ge=0, le=1)
    language: str | None = Field(None, description="ISO-639-1 code; default: detect (transcriptions only)")
    timestamp_granularities: list[Literal[GRANULARITIES]] | None = Field(  # type: ignore[valid-type]
        None, alias="timestamp_granularities[]", description="needs response_format verbose_json")


# --- how routes answer, for the document -----------------------------------------------------
def ok(status: int, model: type[BaseModel], description: str) -> dict[int, OpenAPIResponse]:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


def text(status: int, media_type: str, description: str) -> dict[int, OpenAPIResponse]:
    return {status: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}


def redirect(description: str, model: type[BaseModel]) -> dict[int, OpenAPIResponse]:
    return {302: {"description": description, "headers": {"Location": {"schema": {"type": "string"}}},
                  "content": {"application/json": {"model": model}}}}


def errors(**by_status: str) -> dict[int, OpenAPIResponse]:
    """Error answers by status ("e400"="what it means"), each an Error; 403 and 429 on every keyed route."""
    described = {"e403": "no valid API key (x-api-key or Authorization: Bearer)",
                 "e429": "throttled by the usage plan (AWS)", **by_status}
    return {int(name[1:]): {"description": description, "content": {"application/json": {"model": Error}}}
            for name, description in described.items()}


def form_body() -> dict[str, Any]:
    """The OpenAI routes' request body (multipart), as an OpenAPI requestBody."""
    schema = TranscriptionForm.model_json_schema(by_alias=True)
    schema["required"] = ["file", "model"]
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


# --- what the routes take and answer, typed once --------------------------------------------
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS, pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Send a create again with the same key (after a timeout or a 5xx) and get the same job back, not "
                "a second one: the answer then carries idempotentReplayed: true. The same key with a different "
                "body is a 409. Scoped to the API key; 1 to 255 printable ASCII characters.")]
TranscriptFormat = Literal[tuple(WRITERS)]  # type: ignore[valid-type]  # the writers, as an enum
JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="the job's id")]
JOB_ERRORS = errors(e400="malformed job id", e404="no such job for this key")
CREATE_ERRORS = errors(e400="malformed or invalid request",
                       e409="the Idempotency-Key was used with a different request",
                       e415="a body that is not application/json")
AUDIO_ANSWERS: dict[int, OpenAPIResponse] = {
    200: {"description": "the transcript: JSON for json and verbose_json, text for text, srt, vtt",
          "content": {"application/json": {"model": OpenAITranscript}, "text/plain": {"schema": {"type": "string"}}}},
    **errors(e400="a field refused, or the job FAILED (the reason, and the job id)",
             e408="the job outlived the wait: it keeps running; the message and x-whisperq-job-id name it",
             e413="the file is over the route's limit (4 MiB): use POST /jobs",
             e429="too many requests of this key waiting, or throttled by the usage plan (AWS)"),
}
AUDIO_ROUTE = ("OpenAI's audio API on the job pipeline: the route stores the audio, waits for its job (at most "
               "WHISPERQ_OPENAI_WAIT_S, 25 s) and answers as OpenAI does. Authorization: Bearer <API key> (or "
               "x-api-key). Every answer names its job in x-whisperq-job-id.")
