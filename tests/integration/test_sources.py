"""Audio that is already somewhere: jobs from S3 objects (copied server-side by the API), from URLs
(fetched by a worker through the guarded way out) and from the drop folder, against moto over HTTP and
real sockets on 127.0.0.1. The catalogue of refused sources: each a clear 4xx, or a FAILED job with its
reason, and nothing fetched or stored."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES
from tests.integration.conftest import ALICE, delivery_of
from tests.integration.test_egress import PUBLIC
from whisperq.aws.provision import create_bucket
from whisperq.core.jobs import JobStatus
from whisperq.core.sources import fetch_message
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import handler as function
from whisperq.transcriber.egress import GuardedClient, connect_to
from whisperq.transcriber.engines.synthetic import SyntheticEngine
from whisperq.transcriber.sources import Fetcher

WAV = (EXAMPLES / "meeting.wav").read_bytes()


@pytest.fixture
def source_bucket(stack, unique):
    name = f"wq-src-{unique}"
    create_bucket(stack.clients, name, "us-east-1")
    return name


@pytest.fixture
def settings(stack, source_bucket):
    return replace(stack.settings, source_buckets=source_bucket, max_upload_bytes=len(WAV) + 10)


@pytest.fixture
def run_worker(stack, settings):
    """The real transcriber handler (synthetic engine) on whatever the queue holds."""
    function.reset(function.build_runtime(settings, stack.clients, SyntheticEngine(0.0), Logger(service="t"),
                                          sleep=lambda s: None))

    def run(expected: int = 1, receive_count: int | None = None) -> dict:
        records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in stack.receive_all(expected)]
        assert records, "nothing arrived on the queue"
        for record in records:
            if receive_count is not None:
                record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        return function.handler({"Records": records}, LocalLambdaContext("whisperq-transcriber"))

    yield run
    function.reset()


def serve_wav(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "audio/wav")
    handler.send_header("Content-Length", str(len(WAV)))
    handler.end_headers()
    handler.wfile.write(WAV)


def nothing_queued(stack) -> bool:
    return not [m for m in stack.queue.receive(10, 0) if '"s3:TestEvent"' not in m.body]


# --- from S3 -----------------------------------------------------------------------------------------
def test_s3_source_when_granted_then_copied_server_side_and_transcribed(stack, call, run_worker, source_bucket):
    stack.clients.s3.put_object(Bucket=source_bucket, Key="calls/2026/monday call.wav", Body=WAV,
                                ContentType="binary/octet-stream")
    source = f"s3://{source_bucket}/calls/2026/monday call.wav"
    status, created, _ = call("POST", "/jobs", {"source": source}, headers={"Idempotency-Key": "k-1"})
    assert status == 201, created
    assert created["source"] == source and created["filename"] == "monday call.wav"
    assert created["contentType"] == "audio/wav" and created["status"] == "QUEUED" and "upload" not in created
    stored = stack.blobs.head(stack.jobs.get(created["jobId"]).audio_key)
    assert stored.size_bytes == len(WAV) and stored.content_type == "audio/wav"
    # Sent again with its key: the same job, nothing copied twice.
    status, again, _ = call("POST", "/jobs", {"source": source}, headers={"Idempotency-Key": "k-1"})
    assert status == 201 and again["jobId"] == created["jobId"] and again["idempotentReplayed"] is True
    assert run_worker() == {"batchItemFailures": []}
    status, job, _ = call("GET", f"/jobs/{created['jobId']}", template="/jobs/{job_id}")
    assert job["status"] == "COMPLETED" and job["source"] == source


@pytest.mark.parametrize(("what", "source", "says"), [
    ("a bucket not granted", "s3://someone-elses-bucket/a.wav", "not granted"),
    ("a missing object", "s3://{bucket}/missing.wav", "does not exist"),
    ("an object over the size limit", "s3://{bucket}/big.wav", "1 to"),
    ("a prefix, not an object", "s3://{bucket}/calls/", "names no object"),
    ("the stack's own bucket", "s3://{own}/audio/someone-elses-job/a.wav", "own bucket"),
])
def test_s3_source_when_refused_then_400_and_no_job(stack, call, source_bucket, what, source, says):
    stack.clients.s3.put_object(Bucket=source_bucket, Key="big.wav", Body=WAV + bytes(100), ContentType="audio/wav")
    status, payload, _ = call("POST", "/jobs", {"source": source.format(bucket=source_bucket,
                                                                        own=stack.settings.bucket)})
    assert status == 400, (what, payload)
    assert payload["error"]["code"] == "source_refused" and says in payload["error"]["message"], what
    assert call("GET", "/jobs")[1]["jobs"] == []
    assert nothing_queued(stack)


def test_s3_source_when_the_copy_fails_for_a_moment_then_the_job_waits_and_the_same_create_finishes_it(
        stack, settings, source_bucket):
    """A passing AWS error on the copy: the create fails (a 5xx the client sends again), the job is not
    ended, and the create sent again with its Idempotency-Key copies and queues it."""
    from whisperq.api_handler.service import JobService
    from whisperq.core.errors import TransientError

    stack.clients.s3.put_object(Bucket=source_bucket, Key="a.wav", Body=WAV, ContentType="audio/wav")
    service = JobService(settings, stack.jobs, stack.blobs)
    copy, failures = stack.blobs.copy_in, []

    def flaky(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise TransientError("SlowDown: please reduce your request rate")
        return copy(*args, **kwargs)

    stack.blobs.copy_in = flaky
    body = {"source": f"s3://{source_bucket}/a.wav"}
    with pytest.raises(TransientError):
        service.create_job(body, ALICE, "same-key")
    [waiting] = stack.jobs.list_by_owner(ALICE, 10)[0]
    assert waiting.status is JobStatus.UPLOADING and waiting.error is None
    again = service.create_job(body, ALICE, "same-key")
    assert again["jobId"] == waiting.job_id and again["status"] == "QUEUED" and again["idempotentReplayed"]


# --- from a URL: refused at once ---------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "http://example.com/a.wav", "https://127.0.0.1/a.wav", "https://localhost/a.wav", "https://[::1]/a.wav",
    "https://169.254.169.254/latest/meta-data/", "https://10.1.2.3/a.wav", "https://172.16.0.9/a.wav",
    "https://192.168.1.20/a.wav", "https://[fd00::1]/a.wav", "https://[::ffff:127.0.0.1]/a.wav",
    "https://user:pw@example.com/a.wav", "ftp://example.com/a.wav",
])
def test_url_source_when_not_a_public_https_url_then_400_and_nothing_queued(stack, call, url):
    status, payload, _ = call("POST", "/jobs", {"source": url})
    assert status == 400 and payload["error"]["code"] == "source_refused", (url, payload)
    assert call("GET", "/jobs")[1]["jobs"] == []
    assert nothing_queued(stack)


# --- from a URL: fetched by a worker -----------------------------------------------------------------
def test_url_source_when_fetched_then_its_s3_event_queues_it_and_it_completes(stack, call, settings, run_worker,
                                                                             server):
    host = server(serve_wav)
    from whisperq.api_handler import handler as api
    from whisperq.api_handler.service import JobService

    api.reset(JobService(replace(settings, allow_private_sources=True), stack.jobs, stack.blobs))
    url = f"http://127.0.0.1:{host.port}/audio/standup.wav?signature=abc"
    status, created, _ = call("POST", "/jobs", {"source": url})
    assert status == 201 and created["status"] == "UPLOADING" and created["filename"] == "standup.wav"
    function.reset(function.build_runtime(replace(settings, allow_private_sources=True), stack.clients,
                                          SyntheticEngine(0.0), Logger(service="t"), sleep=lambda s: None))
    assert run_worker() == {"batchItemFailures": []}  # the fetch
    assert host.hits == 1
    assert stack.jobs.get(created["jobId"]).status in (JobStatus.UPLOADING, JobStatus.QUEUED)
    assert run_worker() == {"batchItemFailures": []}  # the audio's S3 event
    job = stack.jobs.get(created["jobId"])
    assert job.status is JobStatus.COMPLETED and job.source == url


def fetch_job(stack, settings, url: str) -> str:
    """A URL job as the API makes it (created, its fetch queued), made directly: the test's host is local."""
    from whisperq.api_handler.service import JobService

    service = JobService(replace(settings, allow_private_sources=True), stack.jobs, stack.blobs)
    return service.create_job({"source": url}, ALICE)["jobId"]


