"""Retries, heartbeats, traces and metrics of the transcriber, against moto with faults injected
through botocore's event hooks (the code under test is the real one)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from aws_lambda_powertools import Logger
from aws_xray_sdk.core import xray_recorder
from botocore.exceptions import EndpointConnectionError

from tests.conftest import EXAMPLES
from whisperq.core.jobs import JobStatus
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.queue_config import QueueConfig
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.synthetic import SyntheticEngine


def inject_failures(client, event: str, count: int) -> list[int]:
    """Make the next `count` calls of one operation fail as a dropped connection would."""
    calls = [0]

    def fail(request, **kwargs):
        calls[0] += 1
        if calls[0] <= count:
            raise EndpointConnectionError(endpoint_url=request.url)

    client.meta.events.register(f"before-send.{event}", fail)
    return calls


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def runtime(stack, sleeps):
    engine = SyntheticEngine(seconds_per_audio_second=0.0)
    rt = function.build_runtime(stack.settings, stack.clients, engine, Logger(service="test"), sleep=sleeps.append)
    function.reset(rt)
    yield rt
    function.reset()


def invoke(stack, messages):
    records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in messages]
    return function.handler({"Records": records}, LocalLambdaContext("whisperq-transcriber"))


def test_transient_errors_when_fewer_than_attempts_then_retried_with_backoff_and_completed(stack, runtime, sleeps):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    messages = stack.receive_all(1)
    calls = inject_failures(stack.clients.s3, "s3.PutObject", 2)
    assert invoke(stack, messages) == {"batchItemFailures": []}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.run.retries == 2
    assert calls[0] == 2 + 1 + 5  # two failures, then the committed transcript and the five formats
    assert len(sleeps) == 2 and all(0 <= s <= 5.0 for s in sleeps)


def test_transient_errors_when_they_persist_then_batch_item_failure_and_job_released(stack, runtime, sleeps):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    [message] = stack.receive_all(1)
    inject_failures(stack.clients.s3, "s3.GetObject", 100)
    assert invoke(stack, [message]) == {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.QUEUED and "Could not connect" in job.last_error
    assert len(sleeps) == 3  # four attempts, bounded


def test_conditional_write_when_answer_lost_after_success_then_not_mistaken_for_conflict(stack):
    """A retried conditional update whose first try did land must not look like a lost race."""
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    ddb = stack.clients.dynamodb
    state = {"calls": 0}

    def lose_first_answer(http_response, **kwargs):
        state["calls"] += 1
        if state["calls"] == 1:
            raise EndpointConnectionError(endpoint_url="dynamodb")  # the write happened; the answer is gone

    ddb.meta.events.register("after-call.dynamodb.UpdateItem", lose_first_answer)
    jobs = replace_retry(stack.jobs)
    job = jobs.mark_queued(job_id, "2026-12-03T00:00:00.000Z")
    assert job.status is JobStatus.QUEUED and state["calls"] == 2


def test_create_when_answer_lost_after_success_then_the_job_is_not_mistaken_for_a_taken_id(stack):
    # Found by a chaos run with api_errors: the API answered 503 for a job it had stored.
    from whisperq.aws.jobs_table import JobIdTaken
    from whisperq.core.jobs import Job, iso, new_job_id, utc_now

    ddb = stack.clients.dynamodb
    state = {"calls": 0}

    def lose_first_answer(http_response, **kwargs):
        state["calls"] += 1
        if state["calls"] == 1:
            raise EndpointConnectionError(endpoint_url="dynamodb")

    ddb.meta.events.register("after-call.dynamodb.PutItem", lose_first_answer)
    jobs = replace_retry(stack.jobs)
    now = iso(utc_now())
    job_id = new_job_id()
    job = Job(job_id, JobStatus.UPLOADING, "a.wav", "audio/wav", f"audio/{job_id}/a.wav", now, now,
              owner="alice")
    assert jobs.create(job) == job and state["calls"] == 2
    assert stack.jobs.get(job.job_id).status is JobStatus.UPLOADING
    # A genuinely taken id is still refused, retry or not.
    other = Job(job_id, JobStatus.UPLOADING, "b.wav", "audio/wav", f"audio/{job_id}/b.wav", now, now,
                owner="bob")
    with pytest.raises(JobIdTaken):
        jobs.create(other)


def replace_retry(jobs):
    from whisperq.aws.jobs_table import JobsTable
    from whisperq.aws.retry import RetryPolicy

    return JobsTable(jobs._clients, jobs.table_name, RetryPolicy(sleep=lambda s: None))


@pytest.fixture
def queue_config() -> QueueConfig:
    # Short visibility so that a job longer than it would be redelivered without a heartbeat.
    return QueueConfig(visibility_timeout_s=2, max_receive_count=3, wait_time_s=0, max_concurrency=1)


def test_heartbeat_when_job_outlasts_visibility_timeout_then_not_redelivered(stack, sleeps):
    slow = SyntheticEngine(seconds_per_audio_second=0.7)  # 6.3 s of audio -> about 4.4 s
    function.reset(function.build_runtime(stack.settings, stack.clients, slow, Logger(service="t"),
                                          sleep=sleeps.append))
    try:
        job_id = stack.upload(EXAMPLES / "meeting.wav")
        messages = stack.receive_all(1)
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(invoke(stack, messages)))
        worker.start()
        redelivered = []
        while worker.is_alive():
            redelivered += stack.queue.receive(10, 0)
            time.sleep(0.3)
        worker.join()
    finally:
        function.reset()
    assert result == {"batchItemFailures": []}
    assert redelivered == [], "the message came back while its job was still being transcribed"
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 1


class _Capture:
    """An X-Ray emitter that keeps what would go to the daemon."""

    def __init__(self):
        self.entities = []

    def send_entity(self, entity):
        self.entities.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address):
        pass

    @property
    def ip(self):
        return "127.0.0.1"

    @property
    def port(self):
        return 2000


def test_tracing_when_segment_open_then_stage_subsegments_with_annotations(stack, runtime):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    messages = stack.receive_all(1)
    capture = _Capture()
    previous = xray_recorder._emitter
    xray_recorder.configure(emitter=capture, sampling=False)
    try:
        xray_recorder.begin_segment("whisperq-transcriber")
        invoke(stack, messages)
        xray_recorder.end_segment()
    finally:
        xray_recorder.configure(emitter=previous)
    [segment] = [e for e in capture.entities if e.get("name") == "whisperq-transcriber"]
    subsegments = {s["name"]: s for s in segment.get("subsegments", [])}
    assert {"download", "decode", "transcribe", "upload", "status-update"} <= set(subsegments)
    assert subsegments["transcribe"]["annotations"] == {"jobId": job_id, "engine": "synthetic",
                                                        "model": "synthetic"}


def test_metrics_when_job_completes_then_embedded_metric_format_on_stdout(stack, runtime, capsys):
    stack.upload(EXAMPLES / "meeting.wav")
    invoke(stack, stack.receive_all(1))
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert blobs, "no EMF metrics were printed"
    metrics = {m["Name"] for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"JobsCompleted", "AudioSeconds", "RealTimeFactor", "TranscribeTime"} <= metrics
    [blob] = blobs
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "whisperq"
    assert 6.0 < blob["AudioSeconds"][0] < 6.6 and blob["JobsCompleted"] == [1.0]


def test_twin_dynamodb_when_conditional_writes_race_then_each_is_atomic_as_in_dynamodb(stack):
    """Compare-and-swap from four threads on one item: every success is counted exactly once, as
    DynamoDB's atomic conditional writes guarantee (moto's server alone checks and writes in two
    steps; whisperq.local.moto_patches makes them one)."""
    import sys
    import threading

    from botocore.exceptions import ClientError

    ddb, table = stack.clients.dynamodb, stack.settings.table
    ddb.put_item(TableName=table, Item={"jobId": {"S": "counter"}, "n": {"N": "0"}})
    wins = []

    def bump():
        for _ in range(40):
            current = ddb.get_item(TableName=table, Key={"jobId": {"S": "counter"}}, ConsistentRead=True)
            n = int(current["Item"]["n"]["N"])
            try:
                ddb.update_item(TableName=table, Key={"jobId": {"S": "counter"}}, UpdateExpression="SET n = :next",
                                ConditionExpression="n = :seen",
                                ExpressionAttributeValues={":seen": {"N": str(n)}, ":next": {"N": str(n + 1)}})
                wins.append(n)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"

    threads = [threading.Thread(target=bump) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the server's threads (in this process) switch as often as they can
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    final = int(ddb.get_item(TableName=table, Key={"jobId": {"S": "counter"}})["Item"]["n"]["N"])
    assert final == len(wins) and sorted(wins) == list(range(final))  # no value won twice
