"""The delivery protocol under at-least-once delivery, one interleaving a test: what happens when a
worker dies, a message comes twice, two workers race, or an invocation runs out of time. Against moto
over HTTP, with the synthetic engine (instant, and its transcript says how the audio was cut: one
segment for a whole file, one per chunk for a fanned-out one), on the 123 s passage (real speech, so
that the voice-activity detector finds its pauses)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import EndpointConnectionError

from tests.conftest import EXAMPLES
from whisperq.core.jobs import JobStatus
from whisperq.local.esm import lambda_record
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.synthetic import SyntheticEngine

PASSAGE = EXAMPLES / "passage.ogg"


class WorkerKilled(BaseException):
    """A worker process dying: no `except Exception` on the way catches it, nothing is cleaned up."""


@pytest.fixture
def queue_config(queue_config):
    # Fan out anything over 30 s in chunks of about 20 s (six for the passage); leases of 2 s, so that a
    # dead holder's lease runs out within the test.
    return replace(queue_config, fanout_min_duration_s=30, chunk_s=20, visibility_timeout_s=2, max_receive_count=5)


def new_worker(stack, engine=None):
    return function.build_runtime(stack.settings, stack.clients, engine or SyntheticEngine(0.0),
                                  Logger(service="t"), sleep=lambda s: None)


def delivery_of(stack, message, receive_count: int | None = None):
    record = lambda_record(message, stack.resources.queue_arn, "us-east-1")
    if receive_count is not None:
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return function._delivery(SQSRecord(record))


def handle(stack, worker, message, receive_count: int | None = None) -> list[str]:
    return worker.handle_message(message.body, delivery_of(stack, message, receive_count))


def upload_passage(stack) -> tuple[str, object]:
    created = stack.service.create_upload({"filename": "passage.ogg", "contentType": "audio/ogg"})
    requests.put(created["uploadUrl"], data=PASSAGE.read_bytes(), headers=created["uploadHeaders"],
                 timeout=30).raise_for_status()
    [event] = stack.receive_all(1)
    return created["jobId"], event


def drain(stack, worker, limit: int = 40) -> list[str]:
    """Handle what is on the queue, one message at a time, deleting each handled one."""
    outcomes = []
    for _ in range(limit):
        batch = stack.queue.receive(1, 0)
        if not batch:
            return outcomes
        outcomes += handle(stack, worker, batch[0])
        stack.queue.delete(batch)
    return outcomes


def kill_when(client, operation: str, fragment: str) -> dict:
    """Kill the worker (raise WorkerKilled) as it sends the first `operation` request whose body holds
    `fragment`; returns a switch: set state["armed"] = False to let requests through again."""
    state = {"armed": True, "killed": 0}

    def maybe_kill(request, **kwargs):
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        if state["armed"] and fragment in body:
            state["armed"] = False
            state["killed"] += 1
            raise WorkerKilled(f"killed while sending {operation}")

    client.meta.events.register(f"before-send.{operation}", maybe_kill)
    return state


def fail_heartbeats(request, **kwargs):
    if threading.current_thread().name.startswith("whisperq-heartbeat"):
        raise EndpointConnectionError(endpoint_url=request.url)


def empty(queue) -> None:
    queue._sqs.purge_queue(QueueUrl=queue.url)


def transcript_versions(stack, job_id: str) -> dict[str, set[str]]:
    """Every content (by ETag) each of the job's transcript objects was ever written with."""
    versions: dict[str, set[str]] = {}
    listing = stack.clients.s3.list_object_versions(Bucket=stack.settings.bucket, Prefix=f"transcripts/{job_id}/")
    for version in listing.get("Versions", []):
        versions.setdefault(version["Key"], set()).add(version["ETag"])
    return versions


def test_whole_file_attempt_killed_after_writing_outputs_when_retry_fans_out_then_transcript_unchanged(stack):
    """The race a fanned-out chaos run caught: attempt 1 found the queue busy and transcribed the file
    whole, wrote the five outputs and was killed before it marked the job COMPLETED. Its lease ran out,
    the message came back to an idle queue, and attempt 2 fanned the file out and merged the chunks
    into other outputs. A transcript, once written, must never change."""
    stack.clients.s3.put_bucket_versioning(Bucket=stack.settings.bucket,
                                           VersioningConfiguration={"Status": "Enabled"})
    job_id, event = upload_passage(stack)
    first, second = new_worker(stack), new_worker(stack)
    # Given a busy queue (as much waiting as max_concurrency), so attempt 1 transcribes the file whole,
    stack.queue.send('{"Service": "Amazon S3", "Event": "s3:TestEvent"}')
    # and a worker killed as it marks the job COMPLETED (after its outputs were written),
    switch = kill_when(stack.clients.dynamodb, "dynamodb.UpdateItem", '"COMPLETED"')
    with pytest.raises(WorkerKilled):
        handle(stack, first, event, receive_count=1)
    assert switch["killed"] == 1
    written = transcript_versions(stack, job_id)
    # when its lease runs out and the message returns to an idle queue,
    empty(stack.queue)
    time.sleep(2.2)
    handle(stack, second, event, receive_count=2)
    drain(stack, second)
    # then the job completes, and every transcript object holds what it held before (written once,
    # or written again with the same bytes).
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED
    after = transcript_versions(stack, job_id)
    assert set(after) == {f"transcripts/{job_id}/{job_id}.{fmt}" for fmt in ("txt", "json", "srt", "vtt", "tsv")}
    for key, etags in after.items():
        assert len(etags) == 1, f"{key} was written with {len(etags)} different contents"
        assert not written or etags == written.get(key, etags)


def test_whole_file_attempt_outlives_its_lease_when_newer_attempt_completes_then_late_writes_change_nothing(stack):
    """A slow attempt (its heartbeat lost) is overtaken: a newer attempt takes the job and completes
    it. When the slow one finishes, it must neither overwrite the transcript nor the job."""
    stack.clients.s3.put_bucket_versioning(Bucket=stack.settings.bucket,
                                           VersioningConfiguration={"Status": "Enabled"})
    job_id, event = upload_passage(stack)
    release = threading.Event()

    class Blocking(SyntheticEngine):
        def transcribe(self, audio, options):
            release.wait(30)
            return super().transcribe(audio, options)

    slow, fast = new_worker(stack, Blocking(0.0)), new_worker(stack)
    # No heartbeat lands (their DynamoDB writes fail as a lost network would), so the lease runs out.
    stack.clients.dynamodb.meta.events.register("before-send.dynamodb.UpdateItem", fail_heartbeats)
    stack.queue.send('{"Service": "Amazon S3", "Event": "s3:TestEvent"}')  # busy: slow goes whole
    outcome: dict[str, object] = {}

    def run_slow():
        try:
            outcome["slow"] = handle(stack, slow, event, receive_count=1)
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome["slow"] = exc

    thread = threading.Thread(target=run_slow)
    thread.start()
    time.sleep(2.5)  # the slow attempt's 2 s lease has run out
    empty(stack.queue)
    assert handle(stack, fast, event, receive_count=2)[0].startswith(("completed", "fanned-out"))
    drain(stack, fast)
    assert stack.jobs.get(job_id).status is JobStatus.COMPLETED
    before = transcript_versions(stack, job_id)
    release.set()
    thread.join(60)
    assert "lease" in str(outcome["slow"]).lower() or outcome["slow"] == ["skipped:lease-lost"], outcome
    assert transcript_versions(stack, job_id) == before
    assert stack.jobs.get(job_id).status is JobStatus.COMPLETED
