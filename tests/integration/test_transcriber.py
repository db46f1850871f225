"""The transcriber handler against moto, with real S3 events taken off the real queue and the real
tiny.en model."""

from __future__ import annotations

import json
import time

import pytest
import requests
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES, MEETING_PHRASES, normalised
from whisperq.core.jobs import JobStatus
from whisperq.core.leases import Lease
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.faster import FasterWhisperEngine


@pytest.fixture(scope="session")
def engine():
    return FasterWhisperEngine("tiny.en", "int8", 1)


@pytest.fixture
def invoke(stack, engine):
    """Call the real handler with a real SQS event, as the event source mapping would."""
    function.reset(function.build_runtime(stack.settings, stack.clients, engine, Logger(service="test")))

    def call(messages, receive_count: int | None = None) -> dict:
        records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in messages]
        if receive_count is not None:
            for record in records:
                record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        return function.handler({"Records": records}, LocalLambdaContext("whisperq-transcriber"))

    yield call
    function.reset()


def take(stack, job_id: str, lease: Lease) -> None:
    """Another worker took the job (and still holds it, or died holding it)."""
    from whisperq.aws.job_leases import JobLeases
    from whisperq.core.jobs import Timeline

    JobLeases(stack.jobs).take(job_id, lease, None, 1, Timeline(), None)