def fetch(stack, settings, client: GuardedClient, receive_count: int = 2, **changes) -> str:
    """Run the fetch message on the queue through a Fetcher that uses `client`; its outcome."""
    message = stack.receive_all(1)[0]
    assert json.loads(message.body)["kind"] == "whisperq.fetch"
    context = function.build_runtime(replace(settings, **changes), stack.clients, SyntheticEngine(0.0),
                                     Logger(service="t"), sleep=lambda s: None).context
    return Fetcher(context, client).handle(json.loads(message.body)["jobId"],
                                           delivery_of(stack, message, receive_count))


def assert_failed_with_nothing_stored(stack, job_id: str, says: str) -> None:
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.FAILED and says in job.error, job.error
    assert job.error.startswith("the audio could not be fetched from ")
    assert stack.blobs.head(job.audio_key) is None


def to_local(port: int):
    """A public name's connection, sent to the test's host on 127.0.0.1 (the name resolves to PUBLIC)."""
    return lambda address, _port, timeout_s: connect_to("127.0.0.1", port, timeout_s)


def test_url_source_when_a_public_name_redirects_to_loopback_then_failed_and_the_target_never_asked(stack, settings,
                                                                                                      server):
    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", f"http://127.0.0.1:{handler.server.server_address[1]}/secret.wav")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    host = server(redirect)
    job_id = fetch_job(stack, settings, f"http://audio.example:{host.port}/a.wav")
    client = GuardedClient(resolver=lambda name, port: [PUBLIC], connect=to_local(host.port))
    assert fetch(stack, settings, client) == "failed:fetch"
    assert host.hits == 1  # the redirect; its loopback target was refused before any connection
    assert_failed_with_nothing_stored(stack, job_id, "127.0.0.1 is a private, loopback or link-local address")


