"""The bad-input catalogue: every kind of bad upload, request and message the service can be
handed, each with the clear error it must give and the state it must leave. The real API service,
real S3 events off the real queue (moto over HTTP), the real handler and the real tiny.en model.

Three tables: uploads (through the API's pre-signed URL, then the worker), requests the API must
refuse (400 and no job left behind), and messages on the queue that are not a normal upload."""

from __future__ import annotations

import io
import json
import random
import struct
import wave
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import requests
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES
from whisperq.core.errors import InvalidRequest
from whisperq.core.jobs import JobStatus
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.faster import FasterWhisperEngine


def wav(samples: bytes, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return buffer.getvalue()


def unknown_codec_wav() -> bytes:
    """A well-formed RIFF/WAVE whose format tag (0x9999) no decoder knows."""
    data = bytes(3200)
    fmt = struct.pack("<HHIIHH", 0x9999, 1, 16_000, 32_000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)


def meeting(suffix: str) -> bytes:
    return (EXAMPLES / f"meeting.{suffix}").read_bytes()


@dataclass(frozen=True)
class Upload:
    """A file sent through the API's pre-signed URL, and what the service must make of it."""

    name: str
    filename: str
    data: Any  # bytes, or a callable making them
    status: JobStatus
    reason: str = ""  # a fragment of the job's error (FAILED) or of its transcript (COMPLETED)
    content_type: str = "audio/wav"
    stored_type: str | None = None  # the Content-Type actually sent with the upload, if different
    settings: dict[str, Any] = field(default_factory=dict)


UPLOADS = [
    Upload("empty file", "empty.wav", b"", JobStatus.FAILED, "empty (0 bytes)"),
    Upload("zero-length audio", "nothing.wav", lambda: wav(b""), JobStatus.FAILED,
           "contains no audio samples"),
    # Silence is not an error: the job completes with an empty transcript.
    Upload("only silence", "silence.wav", lambda: wav(bytes(16_000 * 2 * 3)), JobStatus.COMPLETED, ""),
    Upload("text, not audio", "notes.wav", b"meeting notes: review the budget\n" * 40, JobStatus.FAILED,
           "could not be decoded"),
    Upload("a PNG image", "picture.wav", PNG_1X1, JobStatus.FAILED, "not an audio file"),
    Upload("random bytes", "noise.wav", lambda: random.Random(7).randbytes(8192), JobStatus.FAILED,
           "could not be decoded"),
    Upload("FLAC header only", "cut.flac", lambda: meeting("flac")[:120], JobStatus.FAILED,
           "could not be decoded as audio (End of file)", "audio/flac"),
    # A file cut short is transcribed as far as it decodes (the job's audioDurationS says how far).
    Upload("truncated FLAC (first 40%)", "cut.flac", lambda: meeting("flac")[: len(meeting("flac")) * 2 // 5],
           JobStatus.COMPLETED, "good morning", "audio/flac"),
    Upload("truncated MP3 (first 40%)", "cut.mp3", lambda: meeting("mp3")[: len(meeting("mp3")) * 2 // 5],
           JobStatus.COMPLETED, "good morning", "audio/mpeg"),
    Upload("an unknown codec", "odd.wav", unknown_codec_wav, JobStatus.FAILED, "(Decoder not found)"),
    Upload("far over the size limit", "big.wav", lambda: meeting("wav"), JobStatus.FAILED,
           "over the limit of 10000 bytes", settings={"max_upload_bytes": 10_000}),
    Upload("longer than the duration limit", "long.wav", lambda: meeting("wav"), JobStatus.FAILED,
           "over the limit of 3 s", settings={"max_audio_duration_s": 3}),
    Upload("stored with the wrong content type", "meeting.wav", lambda: meeting("wav"), JobStatus.FAILED,
           "not an accepted audio type", stored_type="text/plain"),
    Upload("a filename with spaces", "weekly team meeting.wav", lambda: meeting("wav"), JobStatus.COMPLETED,
           "good morning"),
    Upload("a unicode filename", "réunion d'équipe 会议.wav", lambda: meeting("wav"), JobStatus.COMPLETED,
           "good morning"),
]


@pytest.fixture(scope="module")
def engine():
    return FasterWhisperEngine("tiny.en", "int8", 1)


@pytest.fixture
def worker(stack, engine):
    """Runs the real handler on what is on the queue, with per-case settings."""

    def run(settings: dict[str, Any] | None = None, messages: list | None = None, expected: int = 1) -> dict:
        runtime = function.build_runtime(replace(stack.settings, **(settings or {})), stack.clients, engine,
                                         Logger(service="bad-input"))
        function.reset(runtime)
        messages = stack.receive_all(expected) if messages is None else messages
        records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in messages]
        return function.handler({"Records": records}, LocalLambdaContext("whisperq-transcriber"))

    yield run
    function.reset()


def transcripts_of(stack, job_id: str) -> list[str]:
    listed = stack.clients.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=f"transcripts/{job_id}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def send(created: dict, data: bytes, content_type: str) -> None:
    # The catalogue is about what the worker does with what arrives (an empty object too, which a signed
    # size of 1 or more keeps out on AWS): the body goes with its own length.
    headers = {**created["uploadHeaders"], "Content-Type": content_type}
    headers.pop("Content-Length")
    response = requests.put(created["uploadUrl"], data=data, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", UPLOADS, ids=[c.name for c in UPLOADS])
def test_upload_catalogue(case: Upload, stack, worker):
    data = case.data() if callable(case.data) else case.data
    created = stack.service.create_upload({"filename": case.filename, "contentType": case.content_type,
                                           "contentLength": max(1, len(data))})
    send(created, data, case.stored_type or case.content_type)
    # A file the service cannot transcribe is acknowledged (no retry can help) and ends FAILED.
    assert worker(case.settings) == {"batchItemFailures": []}
    job = stack.jobs.get(created["jobId"])
    assert job.status is case.status, (job.status, job.error)
    assert job.attempts == 1
    if case.status is JobStatus.FAILED:
        assert job.error and case.reason in job.error, job.error
        if "over the limit of 10000 bytes" in case.reason or case.stored_type:
            # Refused for its size or its type: deleted at once, not kept for days (it could be 5 GB).
            assert stack.blobs.head(job.audio_key) is None
        # Readable by a person: a sentence, not a traceback or a bare exception name.
        assert "Traceback" not in job.error and len(job.error.split()) >= 4
        assert transcripts_of(stack, job.job_id) == []  # nothing half-done
    else:
        text = stack.blobs.get_text(f"transcripts/{job.job_id}/{job.job_id}.txt").lower()
        assert case.reason in text if case.reason else text.strip() == "", text
        assert len(transcripts_of(stack, job.job_id)) == 5
        # The key keeps the filename, under the job's own prefix.
        assert job.audio_key == f"audio/tiny-en/{job.job_id}/{case.filename}"


@pytest.mark.parametrize(
    ("name", "body", "fragment"),
    [
        ("a path in the filename", {"filename": "../../etc/passwd.wav", "contentType": "audio/wav"}, "bare file name"),
        ("a backslash path", {"filename": "..\\secret.wav", "contentType": "audio/wav"}, "bare file name"),
        ("control characters", {"filename": "a\x00b\r\n.wav", "contentType": "audio/wav"}, "control characters"),
        ("an empty filename", {"filename": "  ", "contentType": "audio/wav"}, "non-empty"),
        ("a type that is not audio", {"filename": "a.wav", "contentType": "text/plain"}, "contentType"),
        ("a language the model cannot do", {"filename": "a.wav", "contentType": "audio/wav",
                                             "options": {"language": "fr"}}, "English-only"),
        ("a filename too long", {"filename": "a" * 300 + ".wav", "contentType": "audio/wav"}, "1 to 255 characters"),
    ],
)
def test_request_catalogue(name, body, fragment, stack):
    before = stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"]
    with pytest.raises(InvalidRequest) as refused:
        stack.service.create_upload({**body, "contentLength": 9})
    assert fragment in refused.value.message and refused.value.status_code == 400
    assert stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"] == before  # no job left behind


def test_a_second_upload_to_a_finished_job_when_it_arrives_then_acked_and_the_job_unchanged(stack, worker):
    created = stack.service.create_upload({"filename": "meeting.wav", "contentType": "audio/wav",
                                           "contentLength": len(meeting("wav"))})
    send(created, meeting("wav"), "audio/wav")
    assert worker() == {"batchItemFailures": []}
    first = stack.jobs.get(created["jobId"])
    stack.blobs.put_bytes(first.audio_key, meeting("wav"), "audio/wav")  # the same key, uploaded again
    assert worker() == {"batchItemFailures": []}
    again = stack.jobs.get(created["jobId"])
    assert again.status is JobStatus.COMPLETED and again.attempts == first.attempts == 1
    assert again.timeline.completed_at == first.timeline.completed_at


def test_an_upload_after_the_job_was_cancelled_when_it_arrives_then_the_job_stays_cancelled(stack, worker):
    created = stack.service.create_upload({"filename": "meeting.wav", "contentType": "audio/wav",
                                           "contentLength": len(meeting("wav"))})
    stack.service.cancel(created["jobId"])
    send(created, meeting("wav"), "audio/wav")
    assert worker() == {"batchItemFailures": []}
    job = stack.jobs.get(created["jobId"])
    assert job.status is JobStatus.CANCELLED and job.attempts == 0
    assert transcripts_of(stack, job.job_id) == []
    assert stack.blobs.head(job.audio_key) is None  # what arrived after the cancel is deleted


def s3_event(bucket: str, key: str, name: str = "ObjectCreated:Put") -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": name, "s3": {
        "bucket": {"name": bucket}, "object": {"key": key, "size": 10}}}]})