def test_handler_when_speech_uploaded_then_completed_with_every_format(stack, invoke):
    job_id = stack.upload(EXAMPLES / "meeting.wav", filename="my weekly café meeting.wav")
    messages = stack.receive_all(1)
    assert invoke(messages) == {"batchItemFailures": []}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 1 and job.error is None
    text = normalised(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.txt"))
    for phrase in MEETING_PHRASES:
        assert phrase in text
    assert set(job.transcript_keys) == {"txt", "json", "srt", "vtt", "tsv"}
    assert 6.0 < job.run.audio_duration_s < 6.6
    assert job.run.engine == "faster-whisper" and job.run.model == "tiny.en"
    assert job.run.queue_wait_s >= 0 and job.run.transcribe_s > 0
    assert job.lease is None
    srt = stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.srt")
    assert srt.startswith("1\n00:00:00,000 --> ")
    status = stack.service.status(job_id)
    assert status["status"] == "COMPLETED"
    downloaded = requests.get(status["transcriptUrl"], timeout=10)
    assert downloaded.status_code == 200 and "quarterly budget" in normalised(downloaded.text)


def test_handler_when_word_timestamps_asked_then_json_has_words(stack, invoke):
    created = stack.service.create_upload({"filename": "meeting.wav", "contentType": "audio/wav",
                                           "contentLength": (EXAMPLES / "meeting.wav").stat().st_size,
                                           "options": {"wordTimestamps": True, "beamSize": 1}})
    requests.put(created["uploadUrl"], data=(EXAMPLES / "meeting.wav").read_bytes(),
                 headers=created["uploadHeaders"], timeout=30).raise_for_status()
    assert invoke(stack.receive_all(1)) == {"batchItemFailures": []}
    job_id = created["jobId"]
    data = json.loads(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json"))
    words = [w for seg in data["segments"] for w in seg["words"]]
    assert [w["word"].strip() for w in words[:2]] == ["Good", "morning"]
    assert all(0 <= w["start"] <= w["end"] <= data["duration_s"] + 0.5 for w in words)
    assert data["language"] == "en" and "avg_logprob" in data["segments"][0]
    assert "no_speech_prob" in data["segments"][0]


def test_handler_when_same_event_delivered_twice_then_one_transcript_and_ack(stack, invoke):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    [message] = stack.receive_all(1)
    invoke([message])
    first = stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json")
    completed_at = stack.jobs.get(job_id).timeline.completed_at
    assert invoke([message]) == {"batchItemFailures": []}  # a redelivery: acknowledged without work
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 1
    assert job.timeline.completed_at == completed_at
    assert stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json") == first


def test_handler_when_multipart_upload_sends_two_events_then_one_attempt(stack, invoke):
    created = stack.service.create_upload({"filename": "meeting.wav", "contentType": "audio/wav",
                                           "contentLength": (EXAMPLES / "meeting.wav").stat().st_size})
    job_id = created["jobId"]
    key = f"audio/tiny-en/{job_id}/meeting.wav"
    s3 = stack.clients.s3
    upload = s3.create_multipart_upload(Bucket=stack.settings.bucket, Key=key, ContentType="audio/wav")
    part = s3.upload_part(Bucket=stack.settings.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                          Body=(EXAMPLES / "meeting.wav").read_bytes())
    s3.complete_multipart_upload(Bucket=stack.settings.bucket, Key=key, UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    messages = stack.receive_all(2)
    assert len(messages) == 2  # moto sends Put and CompleteMultipartUpload, a real duplicate
    assert invoke(messages) == {"batchItemFailures": []}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 1


@pytest.mark.parametrize(
    ("payload", "filename", "fragment"),
    [
        (b"this is a text file, not audio\n" * 20, "notes.wav", "could not be decoded as audio"),
        (b"", "empty.wav", "empty (0 bytes)"),
        ((EXAMPLES / "meeting.flac").read_bytes()[:2000], "cut.flac", "could not be decoded"),
    ],
)
def test_handler_when_upload_is_not_transcribable_then_failed_with_reason_and_acked(
    stack, invoke, tmp_path, payload, filename, fragment
):
    path = tmp_path / filename
    path.write_bytes(payload)
    job_id = stack.upload(path)
    assert invoke(stack.receive_all(1)) == {"batchItemFailures": []}  # permanent: never retried
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.FAILED
    assert fragment in job.error
    assert stack.service.status(job_id)["error"] == job.error


def test_handler_when_retryable_failure_then_reported_and_job_released_for_retry(stack, invoke):
    from dataclasses import replace

    # The poison fault is a setting: build a runtime with it switched on.
    poisoned = replace(stack.settings, fault_poison_key="poison")
    function.reset(function.build_runtime(poisoned, stack.clients, function._runtime.engine, Logger(service="t")))
    job_id = stack.upload(EXAMPLES / "meeting.wav", filename="poison.wav")
    [message] = stack.receive_all(1)
    assert invoke([message], receive_count=1) == {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 1
    assert "injected poison fault" in job.last_error
    # The last allowed receive (maxReceiveCount = 2): the job ends FAILED and says where the message went.
    assert invoke([message], receive_count=2) == {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 2
    assert "failed on all 2 attempts" in job.error and "dead-letter queue" in job.error
    assert "dead-letter queue" in job.error and job.dead_lettered is True


def test_handler_when_batch_mixes_good_and_poison_then_only_poison_fails(stack, invoke):
    from dataclasses import replace

    poisoned = replace(stack.settings, fault_poison_key="poison")
    function.reset(function.build_runtime(poisoned, stack.clients, function._runtime.engine, Logger(service="t")))
    good = stack.upload(EXAMPLES / "meeting.wav", filename="good.wav")
    bad = stack.upload(EXAMPLES / "meeting.wav", filename="poison.wav")
    messages = stack.receive_all(2)
    poison_message = next(m for m in messages if "poison" in m.body)
    assert invoke(messages) == {"batchItemFailures": [{"itemIdentifier": poison_message.message_id}]}
    assert stack.jobs.get(good).status is JobStatus.COMPLETED
    assert stack.jobs.get(bad).status is JobStatus.QUEUED


def test_handler_when_job_leased_by_live_worker_then_duplicate_acked_without_work(stack, invoke):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    [message] = stack.receive_all(1)
    take(stack, job_id, Lease("other-worker", time.time() + 300, "the-message-the-other-worker-holds"))
    assert invoke([message]) == {"batchItemFailures": []}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.PROCESSING and job.lease.id == "other-worker"


def test_handler_when_the_lease_holders_own_message_returns_early_then_not_acked_so_the_job_is_not_lost(
        stack, invoke, engine):
    # Found by the 500-job chaos run: a worker was killed, its message came back a moment before its
    # lease ran out, was acknowledged as a "duplicate", and the job stayed PROCESSING with no message.
    function.reset(function.build_runtime(stack.settings, stack.clients, engine, Logger(service="test")))
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    [message] = stack.receive_all(1)
    take(stack, job_id, Lease("dead-worker", time.time() + 2, message.message_id))
    assert invoke([message]) == {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
    assert stack.jobs.get(job_id).status is JobStatus.PROCESSING
    # The message returns once the lease has run out, and that delivery takes the job over.
    time.sleep(2.2)
    [again] = [m for m in stack.queue.receive(10, 5) if m.message_id == message.message_id]
    assert invoke([again]) == {"batchItemFailures": []}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 2


def test_handler_when_lease_expired_then_new_attempt_takes_over_and_completes(stack, invoke):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    [message] = stack.receive_all(1)
    take(stack, job_id, Lease("dead-worker", time.time() - 1))
    assert invoke([message]) == {"batchItemFailures": []}
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 2


def test_handler_when_test_event_unknown_job_or_foreign_key_then_acked(stack, invoke):
    unknown = "6248633d-1631-41f1-9fa2-547eb5e6415a"
    stack.blobs.put_text(f"audio/tiny-en/{unknown}/x.wav", "RIFF", "audio/wav")
    stack.blobs.put_text("audio/tiny-en/not-a-job/x.wav", "RIFF", "audio/wav")
    messages = stack.receive_all(2)
    test_event = stack.queue.send(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))
    messages += [m for m in stack.queue.receive(10, 1) if m.message_id == test_event]
    assert len(messages) == 3
    assert invoke(messages) == {"batchItemFailures": []}


def test_handler_when_body_malformed_then_failed_so_it_reaches_the_dlq(stack, invoke):
    stack.queue.send("definitely not an S3 event")
    [message] = [m for m in stack.queue.receive(10, 1) if "definitely" in m.body]
    assert invoke([message]) == {"batchItemFailures": [{"itemIdentifier": message.message_id}]}
