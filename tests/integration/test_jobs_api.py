"""The resource-style API, keys and ownership, cancellation, upload limits and expiry, callbacks,
with every response checked against the OpenAPI document."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES
from tests.integration.conftest import ALICE, BOB, post_form
from whisperq.api_handler import handler as api
from whisperq.api_handler import service as service_module
from whisperq.api_handler.service import JobService
from whisperq.aws.queues import Queue
from whisperq.core.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from whisperq.core.jobs import JobStatus
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import callbacks
from whisperq.transcriber.callbacks import RetryLater, Sender
from whisperq.transcriber.egress import GuardedClient


def test_create_job_when_valid_then_pre_signed_post_that_uploads_and_transcribes(call, stack, transcriber):
    status, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    assert status == 201 and created["status"] == "UPLOADING"
    upload = created["upload"]
    assert upload["method"] == "POST" and upload["fields"]["Content-Type"] == "audio/wav"
    assert upload["fields"]["key"] == f"audio/tiny-en/{created['jobId']}/meeting.wav"
    assert upload["maxBytes"] == stack.settings.max_upload_bytes
    policy = json.loads(__import__("base64").b64decode(upload["fields"]["policy"]))
    assert ["content-length-range", 1, stack.settings.max_upload_bytes] in policy["conditions"]
    assert post_form(created, (EXAMPLES / "meeting.wav").read_bytes()).status_code in (200, 204)
    assert transcriber() == {"batchItemFailures": []}
    status, job, _ = call("GET", f"/jobs/{created['jobId']}", template="/jobs/{job_id}")
    assert status == 200 and job["status"] == "COMPLETED"


def test_list_jobs_when_paged_then_newest_first_own_jobs_only_and_cursor_round_trips(call):
    mine = [call("POST", "/jobs", {"filename": f"{i}.wav", "contentType": "audio/wav"})[1]["jobId"] for i in range(5)]
    call("POST", "/jobs", {"filename": "bob.wav", "contentType": "audio/wav"}, key=BOB)
    status, first, _ = call("GET", "/jobs", query={"limit": "2"})
    assert status == 200 and len(first["jobs"]) == 2 and first["nextCursor"]
    seen = [job["jobId"] for job in first["jobs"]]
    cursor = first["nextCursor"]
    while cursor:
        _, page, _ = call("GET", "/jobs", query={"limit": "2", "cursor": cursor})
        seen += [job["jobId"] for job in page["jobs"]]
        cursor = page["nextCursor"]
    assert seen == list(reversed(mine))
    _, uploading, _ = call("GET", "/jobs", query={"status": "UPLOADING", "limit": "100"})
    assert len(uploading["jobs"]) == 5
    _, none, _ = call("GET", "/jobs", query={"status": "COMPLETED"})
    assert none == {"jobs": [], "nextCursor": None}


@pytest.mark.parametrize(
    ("query", "fragment"),
    [({"limit": "0"}, "limit"), ({"limit": "many"}, "limit"), ({"limit": "101"}, "limit"),
     ({"status": "DONE"}, "status must be one of"), ({"cursor": "not-a-cursor"}, "cursor"),
     ({"cursor": "eyJqb2JJZCI6IngiLCJvd25lciI6ImtleS1ib2IiLCJjcmVhdGVkQXQiOiJ4In0"}, "cursor")],
)
def test_list_jobs_when_bad_query_or_someone_elses_cursor_then_400(call, query, fragment):
    status, payload, _ = call("GET", "/jobs", query=query)
    assert status == 400 and fragment in payload["error"]["message"]


def test_job_when_read_with_another_key_then_404_as_if_missing(call):
    _, created, _ = call("POST", "/jobs", {"filename": "a.wav", "contentType": "audio/wav"})
    for method, path, template in (("GET", f"/jobs/{created['jobId']}", "/jobs/{job_id}"),
                                   ("DELETE", f"/jobs/{created['jobId']}", "/jobs/{job_id}"),
                                   ("GET", f"/status/{created['jobId']}", "/status/{job_id}")):
        status, payload, _ = call(method, path, key=BOB, template=template)
        assert status == 404 and payload["error"]["code"] == "job_not_found"


def test_request_when_no_api_key_id_then_403_except_health(call):
    status, payload, _ = call("GET", "/jobs", key=None)
    assert status == 403 and payload["error"]["code"] == "forbidden"
    assert call("GET", "/health", key=None)[:2] == (200, {"status": "ok"})
    status, doc, _ = call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1") and "/jobs/{job_id}/transcript" in doc["paths"]


def test_transcript_when_not_completed_then_409_and_when_completed_then_302(call, stack, transcriber):
    _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    job_id = created["jobId"]
    template = "/jobs/{job_id}/transcript"
    status, payload, _ = call("GET", f"/jobs/{job_id}/transcript", template=template)
    assert status == 409 and "UPLOADING" in payload["error"]["message"]
    post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
    transcriber()
    status, payload, headers = call("GET", f"/jobs/{job_id}/transcript", query={"format": "srt"}, template=template)
    assert status == 302 and headers["Location"] == payload["transcriptUrl"]
    assert requests.get(headers["Location"], timeout=10).text.startswith("1\n00:00:00,000 --> ")
    status, payload, _ = call("GET", f"/jobs/{job_id}/transcript", query={"format": "docx"}, template=template)
    assert status == 400 and "format must be one of" in payload["error"]["message"]


def test_cancel_when_queued_then_cancelled_files_deleted_and_worker_skips(call, stack, transcriber):
    _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    job_id = created["jobId"]
    post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
    status, job, _ = call("DELETE", f"/jobs/{job_id}", template="/jobs/{job_id}")
    assert status == 200 and job["status"] == "CANCELLED"
    assert stack.blobs.head(f"audio/tiny-en/{job_id}/meeting.wav") is None
    assert transcriber() == {"batchItemFailures": []}
    assert stack.jobs.get(job_id).status is JobStatus.CANCELLED
    assert stack.blobs.head(f"transcripts/{job_id}/{job_id}.txt") is None


def test_cancel_when_finished_then_409(call, stack, transcriber):
    _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
    transcriber()
    status, payload, _ = call("DELETE", f"/jobs/{created['jobId']}", template="/jobs/{job_id}")
    assert status == 409 and "already ended COMPLETED" in payload["error"]["message"]
    assert stack.blobs.head(f"transcripts/{created['jobId']}/{created['jobId']}.txt") is not None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"filename": "x" * 300 + ".wav", "contentType": "audio/wav"}, "1 to 255 characters"),
        ({"filename": "a.wav", "contentType": "audio/wav", "callbackUrl": "ftp://example.com/x"}, "http(s)"),
        ({"filename": "a.wav", "contentType": "audio/wav", "callbackUrl": 5}, "callbackUrl"),
        ({"filename": "a.wav", "contentType": "audio/wav", "callbackUrl": "http://u:p@example.com/"}, "credentials"),
    ],
)
def test_create_job_when_invalid_then_400(call, body, fragment):
    status, payload, _ = call("POST", "/jobs", body)
    assert status == 400 and fragment in payload["error"]["message"]


def test_upload_when_never_arrives_then_job_fails_after_url_expiry(call, stack, monkeypatch):
    monkeypatch.setattr(service_module, "UPLOAD_GRACE_S", 0)
    service = JobService(replace(stack.settings, upload_url_expiry_s=1), stack.jobs, stack.blobs)
    api.reset(service)
    _, created, _ = call("POST", "/jobs", {"filename": "a.wav", "contentType": "audio/wav"})
    __import__("time").sleep(1.3)
    status, job, _ = call("GET", f"/jobs/{created['jobId']}", template="/jobs/{job_id}")
    assert status == 200 and job["status"] == "FAILED" and "upload not received" in job["error"]


def test_upload_when_stored_with_wrong_type_then_failed_before_decoding(call, stack, transcriber):
    _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    stack.clients.s3.put_object(Bucket=stack.settings.bucket, Key=created["upload"]["fields"]["key"],
                                Body=(EXAMPLES / "meeting.wav").read_bytes(), ContentType="text/plain")
    assert transcriber() == {"batchItemFailures": []}
    job = stack.jobs.get(created["jobId"])
    assert job.status is JobStatus.FAILED and "not an accepted audio type" in job.error


class Receiver:
    """A callback receiver on 127.0.0.1 that answers with the given status codes in turn."""

    def __init__(self, statuses):
        self.requests, self.statuses = [], list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def queued_callback(stack, job_id):
    """The callback the worker handed over: the job's status says so, and its message waits for the sender."""
    assert stack.jobs.get(job_id).callback_status == "queued"
    queue = Queue(stack.clients, stack.resources.callbacks_queue_url)
    [message] = queue.receive(10, 1)
    assert json.loads(message.body) == {"jobId": job_id}
    return message


