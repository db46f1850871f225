"""What a hostile or careless client sends that JSON parses and nothing downstream can take: each a 400
that names the field, never a 5xx; and a 5xx, when the fault is ours, says nothing of the inside."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.conftest import load_event
from whisperq.api_handler import handler as api
from whisperq.api_handler.service import JobService
from whisperq.aws.jobs_table import JobsTable
from whisperq.local.lambda_context import LocalLambdaContext

WAV = {"filename": "a.wav", "contentType": "audio/wav"}


@pytest.mark.parametrize(("body", "fragment"), [
    ({**WAV, "options": {"temperature": 1e-140}}, "options.temperature"),  # was 500: DynamoDB's Number underflow
    ({**WAV, "options": {"temperature": 1e-320}}, "options.temperature"),
    ({**WAV, "filename": "\ud800.wav"}, "filename is not valid Unicode"),  # was 503 with moto's HTML page
    ({**WAV, "options": {"initialPrompt": "names: \udfff"}}, "options.initialPrompt is not valid Unicode"),
    ({**WAV, "options": {"beamSize": 1e300}}, "options.beamSize"),
])
def test_create_when_json_parses_but_cannot_be_stored_then_400_naming_the_field(call, body, fragment):
    for path in ("/jobs", "/upload"):
        status, payload, _ = call("POST", path, body)
        assert status == 400 and fragment in payload["error"]["message"], (path, payload)


def test_create_when_nested_a_thousand_deep_then_400_not_a_recursion_error(call):
    raw = '{"filename": "a.wav", "contentType": "audio/wav", "options": ' + "[" * 1000 + "]" * 1000 + "}"
    status, payload, _ = call("POST", "/jobs", raw=raw)
    assert status == 400 and "nests deeper than" in payload["error"]["message"]


def test_server_side_failure_when_answered_then_generic_with_a_request_id_and_nothing_of_the_inside(stack):
    """AWS's messages name tables, roles and ARNs: an AccessDenied would have put them in the body."""
    bogus = replace(stack.settings, table="whisperq-no-such-table-4f1c")
    api.reset(JobService(bogus, JobsTable(stack.clients, bogus.table), stack.blobs))
    try:
        event = load_event("api_post_upload.json")
        event.update(httpMethod="GET", path="/jobs", resource="/jobs", body=None, queryStringParameters=None)
        event["requestContext"]["identity"]["apiKeyId"] = "alice"
        response = api.handler(event, LocalLambdaContext("whisperq-api"))
    finally:
        api.reset()
    body = json.loads(response["body"])
    assert response["statusCode"] >= 500
    message = body["error"]["message"]
    assert "request id" in message and event["requestContext"]["requestId"] in message
    for inside in ("whisperq-no-such-table", "ResourceNotFound", "arn:", "botocore", "Traceback"):
        assert inside not in response["body"]


@pytest.mark.parametrize("path", ["/jobs", "/upload"])
def test_create_when_body_is_not_json_then_415_saying_what_the_route_takes(call, path):
    """Was a 500: Powertools' validation refuses the type with an error of its own (schemathesis found it)."""
    body = json.dumps({**WAV, "contentLength": 9})
    status, payload, _ = call("POST", path, raw=body, headers={"Content-Type": "text/plain"})
    assert status == 415 and payload["error"]["code"] == "unsupported_media_type"
    assert "application/json" in payload["error"]["message"]
    status, payload, _ = call("POST", path, raw=body, key=None, headers={"Content-Type": "text/plain"})
    assert status == 403  # who asks, before what they send


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded"])
def test_create_when_body_is_a_form_then_415_not_500_nor_a_job(call, stack, content_type):
    before = stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"]
    body = "--x\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\na.wav\r\n--x--\r\n" \
        if "boundary" in content_type else "filename=a.wav&contentType=audio%2Fwav"
    status, payload, _ = call("POST", "/jobs", raw=body, headers={"Content-Type": content_type})
    assert status in (400, 415) and payload["error"]["code"] in ("unsupported_media_type", "invalid_request")
    assert stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"] == before
