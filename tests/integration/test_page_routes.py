"""The page's routes and the operator view, through the API handler on a moto stack."""

from __future__ import annotations

import json

from tests.conftest import EXAMPLES, load_event
from whisperq.api_handler import handler as api
from whisperq.local.lambda_context import LocalLambdaContext


def get(path: str, key: str | None = "alice") -> tuple[int, dict, str]:
    event = load_event("api_post_upload.json")
    event.update(httpMethod="GET", path=path, resource=path, body=None)
    event["requestContext"]["identity"]["apiKeyId"] = key
    response = api.handler(event, LocalLambdaContext("whisperq-api"))
    headers = {**(response.get("headers") or {}),
               **{k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}}
    return response["statusCode"], headers, response["body"]


def test_page_when_fetched_then_html_and_script_with_a_strict_policy_and_no_key_needed(stack):
    api.reset(stack.service)
    try:
        status, headers, body = get("/app", key=None)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert '<script src="app.js">' in body and 'id="api-key"' in body  # relative: works under /v1/ too
        assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'self': no inline script
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        status, headers, body = get("/app.js", key=None)
        assert status == 200 and headers["Content-Type"].startswith("text/javascript") and "ops/queues" in body
        status, headers, _ = get("/", key=None)
        assert status == 302 and headers["Location"] == "app"
    finally:
        api.reset()


def test_ops_queues_when_read_then_depths_and_only_this_keys_failures(stack):
    api.reset(stack.service)
    try:
        stack.upload(EXAMPLES / "meeting.wav")  # its S3 event waits in the queue
        mine = stack.service.create_upload({"filename": "bad.wav", "contentType": "audio/wav", "contentLength": 9},
                                           "alice")
        theirs = stack.service.create_upload({"filename": "other.wav", "contentType": "audio/wav",
                                              "contentLength": 9}, "bob")
        for created in (mine, theirs):
            stack.jobs.fail_without_audio(created["jobId"], "bad.wav could not be decoded as audio")
        status, _, body = get("/ops/queues")
        ops = json.loads(body)
        assert status == 200 and ops["queue"]["visible"] + ops["queue"]["inFlight"] >= 1
        assert ops["deadLetters"] == {"visible": 0, "inFlight": 0, "delayed": 0}
        assert [(f["jobId"], f["error"]) for f in ops["failures"]] == [
            (mine["jobId"], "bad.wav could not be decoded as audio")]
        assert get("/ops/queues", key=None)[0] == 403
    finally:
        api.reset()