def sender(settings, stack):
    return Sender(settings, stack.jobs, GuardedClient(allow_private=True), Logger(service="t"))


def test_callback_when_job_completes_then_signed_post_with_final_state(call, stack, settings, transcriber):
    receiver = Receiver([503, 200])  # one failure, then accepted
    try:
        _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav",
                                               "callbackUrl": receiver.url})
        post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
        transcriber()
        assert receiver.requests == []  # the worker never waits on a receiver
        message = queued_callback(stack, created["jobId"])
        with pytest.raises(RetryLater):
            sender(settings, stack).send(message.body, receive_count=1)
        assert stack.jobs.get(created["jobId"]).callback_status == \
            "retrying (attempt 1 of 4 failed: HTTP 503)"
        assert sender(settings, stack).send(message.body, receive_count=2) == "delivered (HTTP 200)"
    finally:
        receiver.close()
    assert len(receiver.requests) == 2
    headers, body = receiver.requests[-1]
    assert verify("s3cret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify("other", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["jobId"] == created["jobId"] and payload["status"] == "COMPLETED"
    assert stack.jobs.get(created["jobId"]).callback_status == "delivered (HTTP 200)"


def test_callback_when_receiver_keeps_failing_then_bounded_retries_and_job_still_completed(call, stack, settings,
                                                                                          transcriber):
    receiver = Receiver([500] * 10)
    try:
        _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav",
                                               "callbackUrl": receiver.url})
        post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
        assert transcriber() == {"batchItemFailures": []}
        message = queued_callback(stack, created["jobId"])
        # Through the sender's function: a failed attempt is hidden for its backoff and reported failed.
        record = lambda_record(message, stack.resources.callbacks_queue_arn, "us-east-1")
        handle = callbacks.build(settings, stack.clients)
        assert handle({"Records": [record]}, LocalLambdaContext("whisperq-callbacks")) == \
            {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
        assert Queue(stack.clients, stack.resources.callbacks_queue_url).receive(1, 0) == []  # hidden
        for attempt in (2, 3):
            with pytest.raises(RetryLater):
                sender(settings, stack).send(message.body, receive_count=attempt)
        assert sender(settings, stack).send(message.body, receive_count=4) == \
            "failed after 4 attempts: HTTP 500"
    finally:
        receiver.close()
    assert len(receiver.requests) == 4
    job = stack.jobs.get(created["jobId"])
    assert job.status is JobStatus.COMPLETED and job.callback_status == "failed after 4 attempts: HTTP 500"


@pytest.mark.parametrize(("path", "template"), [("/jobs", "/jobs"), ("/upload", "/upload")])
def test_create_when_sent_again_with_its_idempotency_key_then_the_same_job_not_a_second(call, stack, path, template):
    body = {"filename": "meeting.wav", "contentType": "audio/wav"}
    if path == "/upload":
        body["contentLength"] = 9
    status, first, _ = call("POST", path, body, headers={"Idempotency-Key": "order-7781"})
    assert status == 201 and "idempotentReplayed" not in first
    # Header names are case-insensitive, as in HTTP.
    status, again, _ = call("POST", path, body, headers={"idempotency-key": "order-7781"})
    assert status == 201 and again["jobId"] == first["jobId"] and again["idempotentReplayed"] is True
    assert stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"] == 1
    # Another key makes another job; the same key from another API key is that caller's own.
    assert call("POST", path, body, headers={"Idempotency-Key": "order-7782"})[1]["jobId"] != first["jobId"]
    _, bobs, _ = call("POST", path, body, key=BOB, headers={"Idempotency-Key": "order-7781"})
    assert bobs["jobId"] != first["jobId"] and "idempotentReplayed" not in bobs
    # The same key with a different request is refused, and changes nothing.
    status, payload, _ = call("POST", path, {**body, "filename": "other.wav"},
                              headers={"Idempotency-Key": "order-7781"})
    assert status == 409 and "different request" in payload["error"]["message"]
    assert stack.jobs.get(first["jobId"]).filename == "meeting.wav"


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_create_when_idempotency_key_malformed_then_400_and_no_job(call, stack, key):
    status, payload, _ = call("POST", "/jobs", {"filename": "a.wav", "contentType": "audio/wav"},
                              headers={"Idempotency-Key": key})
    assert status == 400 and "Idempotency-Key" in payload["error"]["message"]
    assert stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"] == 0


def test_callback_when_an_attempt_outlived_its_function_then_no_fifth_attempt_and_failed_recorded(call, stack, settings,
                                                                                                  transcriber):
    receiver = Receiver([200])
    try:
        _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav",
                                               "callbackUrl": receiver.url})
        post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
        transcriber()
        message = queued_callback(stack, created["jobId"])
        # The 4th attempt's function ended at its timeout: the message comes a 5th time.
        assert sender(settings, stack).send(message.body, receive_count=5).startswith("failed after 4 attempts")
        assert receiver.requests == []
        # A copy of the message after the callback ended sends nothing either.
        assert sender(settings, stack).send(message.body, receive_count=1) == "skipped"
    finally:
        receiver.close()
    assert receiver.requests == []


