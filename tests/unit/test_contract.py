"""The API's contract: requests checked by the routes' models, errors said in words a person acts on,
and the OpenAPI document generated from the same models (every limit the one the code enforces)."""

import json

import pytest
from pydantic import TypeAdapter

from whisperq.api_handler import handler
from whisperq.api_handler.contract import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_PAGE_SIZE,
    CreateFromSource,
    CreateJob,
    CreateRequest,
    CreateUpload,
)
from whisperq.core.audio import AUDIO_CONTENT_TYPES
from whisperq.core.contract import MAX_JSON_DEPTH, strict_json, validated
from whisperq.core.errors import InvalidRequest
from whisperq.core.keys import MAX_FILENAME_CHARS
from whisperq.core.options import MAX_BEAM_SIZE, MAX_PROMPT_CHARS
from whisperq.core.sources import MAX_SOURCE_CHARS

CREATE = TypeAdapter(CreateRequest)


def refusal(raw) -> str:
    with pytest.raises(InvalidRequest) as refused:
        validated(CREATE.validate_python, raw)
    return refused.value.message


def test_create_when_upload_or_source_then_the_matching_model():
    upload = validated(CREATE.validate_python, {"filename": "a.wav", "contentType": "Audio/WAV; x=1",
                                                "options": {"beamSize": 2}})
    assert isinstance(upload, CreateJob) and upload.content_type == "audio/wav" and upload.options.beam_size == 2
    source = validated(CREATE.validate_python, {"source": "s3://b/k.wav"})
    assert isinstance(source, CreateFromSource) and source.filename is None


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ([1, 2], "the request body must be a JSON object"),
        ({"filename": "a.wav"}, "contentType is required"),
        ({"filename": "a.wav", "contentType": "audio/wav", "colour": "red"}, "unknown field 'colour'"),
        ({"filename": "a.wav", "contentType": "audio/wav", "options": {"speed": 2}}, "unknown option 'speed'"),
        ({"filename": "a.wav", "contentType": "audio/wav", "options": {"beamSize": "5"}},
         f"options.beamSize must be an integer from 1 to {MAX_BEAM_SIZE}"),
        ({"filename": "a.wav", "contentType": "audio/wav", "options": {"wordTimestamps": 1}},
         "options.wordTimestamps must be true or false"),
        ({"filename": "a.wav", "contentType": "audio/wav", "options": "fast"}, "options must be a JSON object"),
        ({"filename": "a.wav", "contentType": "video/mp4"}, "contentType 'video/mp4' is not accepted"),
        ({"filename": "../a.wav", "contentType": "audio/wav"}, "bare file name"),
        ({"filename": "a.wav", "contentType": "audio/wav", "options": {"initialPrompt": "\ud800"}},
         "not valid Unicode text"),
        ({"source": 5}, "source must be s3://bucket/key or an https:// URL"),
        ({"source": "s3://b/k", "contentLength": 9}, "unknown field 'contentLength'"),
    ],
)
def test_create_when_invalid_then_one_sentence_naming_the_field(raw, said):
    assert said in refusal(raw)


def test_upload_when_size_missing_or_not_whole_then_named():
    with pytest.raises(InvalidRequest, match="contentLength is required"):
        CreateUpload.parse({"filename": "a.wav", "contentType": "audio/wav"})
    with pytest.raises(InvalidRequest, match="contentLength must be the file's size"):
        CreateUpload.parse({"filename": "a.wav", "contentType": "audio/wav", "contentLength": 9.5})


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("[" * (MAX_JSON_DEPTH + 2) + "]" * (MAX_JSON_DEPTH + 2), "nests deeper"),
        ("[" * 100_000, "nests deeper"),
        ('{"a": NaN}', "NaN"),
        ("{not json", "not valid UTF-8 JSON"),
    ],
)
def test_strict_json_when_unusable_then_invalid_request(raw, said):
    with pytest.raises(InvalidRequest, match=said):
        strict_json(raw)


DOC = handler.contract()


def schema(name: str) -> dict:
    return DOC["components"]["schemas"][name]


def parameter(path: str, method: str, name: str) -> dict:
    (found,) = [p for p in DOC["paths"][path][method]["parameters"] if p["name"].lower() == name.lower()]
    return found["schema"]


def test_document_when_generated_then_limits_are_the_enforced_constants():
    options = schema("Options")["properties"]
    assert options["beamSize"]["maximum"] == MAX_BEAM_SIZE
    assert options["initialPrompt"]["anyOf"][0]["maxLength"] == MAX_PROMPT_CHARS
    create = schema("CreateJob")
    assert create["additionalProperties"] is False and set(create["required"]) == {"filename", "contentType"}
    assert create["properties"]["filename"]["maxLength"] == MAX_FILENAME_CHARS
    assert set(create["properties"]["contentType"]["enum"]) == set(AUDIO_CONTENT_TYPES)
    assert schema("CreateFromSource")["properties"]["source"]["maxLength"] == MAX_SOURCE_CHARS
    assert schema("CreateUpload")["required"] == ["filename", "contentType", "contentLength"]
    assert parameter("/jobs", "get", "limit")["maximum"] == MAX_PAGE_SIZE
    key = parameter("/jobs", "post", "Idempotency-Key")["anyOf"][0]
    assert key["maxLength"] == MAX_IDEMPOTENCY_KEY_CHARS


def test_document_when_generated_then_every_route_and_error_is_declared_once():
    operations = [(path, method, op) for path, ops in DOC["paths"].items() for method, op in ops.items()]
    assert len(operations) == 17 and len({op["operationId"] for _, _, op in operations}) == 17
    for path, method, operation in operations:
        assert "422" not in operation["responses"], (path, method)
        public = path in ("/health", "/", "/app", "/app.js")
        assert (operation.get("security") == []) is public, (path, method)
        if not public:
            assert operation["responses"]["403"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
    assert "HTTPValidationError" not in DOC["components"]["schemas"]
    body = DOC["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["file", "model"]
    assert json.dumps(DOC)  # one JSON document, served as it is


def test_document_when_asked_again_then_built_once():
    assert handler.contract() is handler.contract()