@pytest.mark.parametrize(
    ("name", "body", "acked"),
    [
        ("a key outside audio/", lambda b: s3_event(b, "transcripts/x/y.txt"), True),
        ("a key with a path under audio/", lambda b: s3_event(b, "audio/a/b/c.wav"), True),
        ("an S3 test event", lambda b: json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}), True),
        ("an event for an unknown job", lambda b: s3_event(b, "audio/6248633d-1631-41f1-9fa2-547eb5e6415a/x.wav"),
         True),
        ("a delete event", lambda b: s3_event(b, "audio/6248633d-1631-41f1-9fa2-547eb5e6415a/x.wav",
                                              "ObjectRemoved:Delete"), True),
        ("a body that is not JSON", lambda b: "definitely not an S3 event", False),
        ("JSON that is not an S3 event", lambda b: json.dumps({"Records": [{"s3": {}}]}), False),
        ("an empty body", lambda b: " ", False),
    ],
)
def test_message_catalogue(name, body, acked, stack, worker):
    message_id = stack.queue.send(body(stack.settings.bucket))
    messages = [m for m in stack.queue.receive(10, 1) if m.message_id == message_id]
    assert len(messages) == 1
    result = worker(messages=messages)
    # Acknowledged when there is nothing to do; failed (so that it is retried, then dead-lettered for
    # a person to look at) when the message cannot be read at all: never silently dropped.
    assert result == ({"batchItemFailures": []} if acked else {"batchItemFailures": [{"itemIdentifier": message_id}]})
    assert stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"] == 0


def test_a_duplicate_event_when_delivered_twice_then_one_attempt_one_transcript(stack, worker):
    created = stack.service.create_upload({"filename": "meeting.wav", "contentType": "audio/wav",
                                           "contentLength": len(meeting("wav"))})
    send(created, meeting("wav"), "audio/wav")
    [message] = stack.receive_all(1)
    duplicate_id = stack.queue.send(message.body)
    [duplicate] = [m for m in stack.queue.receive(10, 1) if m.message_id == duplicate_id]
    assert worker(messages=[message, duplicate]) == {"batchItemFailures": []}
    job = stack.jobs.get(created["jobId"])
    assert job.status is JobStatus.COMPLETED and job.attempts == 1
    versions = stack.clients.s3.list_object_versions(Bucket=stack.settings.bucket,
                                                     Prefix=f"transcripts/{job.job_id}/{job.job_id}.txt")
    assert len(versions.get("Versions", [])) == 1