def test_create_job_when_model_named_then_its_tier_and_an_unknown_one_a_400_listing_the_models(stack, settings):
    """A job asks for one of the deployment's models: its audio goes under that tier's prefix (whose
    events reach that tier's queue) and the job records model and tier; another model is a 400 that
    names the deployment's models, and no job is left behind."""
    from whisperq.aws.provision import provision

    two = replace(settings, models="base")
    provision(stack.clients, two)
    service = JobService(two, stack.jobs, stack.blobs, allow_private_callbacks=True)
    api.reset(service)
    try:
        event = json.loads((EXAMPLES.parent / "tests" / "events" / "api_post_upload.json").read_text())
        event.update(httpMethod="POST", path="/jobs", resource="/jobs", queryStringParameters=None)
        event["requestContext"]["identity"]["apiKeyId"] = ALICE

        def create(body):
            event["body"] = json.dumps(body)
            response = api.handler(event, LocalLambdaContext("whisperq-api"))
            return response["statusCode"], json.loads(response["body"])

        status, created = create({"filename": "f.ogg", "contentType": "audio/ogg", "model": "base",
                                  "options": {"language": "fr"}})
        assert status == 201 and (created["model"], created["tier"]) == ("base", "base")
        assert created["upload"]["fields"]["key"] == f"audio/base/{created['jobId']}/f.ogg"
        assert stack.jobs.get(created["jobId"]).tier_model == "base"
        status, default = create({"filename": "m.wav", "contentType": "audio/wav"})
        assert status == 201 and (default["model"], default["tier"]) == ("tiny.en", "tiny-en")
        before = len(service.list(ALICE, limit=100)["jobs"])
        status, refused = create({"filename": "m.wav", "contentType": "audio/wav", "model": "large-v3"})
        assert status == 400 and "tiny.en, base" in refused["error"]["message"], refused
        # The model's own rules: tiny.en (English-only) refuses French, base takes it.
        status, english_only = create({"filename": "m.wav", "contentType": "audio/wav", "model": "tiny.en",
                                       "options": {"language": "fr"}})
        assert status == 400 and "English-only" in english_only["error"]["message"]
        assert len(service.list(ALICE, limit=100)["jobs"]) == before
    finally:
        api.reset()