@pytest.mark.parametrize(("what", "answer", "says"), [
    ("a body larger than announced", "longer", "longer than the 100 bytes its Content-Length announced"),
    ("a body over the limit, not announced", "unannounced", "larger than the limit"),
    ("a Content-Length over the limit", "announced", "over the limit"),
    ("a 404", "404", "answered 404"),
    ("a redirect loop", "loop", "more than 5 redirects"),
])
def test_url_source_when_the_body_is_refused_then_failed_with_the_reason(stack, settings, server, what, answer, says):
    def respond(handler):
        if answer == "loop":
            handler.send_response(302)
            handler.send_header("Location", "/again.wav")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if answer == "404":
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "audio/wav")
        if answer == "longer":
            handler.send_header("Content-Length", "100")
        elif answer == "announced":
            handler.send_header("Content-Length", str(len(WAV) * 4))
        handler.end_headers()
        handler.wfile.write(WAV * 2 if answer != "longer" else WAV[:5000])
        handler.close_connection = True

    host = server(respond)
    job_id = fetch_job(stack, settings, f"http://127.0.0.1:{host.port}/a.wav")
    assert fetch(stack, settings, GuardedClient(allow_private=True)) == "failed:fetch", what
    assert_failed_with_nothing_stored(stack, job_id, says)


def test_url_source_when_the_server_never_answers_then_retried_and_failed_on_the_last_delivery(stack, settings, server):
    release = threading.Event()
    host = server(lambda handler: release.wait(10))
    try:
        job_id = fetch_job(stack, settings, f"http://127.0.0.1:{host.port}/a.wav")
        started = time.monotonic()
        from whisperq.core.errors import TransientError

        with pytest.raises(TransientError, match="deadline"):  # not the last delivery: the message returns
            fetch(stack, settings, GuardedClient(allow_private=True), receive_count=1, source_fetch_timeout_s=1)
        assert stack.jobs.get(job_id).status is JobStatus.UPLOADING
        stack.queue.send(fetch_message(job_id))
        assert fetch(stack, settings, GuardedClient(allow_private=True), receive_count=2,
                     source_fetch_timeout_s=1) == "failed:fetch"
        assert time.monotonic() - started < 6
        assert_failed_with_nothing_stored(stack, job_id, "(delivery 2 of 2, the last)")
    finally:
        release.set()


# --- the drop folder ---------------------------------------------------------------------------------
def test_inbox_when_a_file_is_dropped_then_one_job_per_version_and_transcripts_beside_it(stack, settings, run_worker):
    key = "inbox/team/weekly meeting.wav"
    stack.clients.s3.put_object(Bucket=stack.settings.bucket, Key=key, Body=WAV, ContentType="audio/wav")
    messages = stack.receive_all(1)
    event_body = messages[0].body
    records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in messages]
    assert function.handler({"Records": records}, LocalLambdaContext("t")) == {"batchItemFailures": []}
    # The same event again (S3 delivers at least once): no second job.
    stack.queue.send(event_body)
    assert run_worker(2) == {"batchItemFailures": []}  # the duplicate and the copy's event
    jobs, _ = stack.jobs.list_by_owner(settings.inbox_owner, 10)
    assert len(jobs) == 1
    job = stack.jobs.get(jobs[0].job_id)
    if job.status is not JobStatus.COMPLETED:  # the copy's event came after the duplicate
        assert run_worker() == {"batchItemFailures": []}
        job = stack.jobs.get(job.job_id)
    assert job.status is JobStatus.COMPLETED and job.source == f"s3://{stack.settings.bucket}/{key}"
    beside = stack.blobs.get_text(f"{key}.txt")
    assert beside == stack.blobs.get_text(job.transcript_keys["txt"]) and beside.strip()
    assert json.loads(stack.blobs.get_text(f"{key}.json"))["segments"]
    # The transcripts written beside it are dropped files too: their events make no job.
    for _ in range(3):
        if nothing_queued(stack):
            break
    assert len(stack.jobs.list_by_owner(settings.inbox_owner, 10)[0]) == 1
