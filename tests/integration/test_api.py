import json

import pytest
import requests

from tests.conftest import EXAMPLES, load_event
from whisperq.api_handler import handler as api
from whisperq.local.lambda_context import LocalLambdaContext


@pytest.fixture
def call(stack):
    api.reset(stack.service)
    base = load_event("api_post_upload.json")

    def invoke(method: str, path: str, body: object = None, raw: str | None = None) -> tuple[int, dict]:
        event = dict(base, httpMethod=method, path=path, resource=path)
        event["body"] = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = api.handler(event, LocalLambdaContext("whisperq-api"))
        headers = {**(response.get("headers") or {}),
                   **{k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}}
        assert headers["Content-Type"] == "application/json"
        return response["statusCode"], json.loads(response["body"])

    yield invoke
    api.reset()


def test_post_upload_when_valid_then_201_job_uploading_and_presigned_put(call, stack):
    status, body = call("POST", "/upload", {"filename": "meeting.wav", "contentType": "audio/wav",
                                            "contentLength": (EXAMPLES / "meeting.wav").stat().st_size})
    assert status == 201
    assert body["status"] == "UPLOADING" and body["expiresIn"] == 900 and body["uploadMethod"] == "PUT"
    # The size is signed with the type: S3 refuses a body of any other size (an upload is bounded).
    assert body["uploadHeaders"] == {"Content-Type": "audio/wav",
                                     "Content-Length": str((EXAMPLES / "meeting.wav").stat().st_size)}
    assert f"audio/tiny-en/{body['jobId']}/meeting.wav" in body["uploadUrl"]
    assert stack.jobs.get(body["jobId"]).status.value == "UPLOADING"
    data = (EXAMPLES / "meeting.wav").read_bytes()
    put = requests.put(body["uploadUrl"], data=data, headers=body["uploadHeaders"], timeout=30)
    assert put.status_code == 200
    assert stack.blobs.head(f"audio/tiny-en/{body['jobId']}/meeting.wav").size_bytes == len(data)


def test_status_when_audio_arrived_then_queued(call, stack):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    status, body = call("GET", f"/status/{job_id}")
    assert status == 200 and body["status"] == "QUEUED" and body["jobId"] == job_id
    assert "transcriptUrl" not in body and "error" not in body


def test_status_when_not_uploaded_then_uploading(call):
    _, created = call("POST", "/upload", {"filename": "a.flac", "contentType": "audio/flac", "contentLength": 9})
    status, body = call("GET", f"/status/{created['jobId']}")
    assert status == 200 and body["status"] == "UPLOADING" and body["contentType"] == "audio/flac"


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "expected_status", "code", "fragment"),
    [
        ("GET", "/status/6248633d-1631-41f1-9fa2-547eb5e6415a", None, None, 404, "job_not_found", "no job"),
        ("GET", "/status/not-a-job", None, None, 400, "invalid_request", "not a valid job id"),
        ("POST", "/upload", None, "{not json", 400, "invalid_request", "not valid UTF-8 JSON"),
        ("POST", "/upload", None, None, 400, "invalid_request", "needs a JSON body"),
        ("POST", "/upload", ["meeting.wav"], None, 400, "invalid_request", "JSON object"),
        ("POST", "/upload", {"filename": "a.wav"}, None, 400, "invalid_request", "contentType"),
        ("POST", "/upload", {"contentType": "audio/wav"}, None, 400, "invalid_request", "filename"),
        ("POST", "/upload", {"filename": "a.wav", "contentType": "text/plain"}, None, 400, "invalid_request",
         "not accepted"),
        ("POST", "/upload", {"filename": "../../etc/passwd", "contentType": "audio/wav"}, None, 400,
         "invalid_request", "bare file name"),
        ("POST", "/upload", {"filename": "a.wav", "contentType": "audio/wav", "extra": 1}, None, 400,
         "invalid_request", "unknown field"),
        ("POST", "/upload", {"filename": 7, "contentType": "audio/wav"}, None, 400, "invalid_request",
         "filename"),
        ("POST", "/upload", {"filename": "a.wav", "contentType": "audio/wav", "options": {"beamSize": 99}}, None,
         400, "invalid_request", "beamSize"),
        ("POST", "/upload", {"filename": "a.wav", "contentType": "audio/wav", "contentLength": 9,
                              "options": {"language": "fr"}}, None,
         400, "invalid_request", "English-only"),
        ("POST", "/upload", {"filename": "a.wav", "contentType": "audio/wav", "options": {"colour": "red"}}, None,
         400, "invalid_request", "unknown option"),
        ("GET", "/nowhere", None, None, 404, "route_not_found", "no route"),
        ("DELETE", "/upload", None, None, 405, "method_not_allowed", "use POST"),
    ],
)
def test_api_when_bad_request_then_json_4xx(call, method, path, body, raw, expected_status, code, fragment):
    status, payload = call(method, path, body, raw)
    assert status == expected_status
    assert payload["error"]["code"] == code
    assert fragment in payload["error"]["message"]


def test_post_upload_when_rejected_then_no_job_left_behind(call, stack):
    call("POST", "/upload", {"filename": "a.wav", "contentType": "text/plain"})
    assert stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"] == 0


def test_post_upload_when_options_then_stored_and_shown_with_defaults(call, stack):
    options = {"wordTimestamps": True, "beamSize": 1, "initialPrompt": "Quarterly budget."}
    status, body = call("POST", "/upload", {"filename": "a.wav", "contentType": "audio/wav", "options": options,
                                            "contentLength": 9})
    assert status == 201
    assert body["options"]["wordTimestamps"] is True and body["options"]["beamSize"] == 1
    assert body["options"]["task"] == "transcribe" and body["options"]["language"] is None
    _, shown = call("GET", f"/status/{body['jobId']}")
    assert shown["options"] == body["options"]


def test_path_when_job_id_has_control_characters_then_400_not_405(call):
    status, payload = call("GET", "/jobs/\x84")
    assert status == 400 and payload["error"]["code"] == "invalid_request"
