"""The OpenAI-compatible routes in the API handler, on a moto stack: the audio stored where an upload
goes (so its S3 event queues the job), a worker's answer awaited, and the edges without one."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import replace

import pytest
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES, load_event
from whisperq.api_handler import handler as api
from whisperq.api_handler.service import JobService
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.synthetic import SyntheticEngine

MEETING = (EXAMPLES / "meeting.wav").read_bytes()


def multipart(fields: dict, file: tuple[str, bytes] | None = ("meeting.wav", MEETING)) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    if file:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file[0]}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + file[1] + b"\r\n")
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


@pytest.fixture
def route(stack):
    def install(wait_s: float = 0.3, max_bytes: int = 4 * 1024 * 1024):
        settings = replace(stack.settings, openai_wait_s=wait_s, openai_max_bytes=max_bytes)
        api.reset(JobService(settings, stack.jobs, stack.blobs))

        def post(fields: dict, file=("meeting.wav", MEETING), headers: dict | None = None, key: str = "alice"):
            content_type, body = multipart(fields, file)
            event = load_event("api_post_upload.json")
            event.update(httpMethod="POST", path="/v1/audio/transcriptions", resource="/v1/audio/transcriptions",
                         body=base64.b64encode(body).decode(), isBase64Encoded=True)
            event["headers"] = {"Content-Type": content_type, **(headers or {})}
            event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
            event["requestContext"]["identity"]["apiKeyId"] = key
            response = api.handler(event, LocalLambdaContext("whisperq-api"))
            headers_out = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
            headers_out.update(response.get("headers") or {})
            return response["statusCode"], response["body"], headers_out

        return post

    yield install
    api.reset()


def test_route_when_no_worker_answers_in_time_then_408_naming_the_job_which_stays_queued(route, stack):
    status, body, headers = route(wait_s=0.3)({"model": "whisper-1"})
    error = json.loads(body)["error"]
    job_id = headers["x-whisperq-job-id"]
    assert status == 408 and error["code"] == "job_pending" and job_id in error["message"]
    assert headers["x-should-retry"] == "false"  # no Idempotency-Key: a retry would make a second job
    assert stack.blobs.head(stack.jobs.get(job_id).audio_key) is not None  # the audio is where uploads go
    assert len(stack.receive_all(1)) == 1  # and its S3 event is queued like any upload's


def test_route_when_sent_again_with_its_key_then_same_job_audio_stored_once_and_retry_allowed(route, stack):
    post = route(wait_s=0.2)
    first = post({"model": "whisper-1"}, headers={"Idempotency-Key": "k-1"})
    second = post({"model": "whisper-1"}, headers={"Idempotency-Key": "k-1"})
    assert first[0] == second[0] == 408 and first[2]["x-should-retry"] == "true"
    assert first[2]["x-whisperq-job-id"] == second[2]["x-whisperq-job-id"]
    assert len(stack.receive_all(2, timeout_s=3)) == 1  # stored once: one S3 event


def test_route_when_the_same_key_comes_with_other_audio_under_the_same_name_then_409(route, stack):
    """The probe: the key and the filename were the same, the audio was not; it answered the first audio's
    transcript. The audio's digest is part of what the key stands for."""
    post = route(wait_s=0.2)
    assert post({"model": "whisper-1"}, headers={"Idempotency-Key": "k-2"})[0] == 408
    other = (EXAMPLES / "standup.wav").read_bytes()
    status, body, _ = post({"model": "whisper-1"}, file=("meeting.wav", other), headers={"Idempotency-Key": "k-2"})
    assert status == 409 and "different request" in json.loads(body)["error"]["message"]


def test_route_when_a_worker_transcribes_then_200_in_the_asked_format(route, stack):
    post = route(wait_s=20)
    runtime = function.build_runtime(stack.settings, stack.clients, SyntheticEngine(0.0), Logger(service="t"),
                                     sleep=lambda s: None)
    function.reset(runtime)

    def worker():
        records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in stack.receive_all(1)]
        function.handler({"Records": records}, LocalLambdaContext("whisperq-transcriber"))

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        status, body, headers = post({"model": "tiny.en", "response_format": "verbose_json"})
    finally:
        thread.join(30)
        function.reset()
    answer = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert answer["task"] == "transcribe" and answer["duration"] == pytest.approx(6.28, abs=0.05)
    assert answer["segments"] and stack.jobs.get(headers["x-whisperq-job-id"]).status.value == "COMPLETED"


def test_route_when_over_its_size_then_413_and_nothing_stored(route, stack):
    status, body, _ = route(max_bytes=1000)({"model": "whisper-1"})
    error = json.loads(body)["error"]
    assert status == 413 and error["param"] == "file" and "POST /jobs" in error["message"]
    assert stack.jobs.list_by_owner("alice", 10, None, None)[0] == []


@pytest.mark.parametrize(("fields", "file", "param"), [
    ({"model": "whisper-1", "language": "zz"}, ("a.wav", MEETING), "language"),
    ({"model": "whisper-1"}, ("slides.pdf", b"%PDF-1.7"), "file"),
    ({"model": "whisper-1"}, None, "file"),
    ({}, ("a.wav", MEETING), "model"),
])
def test_route_when_refused_then_openai_error_shape_and_no_job(route, stack, fields, file, param):
    status, body, _ = route()(fields, file)
    error = json.loads(body)["error"]
    assert status == 400 and error["param"] == param and error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert stack.jobs.list_by_owner("alice", 10, None, None)[0] == []


def test_route_when_a_key_already_has_its_waits_then_429_with_retry_after_and_others_unaffected(route, stack):
    """The probe: four concurrent requests held the twin's API while they waited. One key holds at most
    openai_waits_per_key (2) waits; a third is told to come back, and another key is not."""
    post = route(wait_s=1.5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(post({"model": "whisper-1"})[0])) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(
            1 for i in range(2) if "Item" in stack.clients.dynamodb.get_item(
                TableName=stack.settings.table, Key={"jobId": {"S": f"wait#alice#{i}"}})) < 2:
        time.sleep(0.05)
    status, body, headers = post({"model": "whisper-1"})
    assert status == 429 and headers["Retry-After"] == "5" and "POST /jobs" in json.loads(body)["error"]["message"]
    assert post({"model": "whisper-1"}, key="bob")[0] == 408  # another key waits as usual
    for thread in threads:
        thread.join(10)
    assert results == [408, 408]
    assert post({"model": "whisper-1"})[0] == 408  # the slots were given back
