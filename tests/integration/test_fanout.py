"""Fan-out of one long file across workers, on moto with the real tiny.en model: the split at
pauses, chunk deliveries duplicated, a worker dying mid-chunk, the last-chunk merge raced, a
dead-lettered chunk replayed, and a cancel in the middle."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import replace

import pytest
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES, normalised
from whisperq.aws.chunks import ChunkLedger, done_attr, lease_attr
from whisperq.aws.dlq import DeadLetterQueue
from whisperq.core.fanout import parse_chunk_message
from whisperq.core.jobs import JobStatus
from whisperq.core.keys import chunk_audio_key, chunk_result_key
from whisperq.local.esm import Poller
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.faster import FasterWhisperEngine

PASSAGE = EXAMPLES / "passage.ogg"  # 123 s of espeak-ng speech, with its text in passage.txt
BEAM_1 = {"beamSize": 1}


@pytest.fixture(scope="module")
def engine():
    return FasterWhisperEngine("tiny.en", "int8", 1)


@pytest.fixture
def queue_config(queue_config):
    # Fan out anything over 30 s, in chunks of about 20 s: the 123 s passage makes six.
    return replace(queue_config, fanout_min_duration_s=30, chunk_s=20, max_receive_count=2)


class Worker:
    """The transcriber handler behind the event-source-mapping emulator's own invoke, on the test stack."""

    def __init__(self, stack, engine, wrap_engine=None):
        self.stack = stack
        self.runtime = function.build_runtime(stack.settings, stack.clients, wrap_engine(engine) if wrap_engine
                                              else engine, Logger(service="t"), sleep=lambda s: None)
        function.reset(self.runtime)
        self.poller = Poller(stack.queue, stack.resources.queue_arn, "us-east-1", 1, 0, 0, function.handler,
                             "whisperq-transcriber", 900, sys.stderr)

    def invoke(self, messages) -> tuple[int, int]:
        return self.poller.invoke(messages)

    def drain(self, limit: int = 60) -> int:
        """Handle messages one at a time until the queue is empty; how many were handled."""
        handled = 0
        while handled < limit:
            batch = self.stack.queue.receive(1, 0)
            if not batch:
                return handled
            self.invoke(batch)
            handled += 1
        return handled


@pytest.fixture
def worker(stack, engine):
    yield Worker(stack, engine)
    function.reset()


def upload(stack, options=None) -> str:
    created = stack.service.create_upload({"filename": "passage.ogg", "contentType": "audio/ogg",
                                           "options": options or BEAM_1})
    import requests

    requests.put(created["uploadUrl"], data=PASSAGE.read_bytes(), headers=created["uploadHeaders"],
                 timeout=30).raise_for_status()
    return created["jobId"]


def split(stack, worker, options=None) -> tuple[str, list]:
    """Upload the passage and let one worker split it; the job id and the chunk messages, received."""
    job_id = upload(stack, options)
    assert worker.invoke(stack.receive_all(1)) == (1, 0)
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.PROCESSING and job.details["chunks"] >= 4, job.details
    messages = []
    deadline = time.monotonic() + 10
    while len(messages) < job.details["chunks"] and time.monotonic() < deadline:
        messages += stack.queue.receive(10, 0)
    assert len(messages) == job.details["chunks"]
    return job_id, sorted(messages, key=lambda m: parse_chunk_message(m.body).chunk.index)


def words(text: str) -> list[str]:
    return normalised(text).split()


def test_fanout_when_long_upload_then_cut_at_pauses_and_merged_without_doubled_words(stack, worker, engine):
    job_id, messages = split(stack, worker)
    job = stack.jobs.get(job_id)
    plan = job.details["chunkPlan"]
    # Cut at pauses only (the passage has one every sentence), each chunk near 20 s, covering it all.
    assert all(c["seamBeforeS"] is None and c["seamAfterS"] is None for c in plan)
    assert plan[0]["startS"] == 0 and abs(plan[-1]["endS"] - job.details["audioDurationS"]) < 0.01
    assert all(a["endS"] == b["startS"] for a, b in zip(plan, plan[1:], strict=False))
    assert all(10 <= c["endS"] - c["startS"] <= 30 for c in plan)
    assert stack.blobs.head(chunk_audio_key(job_id, 0)).content_type == "audio/flac"
    for message in messages:
        worker.invoke([message])
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED, job.details
    assert job.details["chunksDone"] == job.details["chunks"] == len(messages)
    merged = words(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.txt"))
    # Against the same audio transcribed whole, and against the text espeak-ng read.
    from whisperq.core.options import TranscribeOptions
    from whisperq.transcriber.audio import decode

    whole = words(engine.transcribe(decode(str(PASSAGE), "passage.ogg"), TranscribeOptions(beam_size=1)).text)
    truth = words((EXAMPLES / "passage.txt").read_text())
    from tests.wer import wer

    assert wer(truth, merged) <= wer(truth, whole) + 0.02, (wer(truth, merged), wer(truth, whole))
    # No word doubled at a seam: no run of three words repeated back to back.
    trigrams = [tuple(merged[i:i + 3]) for i in range(len(merged) - 2)]
    assert not any(trigrams[i] == trigrams[i + 3] for i in range(len(trigrams) - 3))
    # The chunks' files are gone; the JSON has segments in order with global times.
    assert stack.blobs.head(chunk_audio_key(job_id, 0)) is None
    assert stack.blobs.head(chunk_result_key(job_id, 0)) is None
    data = json.loads(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json"))
    starts = [seg["start"] for seg in data["segments"]]
    assert starts == sorted(starts) and starts[-1] > 100
    view = stack.service.status(job_id)
    assert view["details"]["chunks"] == view["details"]["chunksDone"] == len(messages)
