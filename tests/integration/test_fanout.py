"""Fan-out of one long file across workers, on moto with the real tiny.en model: the split at pauses
and the merge's quality, a dead-lettered chunk replayed, a cancel in the middle, a busy queue, a failed
merge, word timestamps. (The races of the delivery protocol are in test_delivery.py.)"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from tests.conftest import EXAMPLES, normalised
from tests.integration.conftest import Worker, delivery_of
from whisperq.aws.dlq import DeadLetterQueue
from whisperq.core.fanout import Chunk, parse_chunk_message
from whisperq.core.jobs import JobStatus
from whisperq.core.keys import chunk_audio_key, chunk_plan_key, chunk_result_key
from whisperq.transcriber import handler as function

PASSAGE = EXAMPLES / "passage.ogg"  # 123 s of espeak-ng speech, with its text in passage.txt
BEAM_1 = {"beamSize": 1}


@pytest.fixture
def queue_config(queue_config):
    # Fan out anything over 40 s, no chunk under 20 s, six workers: the 123 s passage on an idle queue makes six.
    return replace(queue_config, fanout_min_duration_s=40, chunk_s=20, max_receive_count=2, max_concurrency=6)


def upload(stack, options=None) -> str:
    created = stack.service.create_upload({"filename": "passage.ogg", "contentType": "audio/ogg",
                                           "contentLength": PASSAGE.stat().st_size, "options": options or BEAM_1})
    import requests

    requests.put(created["uploadUrl"], data=PASSAGE.read_bytes(), headers=created["uploadHeaders"],
                 timeout=30).raise_for_status()
    return created["jobId"]


def split(stack, worker, options=None, events: list | None = None) -> tuple[str, list]:
    """Upload the passage and let one worker split it; the job id and the chunk messages, received
    (the upload's S3 event is added to `events` when given)."""
    job_id = upload(stack, options)
    received = stack.receive_all(1)
    if events is not None:
        events.extend(received)
    assert worker.invoke(received) == (1, 0)
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.PROCESSING and job.fanout is not None and job.fanout.chunks >= 4, job
    messages = []
    deadline = time.monotonic() + 10
    while len(messages) < job.fanout.chunks and time.monotonic() < deadline:
        messages += stack.queue.receive(10, 0)
    assert len(messages) == job.fanout.chunks
    return job_id, sorted(messages, key=lambda m: parse_chunk_message(m.body).chunk.index)


def words(text: str) -> list[str]:
    return normalised(text).split()


def plan_of(stack, job) -> list[Chunk]:
    data = json.loads(stack.blobs.get_text(chunk_plan_key(job.job_id, job.fanout.chunk_plan_id)))
    return [Chunk.from_dict(chunk) for chunk in data["chunks"]]


def objects_under(stack, prefix: str) -> list[str]:
    listing = stack.clients.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_fanout_when_long_upload_then_cut_at_pauses_and_merged_without_doubled_words(stack, worker, engine):
    job_id, messages = split(stack, worker)
    job = stack.jobs.get(job_id)
    plan = plan_of(stack, job)
    # Cut at pauses only (the passage has one every sentence), each chunk near 20 s, covering it all.
    assert all(not c.has_seam for c in plan)
    assert plan[0].start_s == 0 and abs(plan[-1].end_s - job.run.audio_duration_s) < 0.01
    assert all(a.end_s == b.start_s for a, b in zip(plan, plan[1:], strict=False))
    assert all(10 <= c.duration_s <= 30 for c in plan)
    plan_id = job.fanout.chunk_plan_id
    assert stack.blobs.head(chunk_audio_key(job_id, plan_id, 0)).content_type == "audio/flac"
    for message in messages:
        worker.invoke([message])
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED, job
    assert job.fanout.chunks_done == job.fanout.chunks == len(messages)
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
    # The chunks' files (audio, plan, results) and the attempts' transcripts are gone; the JSON has
    # segments in order with global times.
    assert objects_under(stack, f"chunks/{job_id}/") == [] and objects_under(stack, f"results/{job_id}/") == []
    data = json.loads(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json"))
    starts = [seg["start"] for seg in data["segments"]]
    assert starts == sorted(starts) and starts[-1] > 100
    view = stack.service.status(job_id)
    assert view["details"]["chunks"] == view["details"]["chunksDone"] == len(messages)


def handle(stack, worker, message, receive_count: int | None = None) -> list[str]:
    return worker.runtime.handle_message(message.body, delivery_of(stack, message, receive_count))


class FailingEngine:
    """The real engine, failing (like a crashing native library) while `failing` is set."""

    def __init__(self, engine):
        self.engine = engine
        self.failing = False
        self.name, self.model_name, self.load_time_s = engine.name, engine.model_name, engine.load_time_s

    def transcribe(self, audio, options):
        if self.failing:
            raise RuntimeError("engine crashed")
        return self.engine.transcribe(audio, options)


def test_fanout_when_chunk_dead_letters_then_job_failed_and_replay_resumes_without_redoing_chunks(stack, engine):
    worker = Worker(stack, engine, wrap_engine=FailingEngine)
    try:
        job_id, messages = split(stack, worker)
        bad = messages[1]
        worker.runtime.engine.failing = True
        assert worker.invoke([bad]) == (0, 1)  # first attempt: retried
        assert stack.jobs.get(job_id).status is JobStatus.PROCESSING
        with pytest.raises(RuntimeError):
            handle(stack, worker, bad, receive_count=stack.settings.queue.max_receive_count)
        job = stack.jobs.get(job_id)
        assert job.status is JobStatus.FAILED and job.fanout.failed_chunk == 1
        assert job.error.startswith(f"chunk 2 of {len(messages)} (") and "dlq replay --job" in job.error
        # SQS moves it to the DLQ after maxReceiveCount receives; the other chunks still finish.
        stack.dlq.send(bad.body)
        stack.queue.delete([bad])
        worker.runtime.engine.failing = False
        for message in messages[:1] + messages[2:]:
            assert handle(stack, worker, message)[0].startswith("chunk-done")
        assert stack.jobs.get(job_id).status is JobStatus.FAILED
        letters = DeadLetterQueue(stack.clients, stack.dlq, stack.queue, stack.jobs).peek()
        assert [(d.job_id, d.job_status) for d in letters] == [(job_id, "FAILED")]
        report = DeadLetterQueue(stack.clients, stack.dlq, stack.queue, stack.jobs).replay(job_ids=[job_id])
        assert report.jobs_reset == [job_id] and len(report.moved) == 1
        assert worker.drain() == 1
        job = stack.jobs.get(job_id)
        assert job.status is JobStatus.COMPLETED and job.error is None
        # Every chunk was taken once, but the failed one: two attempts before the DLQ, one after.
        attempts = [chunk.attempts for chunk in worker.runtime.context.chunks.all(job_id)]
        assert sum(attempts) == len(messages) + 2 and attempts[1] == 3
    finally:
        function.reset()


def test_fanout_when_cancelled_midway_then_remaining_chunks_skip_and_every_chunk_file_goes(stack, worker):
    job_id, messages = split(stack, worker)
    handle(stack, worker, messages[0])
    assert stack.service.cancel(job_id)["status"] == "CANCELLED"
    for message in messages[1:]:
        assert handle(stack, worker, message) == ["skipped:cancelled"]
    assert objects_under(stack, f"chunks/{job_id}/") == [] and objects_under(stack, f"results/{job_id}/") == []
    assert stack.blobs.head(f"transcripts/{job_id}/{job_id}.txt") is None
    assert stack.jobs.get(job_id).status is JobStatus.CANCELLED


def test_fanout_when_queue_has_a_backlog_then_long_file_transcribed_whole(stack, worker):
    # Every other worker has work waiting: splitting would only add its cost.
    job_id = upload(stack)
    [event] = stack.receive_all(1)
    stack.busy()
    assert handle(stack, worker, event) == ["completed"]
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.fanout is None
    assert job.run.audio_duration_s > 120 and objects_under(stack, f"chunks/{job_id}/") == []


def test_fanout_when_one_other_worker_idles_then_the_file_is_cut_in_two_halves_at_a_pause(stack, worker):
    # Six workers, four messages waiting: four workers will be busy, this one and one more are not.
    job_id = upload(stack)
    [event] = stack.receive_all(1)
    stack.queue.send_batch(['{"Service": "Amazon S3", "Event": "s3:TestEvent"}'] * 4)
    assert handle(stack, worker, event) == ["fanned-out:2"]
    job = stack.jobs.get(job_id)
    first, second = plan_of(stack, job)
    assert 123 * 0.25 < first.end_s < 123 * 0.75 and first.seam_after_s is None  # at a pause, not a hard cut
    assert second.start_s == first.end_s and second.end_s == pytest.approx(job.run.audio_duration_s, abs=0.01)


def test_fanout_when_merge_fails_then_a_redelivery_of_any_message_merges(stack, worker):
    events: list = []
    job_id, messages = split(stack, worker, events=events)
    for message in messages[:-1]:
        handle(stack, worker, message)
    # The merge of the last chunk fails (a chunk's result is missing for a moment): the job is released.
    job = stack.jobs.get(job_id)
    first_key = chunk_result_key(job_id, job.fanout.chunk_plan_id, 0,
                                 worker.runtime.context.chunks.get(job_id, 0).done_by)
    first_result = stack.blobs.get_text(first_key)
    stack.blobs.delete([first_key])
    with pytest.raises(Exception, match="00000-"):
        handle(stack, worker, messages[-1])
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.QUEUED and job.fanout.all_done
    stack.blobs.put_text(first_key, first_result, "application/json")
    # A redelivered upload event finds every chunk done and nobody merging: it merges.
    assert handle(stack, worker, events[0]) == ["completed:merged"]
    assert stack.jobs.get(job_id).status is JobStatus.COMPLETED
    # And the last chunk's own message, when it returns, is acknowledged.
    assert handle(stack, worker, messages[-1]) == ["skipped:COMPLETED"]


def test_fanout_when_word_timestamps_asked_then_merged_words_carry_times_of_the_whole_file(stack, worker):
    job_id, messages = split(stack, worker, options={"beamSize": 1, "wordTimestamps": True})
    for message in messages:
        handle(stack, worker, message)
    data = json.loads(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json"))
    words = [w for seg in data["segments"] for w in seg["words"]]
    assert len(words) > 200
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and starts[-1] > 110  # global times, in order, to the end
    assert all(seg["start"] <= seg["words"][0]["start"] for seg in data["segments"] if seg["words"])
    srt = stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.srt")
    assert "00:01:5" in srt or "00:02:0" in srt  # cues near the end of the two minutes