def test_job_from_before_tiers_when_its_upload_lands_then_its_event_is_sent_for_it(stack, settings):
    """A job made before tiers has its audio at audio/<jobId>/<file>, a prefix no notification reaches any
    more: when the API sees the upload, it sends the S3 event itself, to the default tier's queue."""
    from whisperq.core.jobs import Job, iso, new_job_id, utc_now

    service = JobService(settings, stack.jobs, stack.blobs)
    job_id, now = new_job_id(), iso(utc_now())
    stack.jobs.create(Job(job_id, JobStatus.UPLOADING, "m.wav", "audio/wav", f"audio/{job_id}/m.wav", now, now,
                          owner=ALICE))
    stack.blobs.put_bytes(f"audio/{job_id}/m.wav", (EXAMPLES / "meeting.wav").read_bytes(), "audio/wav")
    assert service.status(job_id, ALICE)["status"] == "QUEUED"
    [message] = stack.receive_all(1)
    assert f"audio%2F{job_id}%2Fm.wav" in message.body or f"audio/{job_id}/m.wav" in message.body
    # A job of a served tier is announced by S3 alone: nothing more is sent.
    created = service.create_upload({"filename": "m.wav", "contentType": "audio/wav", "contentLength": 200986},
                                    ALICE)
    requests.put(created["uploadUrl"], data=(EXAMPLES / "meeting.wav").read_bytes(),
                 headers=created["uploadHeaders"], timeout=30).raise_for_status()
    assert service.status(created["jobId"], ALICE)["status"] == "QUEUED"
    assert len(stack.receive_all(2, timeout_s=4)) == 1


def test_create_when_sent_again_naming_the_default_model_then_the_same_job(stack, settings):
    """Omitted, or named by its own name: one model, one request; another model is another request."""
    from whisperq.aws.provision import provision
    from whisperq.core.errors import Conflict

    two = replace(settings, models="base")
    provision(stack.clients, two)
    service = JobService(two, stack.jobs, stack.blobs)
    body = {"filename": "m.wav", "contentType": "audio/wav"}
    first = service.create_job(body, ALICE, idempotency_key="k1")
    again = service.create_job({**body, "model": "tiny.en"}, ALICE, idempotency_key="k1")
    assert again["jobId"] == first["jobId"] and again["idempotentReplayed"] is True
    with pytest.raises(Conflict):
        service.create_job({**body, "model": "base"}, ALICE, idempotency_key="k1")
    # The operator view counts each tier's queues.
    from whisperq.api_handler.ops import Operations

    view = Operations(two, stack.clients, stack.jobs).queues(ALICE)
    assert set(view["tiers"]) == {"tiny-en", "base"} and view["tiers"]["base"]["model"] == "base"
    assert view["tiers"]["tiny-en"]["queue"] == view["queue"] and view["tiers"]["base"]["deadLetters"]["visible"] == 0
